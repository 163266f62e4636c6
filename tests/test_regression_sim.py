"""The DIoU paper's simulation (Zheng et al. 2020, Algorithm 1): boxes, dynamics, and pictures."""

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from yolo_teach.boxes import aligned_box_iou, box_area, box_convert  # noqa: E402
from yolo_teach.losses.regression_sim import (  # noqa: E402
    ANCHOR_AREAS,
    ASPECT_RATIOS,
    CASES_PER_POINT,
    REGRESSION_LOSSES,
    compare_losses,
    error_per_point,
    iou_loss,
    regression_trajectories,
    simulate_regression,
    simulation_boxes,
    simulation_points,
    simulation_targets,
    step_size,
)
from yolo_teach.viz.regression_view import (  # noqa: E402
    plot_final_error_map,
    plot_regression_errors,
    plot_regression_example,
    plot_simulation_setting,
)

UNIT_TARGET = torch.tensor([[9.5, 9.5, 10.5, 10.5]], dtype=torch.float64)  # cxcywh (10, 10, 1, 1)
# cxcywh (12.5, 10, 1, 1): x from 12 to 13, a gap of 1.5 to the target's right edge at 10.5
FAR_ANCHOR = torch.tensor([[12.0, 9.5, 13.0, 10.5]], dtype=torch.float64)


def wh(xyxy):
    return xyxy[..., 2] - xyxy[..., 0], xyxy[..., 3] - xyxy[..., 1]


# ---------------------------------------------------------------------------- the boxes


def test_targets_have_unit_area_and_the_seven_aspect_ratios():
    targets = simulation_targets()  # (7, 4)
    w, h = wh(targets)
    torch.testing.assert_close(w * h, torch.ones(7, dtype=torch.float64))
    # w/h = 1/4, 1/3, 1/2, 1, 2, 3, 4; e.g. 1:4 is w = 0.5, h = 2 (area 1)
    torch.testing.assert_close(w / h, torch.tensor(ASPECT_RATIOS, dtype=torch.float64))
    torch.testing.assert_close(targets[0], torch.tensor([9.75, 9.0, 10.25, 11.0],
                                                        dtype=torch.float64))
    centres = box_convert(targets, "xyxy", "cxcywh")[:, :2]
    torch.testing.assert_close(centres, torch.full((7, 2), 10.0, dtype=torch.float64))


def test_simulation_boxes_are_deterministic_and_structured():
    anchors, targets = simulation_boxes(num_points=6, seed=3)
    assert anchors.shape == targets.shape == (6 * 343, 4) and CASES_PER_POINT == 343
    again, _ = simulation_boxes(num_points=6, seed=3)
    assert torch.equal(anchors, again)
    assert not torch.equal(anchors, simulation_boxes(num_points=6, seed=4)[0])
    # point-major order: (P, 7 targets, 7 areas, 7 ratios, 4)
    a = box_convert(anchors, "xyxy", "cxcywh").reshape(6, 7, 7, 7, 4)
    t = targets.reshape(6, 7, 7, 7, 4)
    torch.testing.assert_close(t[:, :, 0, 0], simulation_targets()[None].expand(6, 7, 4))
    assert torch.all(a[..., :2] == a[:, :1, :1, :1, :2])  # one centre per point
    area = a[0, 0, :, :, 2] * a[0, 0, :, :, 3]  # (7 areas, 7 ratios)
    torch.testing.assert_close(area, torch.tensor(ANCHOR_AREAS, dtype=torch.float64)[:, None]
                               .expand(7, 7))
    ratio = a[0, 0, :, :, 2] / a[0, 0, :, :, 3]
    torch.testing.assert_close(ratio, torch.tensor(ASPECT_RATIOS, dtype=torch.float64)[None]
                               .expand(7, 7))


def test_points_fill_the_disc_uniformly():
    points = simulation_points(4000, radius=3.0, seed=0)  # (P, 2)
    r = (points - 10.0).norm(dim=1)
    assert float(r.max()) <= 3.0
    # uniform in area: the inner disc of radius 3/sqrt(2) holds half the points
    assert abs(float((r < 3 / math.sqrt(2)).double().mean()) - 0.5) < 0.03


