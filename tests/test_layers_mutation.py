"""Focused tests of the YOLOv4 layers, written to kill the mutants that survived
``tests/test_layers_yolov4.py`` (see ``tests/MUTATION.md``).

Each test pins down one documented behaviour: defaults, argument checks and their messages, the
activation passed to every conv, DropBlock's seed probability and rescaling, and the arithmetic
of ``activation_cost``. Small inputs, values worked out by hand in the comments; all fast.
"""

import pytest
import torch
from torch import nn

from yolo_teach.layers import activations
from yolo_teach.layers.activations import activation_cost
from yolo_teach.layers.conv import ConvBNAct
from yolo_teach.layers.csp import ChannelSplit, CSPBlock, CSPStage, TinyCSPBlock
from yolo_teach.layers.regularization import DropBlock2d, smooth_labels
from yolo_teach.layers.spp import SPP, SPPF

# ---- SPP / SPPF ----------------------------------------------------------------------------


def test_spp_and_sppf_defaults_are_yolov4s_5_9_13():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 11, 14)
    assert SPP().kernel_sizes == (5, 9, 13)
    # SPPF's default single pool of 5, three times, is SPP(5, 9, 13); same H and W
    assert torch.equal(SPPF()(x), SPP()(x))
    assert SPPF()(x).shape == (1, 8, 11, 14)


def test_spp_keeps_its_kernel_sizes_as_a_tuple():
    assert SPP([3, 7]).kernel_sizes == (3, 7)  # a list given, a tuple kept


@pytest.mark.parametrize("sizes", [(4,), (5, 8, 13), (2,)])
def test_spp_rejects_even_kernel_sizes(sizes):
    # an even k with padding k // 2 would grow H and W by one
    with pytest.raises(ValueError, match=r"odd to keep H and W, got \("):
        SPP(sizes)


# ---- activation_cost -----------------------------------------------------------------------


class _FakeClock:
    now = 1000.0  # seconds; far from 0 so that a "+ start" would show


class _Tick(nn.Module):
    """An activation that takes 7 ms per call on the fake clock and counts its calls."""

    calls = 0

    def forward(self, x):
        _Tick.calls += 1
        _FakeClock.now += 0.007
        return x * 2.0


def test_activation_cost_reports_milliseconds_per_timed_step(monkeypatch):
    monkeypatch.setattr(activations.time, "perf_counter", lambda: _FakeClock.now)
    _Tick.calls = 0
    cost = activation_cost(_Tick, shape=(2, 3))
    # defaults: 1 probe call for the saved tensors + 3 warm-up + 20 timed = 24 calls; the timed
    # ones take 20 x 7 ms = 0.14 s on the fake clock, 0.14 * 1000 / 20 = 7 ms per step
    assert _Tick.calls == 1 + 3 + 20
    assert cost["ms_per_step"] == pytest.approx(7.0, rel=1e-9)
    _Tick.calls = 0
    cost = activation_cost(_Tick, shape=(2, 3), steps=4, warmup=0)
    assert _Tick.calls == 1 + 0 + 4
    assert cost["ms_per_step"] == pytest.approx(7.0, rel=1e-9)  # 4 x 7 ms / 4


class _Recorder(nn.Module):
    """Identity that records every input and the gradient of its first output."""

    inputs: list = []
    grads: list = []

    def forward(self, x):
        _Recorder.inputs.append(x.detach().clone())
        y = x * 1.0
        if len(_Recorder.inputs) == 1:
            y.register_hook(lambda g: _Recorder.grads.append(g.clone()))
        return y


def _record(global_seed):
    _Recorder.inputs, _Recorder.grads = [], []
    torch.manual_seed(global_seed)
    activation_cost(_Recorder, shape=(3, 4), steps=2, warmup=1)
    return _Recorder.inputs, _Recorder.grads


def test_activation_cost_is_reproducible_whatever_the_global_seed():
    inputs_a, grads_a = _record(1)
    inputs_b, grads_b = _record(2)
    # 1 + 1 + 2 calls, all on the same input (a fresh copy each time)
    assert len(inputs_a) == 4 and all(torch.equal(x, inputs_a[0]) for x in inputs_a)
    # its own generator: the input and the output gradient do not depend on torch.manual_seed
    assert torch.equal(inputs_a[0], inputs_b[0])
    assert len(grads_a) == len(grads_b) == 1
    assert torch.equal(grads_a[0], grads_b[0])
    assert not torch.equal(grads_a[0], inputs_a[0])  # two different draws


# ---- CSP -----------------------------------------------------------------------------------


def _conv_acts(module: nn.Module) -> list[type]:
    return [type(m.act) for m in module.modules() if isinstance(m, ConvBNAct)]


def test_csp_block_uses_act_layer_in_every_conv():
    # 2 split convs + 2 residual blocks x 2 convs + partial transition + transition = 8 convs
    assert _conv_acts(CSPBlock(8, 8, depth=2, act_layer=nn.SiLU)) == [nn.SiLU] * 8


def test_csp_stage_uses_act_layer_in_every_conv():
    # downsample + the CSP block's 2 + 2 + 1 + 1 = 7 convs
    assert _conv_acts(CSPStage(4, 8, depth=1, act_layer=nn.SiLU)) == [nn.SiLU] * 7


