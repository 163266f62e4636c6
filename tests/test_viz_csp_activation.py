"""The stage diagrams and stage costs of notebook 07, the activation curves of notebook 08."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from yolo_teach.layers.activations import MemoryEfficientMish, Mish, activation_cost  # noqa: E402
from yolo_teach.layers.conv import DarknetLeaky  # noqa: E402
from yolo_teach.layers.csp import CSPStage  # noqa: E402
from yolo_teach.layers.darknet import DarknetStage  # noqa: E402
from yolo_teach.models.summary import count_flops, count_parameters, summary  # noqa: E402
from yolo_teach.models.yolov3 import Darknet53  # noqa: E402
from yolo_teach.models.yolov4 import CSPDarknet53  # noqa: E402
from yolo_teach.viz.activation_view import (  # noqa: E402
    activation_curves,
    plot_activation_costs,
    plot_activation_curves,
)
from yolo_teach.viz.csp_view import (  # noqa: E402
    draw_stage,
    plot_stage_costs,
    stage_costs,
    stage_diagram,
)


# ---- stage diagrams ----------------------------------------------------------------------
def test_darknet_stage_diagram_reads_the_module():
    stage = DarknetStage(32, 64, depth=3)
    d = stage_diagram(stage, in_hw=(64, 64))
    assert [b.key for b in d.boxes] == ["input", "downsample", "blocks", "output"]
    assert d.box("downsample").detail == "3x3/2, 32 -> 64"
    assert d.box("blocks").title == "3 x residual block"
    assert d.box("blocks").detail == "1x1 64 -> 32, 3x3 32 -> 64, + x"  # squeeze to C/2
    assert d.box("output").detail == "64 x 32 x 32"  # 64 px halved by the stride-2 conv
    assert d.box("blocks").params == count_parameters(stage.blocks)
    assert d.params == count_parameters(stage) and d.depth == 3
    assert {a.role for a in d.arrows} == {"main"}


def test_csp_stage_diagram_has_a_skip_part_around_the_blocks():
    stage = CSPStage(64, 128, depth=2)  # a later stage: parts of 128 / 2 = 64
    d = stage_diagram(stage)
    assert d.box("csp.split_main").detail == "1x1, 128 -> 64"
    assert d.box("csp.split_skip").detail == "1x1, 128 -> 64"
    assert d.box("concat").detail == "64 + 64 = 128 ch"
    assert d.box("csp.transition").detail == "1x1, 128 -> 128"
    assert d.box("csp.blocks").detail == "1x1 64 -> 64, 3x3 64 -> 64, + x"
    skip = [(a.start, a.end) for a in d.arrows if a.role == "skip"]
    # the skip part goes from the downsample conv to the concatenation, never into the blocks
    assert skip == [("downsample", "csp.split_skip"), ("csp.split_skip", "concat")]
    assert all("blocks" not in key for arrow in skip for key in arrow)
    # every module with weights is in exactly one box
    boxed = sum(b.params for b in d.boxes if b.params is not None)
    assert boxed == count_parameters(stage) == d.params
    assert d.arrows[0].label == "64 ch"  # no in_hw: channels only


def test_first_csp_stage_keeps_full_width_parts():
    stage = CSPStage(32, 64, depth=1, hidden_channels=64)  # CSPDarknet53's stage 1
    d = stage_diagram(stage, in_hw=(256, 256))
    assert d.box("concat").detail == "64 + 64 = 128 ch"
    assert d.box("csp.blocks").detail == "1x1 64 -> 32, 3x3 32 -> 64, + x"
    assert d.box("output").detail == "64 x 128 x 128"


def test_stage_diagram_rejects_other_modules():
    with pytest.raises(TypeError):
        stage_diagram(nn.Conv2d(3, 8, 3))


def test_draw_stage_draws_every_box_and_arrow():
    for stage in (DarknetStage(8, 16, 1), CSPStage(8, 16, 2)):
        ax = Figure(figsize=(3, 4), dpi=50).add_subplot()
        d = draw_stage(ax, stage, in_hw=(32, 32))
        assert len(ax.patches) == len(d.boxes)
        # one text per box and one per arrow label; arrows are annotations
        labels = [t for t in ax.texts if t.get_text()]
        assert len(labels) == len(d.boxes) + len(d.arrows)
        assert f"{d.params:,} params" in ax.get_title()


# ---- stage costs -------------------------------------------------------------------------
@pytest.mark.parametrize("backbone", [
    Darknet53(8, (16, 32, 64, 128, 256), (1, 1, 2, 2, 1)),
    CSPDarknet53(8, (16, 32, 64, 128, 256), (1, 1, 2, 2, 1)),
])
def test_stage_costs_add_up_to_the_model(backbone):
    costs = stage_costs(backbone, 64)
    assert [c.name for c in costs] == ["stem", "stage1", "stage2", "stage3", "stage4", "stage5"]
    assert sum(c.params for c in costs) == count_parameters(backbone)
    assert sum(c.flops for c in costs) == count_flops(backbone, 64) == summary(backbone, 64).total_flops
    assert costs[2].params == count_parameters(backbone.stage2)


def test_csp_stages_cost_less_than_darknet_stages_except_the_first():
    widths, depths = (16, 32, 64, 128, 256), (1, 2, 8, 8, 4)
    dark = {c.name: c for c in stage_costs(Darknet53(8, widths, depths), 64)}
    csp = {c.name: c for c in stage_costs(CSPDarknet53(8, widths, depths), 64)}
    assert dark["stem"] == csp["stem"]
    assert csp["stage1"].flops > dark["stage1"].flops  # full-width parts: more, not less
    for name in ("stage2", "stage3", "stage4", "stage5"):
        assert csp[name].params < dark[name].params and csp[name].flops < dark[name].flops


def test_plot_stage_costs_one_bar_per_stage_and_backbone():
    tiny = (8, (16, 32, 64, 128, 256), (1, 1, 1, 1, 1))
    costs = {"a": stage_costs(Darknet53(*tiny), 32), "b": stage_costs(CSPDarknet53(*tiny), 32)}
    fig = Figure(figsize=(4, 2), dpi=50)
    axes = plot_stage_costs(costs, fig.subplots(1, 2))
    assert all(len(ax.patches) == 2 * 6 for ax in axes)


# ---- activation curves -------------------------------------------------------------------
ACTS = {"ReLU": nn.ReLU, "leaky 0.1": DarknetLeaky, "SiLU": nn.SiLU, "Mish": Mish,
        "MemoryEfficientMish": MemoryEfficientMish}
ACTS_INDEX = {name: i for i, name in enumerate(ACTS)}


def test_activation_curves_match_closed_forms():
    x = np.linspace(-5, 5, 201)
    curves = activation_curves(ACTS, x)
    relu, drelu = curves["ReLU"]
    np.testing.assert_array_equal(relu, np.maximum(x, 0))
    np.testing.assert_array_equal(drelu, (x > 0).astype(float))  # 0 at x = 0 (PyTorch)
    leaky, dleaky = curves["leaky 0.1"]
    np.testing.assert_allclose(leaky, np.where(x > 0, x, 0.1 * x))
    np.testing.assert_allclose(dleaky, np.where(x > 0, 1.0, 0.1))
    sig = 1 / (1 + np.exp(-x))
    silu, dsilu = curves["SiLU"]
    np.testing.assert_allclose(silu, x * sig, rtol=1e-12)
    np.testing.assert_allclose(dsilu, sig * (1 + x * (1 - sig)), rtol=1e-10)  # d(x s) = s + x s'
    t = np.tanh(np.log1p(np.exp(x)))
    mish, dmish = curves["Mish"]
    np.testing.assert_allclose(mish, x * t, rtol=1e-12)
    np.testing.assert_allclose(dmish, t + x * sig * (1 - t * t), rtol=1e-10)
    for a, b in zip(curves["Mish"], curves["MemoryEfficientMish"]):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_mish_curve_equals_torch_mish_and_dips():
    x = torch.linspace(-6, 6, 1201, dtype=torch.float64)
    y, _ = activation_curves({"Mish": Mish}, x)["Mish"]
    np.testing.assert_allclose(y, F.mish(x).numpy(), atol=1e-15)
    i = int(np.argmin(y))
    assert -1.25 < float(x[i]) < -1.15 and -0.31 < y[i] < -0.30  # the dip near (-1.19, -0.309)


def test_activation_curves_leave_the_input_alone():
    x = torch.linspace(-1, 1, 5, dtype=torch.float64)
    before = x.clone()
    activation_curves({"leaky 0.1": DarknetLeaky}, x)  # in place by default
    assert torch.equal(x, before)


def test_plot_activation_curves_and_costs():
    x = np.linspace(-3, 3, 31)
    fig = Figure(figsize=(4, 2), dpi=50)
    axes = plot_activation_curves(x, activation_curves(ACTS, x), fig.subplots(1, 2))
    assert all(len(ax.lines) == len(ACTS) + 2 for ax in axes)  # + the two zero lines
    costs = {name: activation_cost(act, shape=(1, 2, 4, 4), steps=1, warmup=0)
             for name, act in ACTS.items()}
    axes = plot_activation_costs(costs, Figure(figsize=(4, 2), dpi=50).subplots(1, 2))
    assert [len(ax.patches) for ax in axes] == [len(ACTS), len(ACTS)]
    widths = [p.get_width() for p in axes[1].patches]
    assert widths[ACTS_INDEX["Mish"]] == 2 * widths[ACTS_INDEX["MemoryEfficientMish"]]