# ---------------------------------------------------------------------------- the dynamics


def test_step_size_follows_algorithm_1():
    # T = 200: 0.1 up to t = 160 (0.8 T), 0.01 up to 180 (0.9 T), 0.001 after
    assert [step_size(t, 200) for t in (1, 160, 161, 180, 181, 200)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    assert step_size(200, 200, decay=False) == 0.1


def test_iou_loss_is_one_minus_iou():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    # intersection 1, union 4 + 4 - 1 = 7
    torch.testing.assert_close(iou_loss(a, b), torch.tensor([1 - 1 / 7]))


def test_non_overlapping_anchor_stalls_under_iou_but_moves_under_the_others():
    param = FAR_ANCHOR.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(iou_loss(param, UNIT_TARGET).sum(), param)
    assert torch.all(grad == 0)  # no overlap: IoU is 0 whatever small move B makes

    run = simulate_regression(REGRESSION_LOSSES["IoU"], FAR_ANCHOR, UNIT_TARGET, iterations=20)
    assert torch.equal(run.final, FAR_ANCHOR)
    # error per iteration |12.5 - 10| + 0 + 0 + 0 = 2.5, all in the centre
    np.testing.assert_allclose(run.error, np.full(20, 2.5))
    np.testing.assert_allclose(run.centre_error, np.full(20, 2.5))
    for name in ("GIoU", "DIoU", "CIoU"):
        run = simulate_regression(REGRESSION_LOSSES[name], FAR_ANCHOR, UNIT_TARGET, iterations=40,
                                  decay=False)
        assert run.centre_error[-1] < 2.5, name  # the centre moved towards the target ...
        assert run.final_iou[0] > 0, name  # ... and within 40 steps the boxes overlap


@pytest.mark.parametrize("name", list(REGRESSION_LOSSES))
def test_a_perfect_anchor_stays_put(name):
    targets = simulation_targets()  # (7, 4)
    run = simulate_regression(REGRESSION_LOSSES[name], targets, targets, iterations=10)
    torch.testing.assert_close(run.final, targets, rtol=0, atol=1e-12)
    assert np.all(run.error < 1e-10)


def test_trajectory_starts_at_the_anchor_and_ends_at_final():
    paths = regression_trajectories(FAR_ANCHOR[0], UNIT_TARGET[0], iterations=15)
    assert list(paths) == list(REGRESSION_LOSSES)
    for path in paths.values():
        assert path.shape == (16, 4)
        torch.testing.assert_close(path[0], FAR_ANCHOR[0])
    # two squares: v = 0 and CIoU's first step is DIoU's; GIoU takes another path at once
    torch.testing.assert_close(paths["DIoU"][1], paths["CIoU"][1])
    assert not torch.allclose(paths["GIoU"][1], paths["DIoU"][1])


@pytest.fixture(scope="module")
def small_runs():
    """8 points × 343 = 2,744 cases, T = 200, with the paper's step schedule and without it."""
    anchors, targets = simulation_boxes(num_points=8, seed=0)
    return anchors, {decay: {name: simulate_regression(fn, anchors, targets, decay=decay)
                             for name, fn in REGRESSION_LOSSES.items()}
                     for decay in (True, False)}


def test_runs_are_finite_and_boxes_stay_proper(small_runs):
    anchors, runs = small_runs
    for by_loss in runs.values():
        for run in by_loss.values():
            assert run.error.shape == (200,) and np.all(np.isfinite(run.error))
            np.testing.assert_allclose(run.error, run.centre_error + run.size_error)
            assert torch.isfinite(run.final).all()
            w, h = wh(run.final)
            assert float(w.min()) > 0 and float(h.min()) > 0
    per_point = error_per_point(runs[True]["CIoU"].final_error, 8)
    np.testing.assert_allclose(per_point.sum(), runs[True]["CIoU"].error[-1])


def test_the_losses_rank_as_measured(small_runs):
    anchors, runs = small_runs
    final = {decay: {k: r.error[-1] for k, r in by_loss.items()} for decay, by_loss in runs.items()}
    centre = {k: r.centre_error[-1] for k, r in runs[True].items()}
    # Measured (8 points = 2,744 cases, seed 0, float64; 94 % start without overlap):
    #   paper schedule:   E(200) IoU 11,540  GIoU 48.7  DIoU 107.4  CIoU 14.8
    #                     centre part IoU 8,096  GIoU 17.7  DIoU 5.2  CIoU 3.2
    #   constant η = 0.1: E(200) IoU 11,566  GIoU 481  DIoU 404  CIoU 373
    _, targets = simulation_boxes(num_points=8, seed=0)
    stalled = aligned_box_iou(anchors, targets) <= 0
    assert float(stalled.double().mean()) > 0.9  # most anchors start without overlap ...
    for decay in (True, False):  # ... so IoU loss leaves most of its error where it was
        assert all(final[decay]["IoU"] > 10 * final[decay][k] for k in ("GIoU", "DIoU", "CIoU"))
    # The paper's Figure 3(b) ordering, with a constant step: DIoU and CIoU below GIoU.
    assert final[False]["DIoU"] < final[False]["GIoU"]
    assert final[False]["CIoU"] < final[False]["GIoU"]
    # With the paper's step schedule CIoU is best; DIoU has the centres closest but grows its
    # boxes (a bigger box makes c larger, so ρ²/c² smaller) and ends with more size error.
    assert final[True]["CIoU"] < min(final[True]["GIoU"], final[True]["DIoU"])
    assert centre["DIoU"] < centre["GIoU"] and centre["CIoU"] < centre["GIoU"]


def test_compare_losses_returns_one_curve_per_loss():
    curves = compare_losses(num_points=1, iterations=5, seed=0)
    assert list(curves) == list(REGRESSION_LOSSES)
    assert all(c.shape == (5,) for c in curves.values())


def test_area_is_a_box_area():
    # the boxes are xyxy throughout: the library's box_area gives the anchors' areas
    anchors, _ = simulation_boxes(num_points=1, seed=0)
    assert sorted(set(np.round(box_area(anchors).numpy(), 6))) == sorted(ANCHOR_AREAS)


# ---------------------------------------------------------------------------- the pictures


def test_pictures_draw():
    curves = {"IoU": np.linspace(10, 9, 5), "CIoU": np.linspace(10, 1, 5)}
    ax = plot_regression_errors(curves, Figure().add_subplot())
    assert len(ax.lines) == 2 and ax.get_yscale() == "log"

    fig = Figure()
    axes = plot_regression_example(iterations=12, snapshots=(0, 5, 12), axes=fig.subplots(1, 4))
    assert len(axes) == 4 and "IoU loss: IoU at t=12 = 0.00" in axes[0].get_title()
    assert len(axes[1].patches) == 4  # the target and three snapshots

    anchors, targets = simulation_boxes(num_points=3, seed=0)
    run = simulate_regression(REGRESSION_LOSSES["DIoU"], anchors, targets, iterations=3)
    ax = plot_final_error_map(run.final_error, num_points=3, ax=Figure().add_subplot())
    assert len(ax.collections) == 1


def test_setting_picture_shows_targets_points_and_49_shapes():
    fig = Figure()
    left, right = plot_simulation_setting(num_points=12, axes=fig.subplots(1, 2))
    assert len(left.patches) == 7 + 1  # the seven targets and the disc
    assert len(left.collections) == 1 and left.collections[0].get_offsets().shape == (12, 2)
    assert len(right.patches) == 49  # 7 areas × 7 aspect ratios
    # each slot holds one shape: area w·h equals the row's area (e.g. row 6: area 2)
    areas = sorted(round(p.get_width() * p.get_height(), 6) for p in right.patches)
    assert areas == sorted(round(a, 6) for a in ANCHOR_AREAS for _ in ASPECT_RATIOS)