def test_tiny_csp_block_uses_act_layer_in_every_conv():
    # conv, conv1, conv2, transition
    assert _conv_acts(TinyCSPBlock(4, 8, act_layer=nn.SiLU)) == [nn.SiLU] * 4


def test_channel_split_default_is_yolov4_tinys_second_half():
    x = torch.arange(6.0).view(1, 6, 1, 1)  # channel i holds the value i
    assert ChannelSplit()(x).flatten().tolist() == [3.0, 4.0, 5.0]  # groups=2, group_id=1
    assert ChannelSplit(groups=3, group_id=2)(x).flatten().tolist() == [4.0, 5.0]
    with pytest.raises(ValueError, match=r"group_id must be in \[0, 2\), got 2"):
        ChannelSplit(2, 2)
    with pytest.raises(ValueError, match=r"got -1"):
        ChannelSplit(2, -1)


# ---- DropBlock -----------------------------------------------------------------------------


def test_dropblock_defaults_and_repr():
    # the paper's block size 7 and YOLOv4's usual 0.1
    assert repr(DropBlock2d()) == "DropBlock2d(drop_prob=0.1, block_size=7)"


@pytest.mark.parametrize("p", [1.0, 1.5, -0.1])
def test_dropblock_rejects_drop_prob_outside_0_1(p):
    with pytest.raises(ValueError, match=r"drop_prob must be in \[0, 1\)"):
        DropBlock2d(p)


def test_dropblock_seed_probability_on_a_map_the_size_of_a_block():
    # H = W = b = 5: one place for a square, gamma = p / 25 * 25 / (1 * 1) = p = 0.5, so about
    # half of the 4,000 maps are dropped whole (std sqrt(0.25 / 4000) = 0.008)
    torch.manual_seed(0)
    y = DropBlock2d(0.5, 5).train()(torch.ones(4000, 1, 5, 5))
    dropped_maps = (y == 0).flatten(1).all(1)
    kept_maps = (y != 0).flatten(1).all(1)
    assert (dropped_maps | kept_maps).all()  # whole 5x5 squares
    assert dropped_maps.double().mean().item() == pytest.approx(0.5, abs=0.04)


@pytest.mark.parametrize("shape", [(2, 3, 3, 10), (2, 3, 10, 3)])
def test_dropblock_clips_the_block_to_the_map(shape):
    # block 5 on a 3 x 10 map: b = min(5, 3, 10) = 3, seeds on a 1 x 8 (or 8 x 1) grid
    torch.manual_seed(0)
    y = DropBlock2d(0.5, 5).train()(torch.ones(shape))
    assert y.shape == shape
    assert (y == 0).any() and (y != 0).any()


def test_dropblock_rescaling_keeps_the_sum():
    # 2 units, b = 1, gamma = p = 0.5: each unit dropped with probability 1/2. The kept ones
    # are scaled by count(M) / count_ones(M), so the sum of ones stays 2 (one kept: 1 x 2 / 1),
    # unless both are dropped (0, not NaN)
    sums = []
    for seed in range(40):
        torch.manual_seed(seed)
        y = DropBlock2d(0.5, 1).train()(torch.ones(1, 1, 1, 2))
        assert torch.isfinite(y).all()
        sums.append((y.sum().item(), (y != 0).sum().item()))
    assert {n for _, n in sums} == {0, 1, 2}  # every case seen
    for total, n in sums:
        assert total == pytest.approx(2.0 if n else 0.0)


def test_dropblock_follows_the_input_device():
    # the meta device: shapes without data; noise made on another device could not mix with x
    y = DropBlock2d(0.1, 3).train()(torch.ones(2, 3, 8, 8, device="meta"))
    assert y.device.type == "meta" and y.shape == (2, 3, 8, 8)


def test_dropblock_off_draws_no_random_numbers():
    # a DropBlock that is off (eval, or p = 0 at the start of a schedule) leaves the global RNG
    # alone, so runs with and without it draw the same random numbers afterwards
    x = torch.ones(1, 2, 6, 6)
    torch.manual_seed(0)
    expected = torch.rand(3)
    for drop in (DropBlock2d(0.0, 3).train(), DropBlock2d(0.3, 3).eval()):
        torch.manual_seed(0)
        assert torch.equal(drop(x), x)
        assert torch.equal(torch.rand(3), expected)


# ---- label smoothing -----------------------------------------------------------------------


def test_smooth_labels_keeps_num_classes_when_the_last_class_is_absent():
    # indices 0 and 1 only, K = 4: one_hot must still make 4 columns
    smoothed = smooth_labels(torch.tensor([0, 1]), num_classes=4, epsilon=0.2)
    # 1 -> 1 * 0.8 + 0.1 = 0.9, 0 -> 0.1
    expected = torch.tensor([[0.9, 0.1, 0.1, 0.1], [0.1, 0.9, 0.1, 0.1]])
    torch.testing.assert_close(smoothed, expected)


def test_smooth_labels_on_batched_one_hot_targets():
    # (B, N, K) = (1, 2, 3): the class axis is the last one, not axis 1
    one_hot = torch.tensor([[[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]])
    expected = torch.tensor([[[0.05, 0.95, 0.05], [0.95, 0.05, 0.05]]])
    torch.testing.assert_close(smooth_labels(one_hot, 3, 0.1), expected)
    with pytest.raises(ValueError, match="one-hot targets have 3 classes, not 2"):
        smooth_labels(one_hot, 2, 0.1)
