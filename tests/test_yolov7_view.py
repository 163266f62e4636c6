"""YOLOv7's pictures (viz.elan_view, viz.yolov7_view): the ELAN layout is the forward's
concatenation, the kernels drawn add up to RepConv's fused kernel, the lead/aux steps are the
loss's own labels, and the reachable IoU of a bounded coder is checked by hand and by brute
force."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from yolo_teach.layers.elan import EELAN, ELAN  # noqa: E402
from yolo_teach.layers.rep import RepConv, fold_branch, identity_conv, pad_1x1_to_3x3  # noqa: E402
from yolo_teach.losses.yolov7_loss import LeadAuxLoss  # noqa: E402
from yolo_teach.models.yolov7 import yolov7, yolov7_tiny, yolov7x  # noqa: E402
from yolo_teach.viz import yolov7_view  # noqa: E402
from yolo_teach.viz.elan_view import ELANLayout, draw_elan, draw_kernel_sum, elan_layout  # noqa: E402
from yolo_teach.viz.yolov7_view import (  # noqa: E402
    assign_lead_aux,
    draw_lead_aux_cells,
    draw_ota_dynamic_k,
    lead_aux_handles,
    ota_candidate_costs,
    reachable_iou,
)

# ---- ELAN -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("block", "concat", "widths"), [
    (lambda: ELAN(64, 128, 64, 2), ("c2", "c1", "b", "a"), (64, 64, 64, 64)),  # yolov7-tiny
    (lambda: ELAN(256, 512, 128, 4, concat_every=2), ("c4", "c2", "b", "a"), (128,) * 4),
    (lambda: ELAN(512, 256, 256, 4, 128), ("c4", "c3", "c2", "c1", "b", "a"),
     (128, 128, 128, 128, 256, 256)),  # yolov7 neck: 4 x 128 + 2 x 256 = 1024
    (lambda: ELAN(320, 640, 128, 6, concat_every=2), ("c6", "c4", "c2", "b", "a"), (128,) * 5),
    (lambda: EELAN(32, 48, 8, 4, 6, concat_every=2, cardinality=3), ("c4", "c2", "b", "a"),
     (6, 6, 8, 8)),
])
def test_elan_layout_reads_the_block(block, concat, widths):
    block = block()
    lay = elan_layout(block)
    assert lay.concat == concat and lay.concat_widths == widths
    assert lay.transition_in == block.transition.conv.in_channels
    assert lay.kind == ("E-ELAN" if isinstance(block, EELAN) else "ELAN")


def _hooked_maps(block: nn.Module, x: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """Every map a, b, c1..cn the block computes, and what its transition reads."""
    maps, seen = {}, {}
    handles = [block.shortcut_conv.register_forward_hook(
                   lambda m, i, o: maps.__setitem__("a", o)),
               block.stem_conv.register_forward_hook(lambda m, i, o: maps.__setitem__("b", o)),
               block.transition.register_forward_pre_hook(
                   lambda m, i: seen.__setitem__("in", i[0]))]
    for k, conv in enumerate(block.blocks, start=1):
        handles.append(conv.register_forward_hook(
            lambda m, i, o, name=f"c{k}": maps.__setitem__(name, o)))
    block.eval()(x)
    for h in handles:
        h.remove()
    return maps, seen["in"]


def test_elan_layout_is_the_order_the_transition_reads():
    torch.manual_seed(0)
    block = ELAN(16, 24, 8, 4, 6, concat_every=2)
    maps, transition_in = _hooked_maps(block, torch.randn(1, 16, 5, 5))
    lay = elan_layout(block)
    torch.testing.assert_close(torch.cat([maps[n] for n in lay.concat], 1), transition_in)
    assert set(lay.outputs) == set(maps)


def test_eelan_layout_is_each_groups_concatenation_after_the_shuffle():
    torch.manual_seed(0)
    block = EELAN(16, 24, 8, 3, concat_every=1, cardinality=2)
    maps, transition_in = _hooked_maps(block, torch.randn(1, 16, 5, 5))
    lay = elan_layout(block)
    groups = [torch.cat([maps[n].chunk(2, 1)[k] for n in lay.concat], 1) for k in range(2)]
    torch.testing.assert_close(torch.cat(groups, 1), transition_in)
    assert lay.cardinality == 2 and lay.concat_channels == 2 * 8 + 3 * 8


def test_the_factories_blocks_and_the_yaml_concat_indices():
    with torch.device("meta"):
        tiny, v7, v7x = yolov7_tiny(), yolov7(), yolov7x()
    # the yaml's Concat indices count back from the last layer of [a, b, c1, ..., cn]
    for block, yaml in ((tiny.backbone.stage3[1], [-1, -2, -3, -4]),
                        (v7.backbone.stage3[1], [-1, -3, -5, -6]),
                        (v7.neck.elan_td4, [-1, -2, -3, -4, -5, -6]),
                        (v7x.backbone.stage3[1], [-1, -3, -5, -7, -8])):
        lay = elan_layout(block)
        assert [lay.outputs.index(n) - len(lay.outputs) for n in lay.concat] == yaml


def test_elan_layout_rejects_other_modules():
    with pytest.raises(TypeError, match="ELAN"):
        elan_layout(nn.Conv2d(3, 3, 1))


@pytest.mark.parametrize("block", [ELAN(32, 64, 16, 4, concat_every=2),
                                   EELAN(32, 64, 16, 4, concat_every=2, cardinality=2)])
def test_draw_elan_draws_one_arrow_per_concatenated_map(block):
    ax = Figure().add_subplot()
    lay = draw_elan(ax, block)
    assert isinstance(lay, ELANLayout)
    places = sorted(t.get_text() for t in ax.texts if t.get_text().startswith("#"))
    assert places == sorted(f"#{k}: {'2 x 16 ch' if lay.cardinality == 2 else '16 ch'}"
                            for k in range(1, 5))
    if lay.cardinality == 2:  # merge cardinality: the g transitions are added
        assert "sum of 2" in " ".join(t.get_text() for t in ax.texts)
    assert "concat [c4, c2, b, a]" in ax.get_title()


# ---- RepConv kernels ------------------------------------------------------------------------


def test_draw_kernel_sum_adds_up_to_the_fused_kernel():
    torch.manual_seed(0)
    rep = RepConv(4, 4, act_layer=None)
    for bn in (rep.conv3x3.bn, rep.conv1x1.bn, rep.identity):
        with torch.no_grad():
            bn.running_mean.normal_(0, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.normal_(1, 0.3)
    rep.eval()
    k3, _ = fold_branch(rep.conv3x3.conv, rep.conv3x3.bn)
    k1, _ = fold_branch(rep.conv1x1.conv, rep.conv1x1.bn)
    k0, _ = fold_branch(identity_conv(4), rep.identity)
    fig = Figure()
    axes = fig.subplots(1, 4)
    total = draw_kernel_sum(axes, {"3x3": k3[1, 1], "1x1": pad_1x1_to_3x3(k1)[1, 1],
                                   "identity": k0[1, 1]})
    np.testing.assert_allclose(total, rep.fused_kernel()[0][1, 1].numpy(), atol=1e-6)
    assert axes[1].get_title() == "+ 1x1" and axes[3].get_title() == "= fused kernel"
    assert len(axes[0].texts) == 9
    with pytest.raises(ValueError, match="axes"):
        draw_kernel_sum(axes[:3], {"3x3": k3[1, 1], "1x1": k1[1, 1].expand(3, 3),
                                   "identity": k0[1, 1]})


# ---- lead and auxiliary heads ---------------------------------------------------------------

ANCHORS = [torch.tensor([[8.0, 8], [12, 16], [16, 12]]), torch.tensor([[24.0, 24], [32, 40],
                                                                        [40, 32]])]
STRIDES = (8, 16)
# two images of 64 px: maps 8 x 8 and 4 x 4, 3 anchors, 2 classes
TARGETS = torch.tensor([[0, 0, 10.0, 12, 30, 36], [0, 1, 34, 30, 60, 58], [1, 1, 20, 8, 44, 40]])


def _outputs(seed=0):
    torch.manual_seed(seed)
    lead = [torch.randn(2, 3 * 7, 8, 8), torch.randn(2, 3 * 7, 4, 4)]
    aux = [torch.randn(2, 3 * 7, 8, 8), torch.randn(2, 3 * 7, 4, 4)]
    return lead + aux


def _as_set(assignments, image):
    return sorted((s, int(a), int(gy), int(gx), int(g))
                  for s, asg in enumerate(assignments)
                  for b, a, gy, gx, g in zip(asg.b, asg.a, asg.gy, asg.gx, asg.gt_index)
                  if b == image)


@pytest.mark.parametrize("guide", ["lead", "lead_fine", "independent"])
def test_assign_lead_aux_gives_the_labels_of_the_loss(guide):
    loss = LeadAuxLoss(ANCHORS, STRIDES, guide=guide)
    outputs = _outputs()
    lead, aux = loss.assign(outputs, TARGETS)
    rows = {0: [0, 1], 1: [2]}  # rows of TARGETS per image
    for image in (0, 1):
        steps = assign_lead_aux(loss, outputs, TARGETS, ANCHORS, image=image)
        for head, expected in (("lead", lead), ("aux", aux)):
            mine = [(s, a, gy, gx, rows[image][g])
                    for g in range(len(rows[image]))
                    for s, a, gy, gx in steps.positives(head, g)]
            assert sorted(mine) == _as_set(expected, image), (guide, head, image)
    assert (steps.aux is steps.lead) == (guide == "lead_fine")


def test_assign_lead_aux_without_aux_maps_and_errors():
    loss = LeadAuxLoss(ANCHORS, STRIDES)
    steps = assign_lead_aux(loss, _outputs()[:2], TARGETS, ANCHORS, image=1)
    assert steps.aux is None and steps.positives("aux") == [] and steps.positives("lead")
    with pytest.raises(ValueError, match="head"):
        steps.positives("middle")
    with pytest.raises(ValueError, match="no ground truth"):
        assign_lead_aux(loss, _outputs()[:2], TARGETS[:2], ANCHORS, image=1)


def test_ota_candidate_costs_split_the_cost_and_mark_k():
    loss = LeadAuxLoss(ANCHORS, STRIDES)
    steps = assign_lead_aux(loss, _outputs(), TARGETS, ANCHORS, image=0)
    for im in (steps.lead, steps.aux):
        for gt in (0, 1):
            costs = ota_candidate_costs(im, gt, STRIDES)
            assert np.all(np.diff(costs.cost) >= 0) and costs.chosen.sum() == costs.k
            assert costs.k == int(im.ota.dynamic_k[gt]) and costs.chosen[:costs.k].all()
            np.testing.assert_allclose(costs.cls_cost + 3 * costs.reg_cost, costs.cost,
                                       rtol=1e-5)
            assert costs.positive.sum() == int((im.ota.gt_index == gt).sum())
            assert set(costs.stride) <= {8.0, 16.0} and not costs.outside.any()
    ax = Figure().add_subplot()
    total = draw_ota_dynamic_k(ax, steps.aux, 0, topk=20)
    top = np.sort(steps.aux.ota.ious[0].numpy())[::-1][:20].sum()
    assert total == pytest.approx(top) and int(steps.aux.ota.dynamic_k[0]) == max(1, int(top))


def test_three_fine_and_five_coarse_cells_drawn_with_the_positives():
    # one ground truth, centre (36, 28) px: at stride 16 cell (2, 1), fractions (0.25, 0.75):
    # fine = centre, left (0.25 < 0.5), down (1 - 0.75 < 0.5); coarse adds right and up
    targets = torch.tensor([[0, 0, 24.0, 16, 48, 40]])
    loss = LeadAuxLoss(ANCHORS, STRIDES)
    steps = assign_lead_aux(loss, _outputs(), targets, ANCHORS, image=0)
    fig = Figure()
    counts = draw_lead_aux_cells(fig.add_subplot(), np.zeros((64, 64, 3)), steps, scale=1)
    assert counts["fine cells"] == 3 and counts["coarse cells"] == 5
    assert counts["lead positives"] == len([p for p in steps.positives("lead") if p[0] == 1])
    assert counts["aux positives"] == len([p for p in steps.positives("aux") if p[0] == 1])
    cells = {(int(x), int(y)) for x, y in zip(steps.fine_cells[1].gx, steps.fine_cells[1].gy)}
    assert cells == {(2, 1), (1, 1), (2, 2)}
    assert len(lead_aux_handles()) == 5


# ---- the decoder's restriction --------------------------------------------------------------


def test_reachable_iou_by_hand():
    # a 32 x 32 box at x 40..72, y 32..64: centre (56, 48), at stride 32 offsets from cell
    # (1, 1) are (0.75, 0.5): reachable. From the left neighbour (0, 1) the x offset is 1.75,
    # 0.25 cells = 8 px beyond the coder's 1.5: the best box covers the truth and reaches 8 px
    # further, IoU = w / (w + 2 d) = 32 / 48. The right neighbour's offset -0.25 is reachable.
    box = torch.tensor([40.0, 32, 72, 64])
    cells = np.array([[1, 1], [0, 1], [2, 1]])
    np.testing.assert_allclose(reachable_iou(box, cells, 32, [32.0, 32.0]),
                               [1.0, 32 / 48, 1.0], atol=1e-9)
    # an anchor of 4 px limits the size to 16 px: IoU at most 16^2 / 32^2 even at the centre
    assert reachable_iou(box, cells[:1], 32, [4.0, 4.0])[0] == pytest.approx(0.25, abs=1e-9)
    # an unbounded coder reaches every cell
    np.testing.assert_allclose(reachable_iou(box, cells, 32, [32.0, 32.0], (-2, 3)), 1.0)


def test_reachable_iou_is_at_least_a_brute_force_search():
    box = np.array([13.0, 21, 45, 39])  # 32 x 18, centre (29, 30)
    cells, stride, anchor = np.array([[0, 0], [2, 0], [1, 2]]), 16.0, np.array([10.0, 8])
    found = reachable_iou(box, cells, stride, anchor)
    for (gx, gy), best in zip(cells, found):
        top = 4 * anchor
        cx = (gx + np.linspace(-0.5, 1.5, 41)) * stride
        cy = (gy + np.linspace(-0.5, 1.5, 41)) * stride
        w, h = np.linspace(0.5, top[0], 40), np.linspace(0.5, top[1], 40)
        CX, CY, W, H = np.meshgrid(cx, cy, w, h, indexing="ij")
        ix = np.clip(np.minimum(CX + W / 2, box[2]) - np.maximum(CX - W / 2, box[0]), 0, None)
        iy = np.clip(np.minimum(CY + H / 2, box[3]) - np.maximum(CY - H / 2, box[1]), 0, None)
        inter = ix * iy
        brute = (inter / (32 * 18 + W * H - inter)).max()
        assert best >= brute - 1e-9 and best <= 1.0


def test_elan_pictures_are_still_importable_from_yolov7_view():
    """Notebook 14 imports the ELAN and RepConv pictures from viz.yolov7_view (their old home)."""
    assert yolov7_view.draw_elan is draw_elan
    assert yolov7_view.draw_kernel_sum is draw_kernel_sum
    assert yolov7_view.elan_layout is elan_layout
