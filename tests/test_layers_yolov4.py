"""Tests of the YOLOv4 layers: Mish, CSP blocks, SPP/SPPF, SAM, DropBlock and label smoothing.

Reference cross-checks (``F.mish``, SPP against SPPF), hand-computed sizes with the arithmetic
in a comment, and invariants (DropBlock drops whole squares, eval is the identity).
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from yolo_teach.layers.activations import MemoryEfficientMish, Mish, activation_cost
from yolo_teach.layers.attention import SAM
from yolo_teach.layers.conv import ConvBNAct, DarknetLeaky
from yolo_teach.layers.csp import ChannelSplit, CSPBlock, CSPStage, TinyCSPBlock
from yolo_teach.layers.regularization import DropBlock2d, block_mask, smooth_labels
from yolo_teach.layers.spp import SPP, SPPF

MISH = [Mish, MemoryEfficientMish]


def mish_points() -> torch.Tensor:
    # dense around the dip at x ~ -1.19, across softplus' threshold 20, and far out on both sides
    dense = torch.linspace(-12, 12, 2401, dtype=torch.float64)
    edges = torch.tensor(
        [-1e4, -700.0, -100.0, -40.0, -20.0, 19.5, 20.0, 20.5, 40.0, 100.0, 700.0, 1e4],
        dtype=torch.float64,
    )
    return torch.cat([dense, edges])


# ---- Mish ----------------------------------------------------------------------------------


@pytest.mark.parametrize("act_layer", MISH)
def test_mish_values_and_gradients_equal_torch_mish(act_layer):
    x = mish_points().requires_grad_()
    ref = x.detach().clone().requires_grad_()
    y, y_ref = act_layer()(x), F.mish(ref)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y.backward(grad)
    y_ref.backward(grad)
    torch.testing.assert_close(x.grad, ref.grad, rtol=1e-10, atol=1e-12)
    assert torch.isfinite(x.grad).all()


def test_mish_hand_values():
    x = torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64)
    # mish(1) = tanh(ln(1 + e)) = tanh(1.3133) = 0.8651; mish(-1) = -tanh(ln(1 + 1/e)) = -0.3034
    expected = torch.tensor([0.0, 0.865098, -0.303401], dtype=torch.float64)
    torch.testing.assert_close(Mish()(x), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("act_layer", MISH)
def test_mish_gradcheck(act_layer):
    x = torch.linspace(-6, 6, 25, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(act_layer(), (x,))


def test_activation_cost_structure_and_memory_efficient_mish_saves_less():
    shape = (2, 4, 16, 16)  # 2,048 float32 values = 8,192 bytes
    costs = {
        act: activation_cost(act, shape=shape, steps=2, warmup=1)
        for act in (DarknetLeaky, nn.SiLU, Mish, MemoryEfficientMish)
    }
    for cost in costs.values():
        assert set(cost) == {"ms_per_step", "peak_bytes", "saved_tensors"}
        assert cost["ms_per_step"] > 0
    # the memory-efficient Function keeps only x; autograd keeps x and tanh(softplus(x))
    assert costs[MemoryEfficientMish]["peak_bytes"] == 8192
    assert costs[Mish]["peak_bytes"] == 2 * 8192
    assert costs[MemoryEfficientMish]["peak_bytes"] < costs[Mish]["peak_bytes"]
    # leaky (in place: its output) and SiLU (its input) keep one map each
    assert costs[DarknetLeaky]["peak_bytes"] == costs[nn.SiLU]["peak_bytes"] == 8192


# ---- CSP -----------------------------------------------------------------------------------


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_cspdarknet53_first_stage_has_full_width_parts():
    stage = CSPStage(32, 64, depth=1, hidden_channels=64)
    # downsample 3x3x32x64 + BN 128 = 18,560; three 1x1 64->64 (two splits, partial transition)
    # 3 x (4,096 + 128) = 12,672; residual 1x1 64->32 (2,048 + 64) and 3x3 32->64
    # (18,432 + 128) = 20,672; transition 1x1 128->64 (8,192 + 128) = 8,320. Total 60,224.
    assert n_params(stage) == 60_224
    assert stage.csp.split_main.conv.out_channels == 64
    assert stage.csp.blocks[0].squeeze.conv.out_channels == 32
    x = torch.rand(2, 32, 16, 16)
    assert stage(x).shape == (2, 64, 8, 8)


def test_later_csp_stages_split_into_halves():
    stage = CSPStage(64, 128, depth=2)
    assert stage.csp.split_skip.conv.out_channels == 64
    assert stage.csp.split_main.conv.out_channels == 64
    # the residual blocks work at 64 and do not squeeze (C_out / 2 = 64)
    assert stage.csp.blocks[0].squeeze.conv.out_channels == 64
    assert stage.csp.transition.conv.in_channels == 128
    assert stage(torch.rand(1, 64, 16, 16)).shape == (1, 128, 8, 8)


def test_csp_block_concatenates_main_then_skip():
    torch.manual_seed(0)
    block = CSPBlock(8, 8, depth=1).eval()
    seen = {}
    block.transition.register_forward_hook(lambda m, inp, out: seen.update(cat=inp[0]))
    x = torch.rand(1, 8, 6, 6)
    block(x)
    main = block.transition_main(block.blocks(block.split_main(x)))
    skip = block.split_skip(x)
    torch.testing.assert_close(seen["cat"], torch.cat([main, skip], dim=1))
    assert block(x).shape == (1, 8, 6, 6)  # stride 1: usable in a neck


def test_channel_split_keeps_the_second_half():
    x = torch.arange(6.0).view(1, 6, 1, 1)  # channel i holds the value i
    assert ChannelSplit(groups=2, group_id=1)(x).flatten().tolist() == [3.0, 4.0, 5.0]
    assert ChannelSplit(groups=2, group_id=0)(x).flatten().tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(ValueError):
        ChannelSplit(groups=2, group_id=2)


def test_tiny_csp_block_shapes_and_split():
    torch.manual_seed(0)
    block = TinyCSPBlock(16, 32).eval()
    x = torch.rand(2, 16, 8, 8)
    out, y = block(x)
    assert out.shape == (2, 64, 8, 8) and y.shape == (2, 32, 8, 8)
    seen = {}
    block.conv1.register_forward_hook(lambda m, inp, o: seen.update(inp=inp[0]))
    out, y = block(x)
    conv = block.conv(x)  # (2, 32, 8, 8)
    torch.testing.assert_close(seen["inp"], conv[:, 16:])  # the second half goes on
    torch.testing.assert_close(out[:, :32], conv)  # the whole map skips to the output
    torch.testing.assert_close(out[:, 32:], y)


# ---- SPP / SPPF ----------------------------------------------------------------------------


def test_spp_keeps_size_and_concatenates_in_darknet_order():
    x = torch.randn(2, 3, 13, 13)
    y = SPP((5, 9, 13))(x)
    assert y.shape == (2, 12, 13, 13)
    torch.testing.assert_close(y[:, 0:3], F.max_pool2d(x, 13, 1, 6))  # [max13, max9, max5, x]
    torch.testing.assert_close(y[:, 3:6], F.max_pool2d(x, 9, 1, 4))
    torch.testing.assert_close(y[:, 6:9], F.max_pool2d(x, 5, 1, 2))
    torch.testing.assert_close(y[:, 9:12], x)


def test_spp_pools_a_spike_into_squares():
    x = torch.full((1, 1, 15, 15), -1.0)
    x[0, 0, 7, 7] = 1.0  # one spike in the centre
    y = SPP((5, 9, 13))(x)
    # a k x k stride-1 max-pool spreads the spike over a k x k square: 169, 81, 25 cells
    assert [(y[0, i] == 1).sum().item() for i in range(4)] == [169, 81, 25, 1]


def test_sppf_equals_spp_5_9_13_exactly():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 20, 17) * 10  # negative values too: the padding must act as -inf
    assert torch.equal(SPPF(5)(x), SPP((5, 9, 13))(x))


def test_sppf_equals_spp_between_shared_convs():
    torch.manual_seed(0)
    with_spp = nn.Sequential(ConvBNAct(8, 4, 1), SPP((5, 9, 13)), ConvBNAct(16, 8, 1)).eval()
    with_sppf = nn.Sequential(ConvBNAct(8, 4, 1), SPPF(5), ConvBNAct(16, 8, 1)).eval()
    with_sppf.load_state_dict(with_spp.state_dict())  # pools have no weights: same keys
    x = torch.randn(2, 8, 13, 13)
    assert torch.equal(with_sppf(x), with_spp(x))


# ---- SAM -----------------------------------------------------------------------------------


def test_sam_is_pointwise_attention():
    sam = SAM(4).eval()
    # 1x1 conv 4->4 (16 weights) + BN scale and shift (8): 24 parameters
    assert n_params(sam) == 24
    x = torch.randn(2, 4, 5, 5)
    nn.init.zeros_(sam.attention.conv.weight)
    # conv = 0, BN(0) = beta = 0 at init (eval, running mean 0, var 1), sigmoid(0) = 1/2
    torch.testing.assert_close(sam(x), x / 2, atol=1e-6, rtol=0)
    nn.init.normal_(sam.attention.conv.weight)
    attention = sam.attention(x)
    assert attention.shape == x.shape and ((attention > 0) & (attention < 1)).all()
    torch.testing.assert_close(sam(x), x * attention)


# ---- DropBlock -----------------------------------------------------------------------------


def test_dropblock_is_identity_in_eval_and_at_zero():
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(DropBlock2d(0.3, 5).eval()(x), x)
    assert torch.equal(DropBlock2d(0.0, 5).train()(x), x)


def test_block_mask_grows_one_seed_into_one_square():
    seeds = torch.zeros(1, 1, 8, 8)  # H = W = 10, block 3: 10 - 3 + 1 = 8 top-left corners
    seeds[0, 0, 2, 5] = 1
    expected = torch.zeros(1, 1, 10, 10)
    expected[0, 0, 2:5, 5:8] = 1
    assert torch.equal(block_mask(seeds, 3), expected)


def expected_drop_fraction(size: int, block: int, gamma: float) -> float:
    """Exact expected dropped fraction: a pixel is dropped unless none of the n seeds whose
    square covers it fires, 1 - (1 - gamma)^n, averaged over the map."""
    i = torch.arange(size)
    # seed rows r in [0, size - block] with r <= i <= r + block - 1
    n_rows = torch.minimum(i, torch.tensor(size - block)) - torch.clamp(i - block + 1, min=0) + 1
    n = n_rows[:, None] * n_rows[None, :]
    return (1 - (1 - gamma) ** n.double()).mean().item()


def test_dropblock_drops_the_expected_fraction_and_rescales():
    torch.manual_seed(0)
    p, b, size = 0.1, 5, 128
    drop = DropBlock2d(p, b).train()
    x = torch.ones(4, 16, size, size)
    y = drop(x)
    dropped = (y == 0).double().mean().item()
    gamma = p / b**2 * size**2 / (size - b + 1) ** 2  # eq. 1
    # overlapping squares drop a bit less than p: 0.0958 here instead of 0.1
    assert dropped == pytest.approx(expected_drop_fraction(size, b, gamma), rel=0.03)
    assert dropped == pytest.approx(p, rel=0.1)
    kept = y[y != 0]
    # kept units scaled by count(M) / count_ones(M): the mean stays 1
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - dropped)))
    assert y.mean().item() == pytest.approx(1.0, rel=1e-5)


def test_dropblock_drops_whole_squares():
    torch.manual_seed(1)
    b = 4
    y = DropBlock2d(0.2, b).train()(torch.ones(2, 3, 40, 40))
    dropped = (y == 0).float()
    assert dropped.sum() > 0
    # a union of b x b squares is unchanged by a morphological opening with a b x b square:
    # erosion (a b x b window entirely dropped) then dilation (grow those corners back)
    eroded = -F.max_pool2d(-dropped, b, stride=1)  # (2, 3, 40 - b + 1, 40 - b + 1)
    assert torch.equal(block_mask(eroded, b), dropped)


# ---- label smoothing -----------------------------------------------------------------------


def test_smooth_labels_sigmoid_rule():
    eps = 0.1
    # darknet: y (1 - eps) + eps / 2 -> 1 becomes 0.95, 0 becomes 0.05
    smoothed = smooth_labels(torch.tensor([2, 0]), num_classes=3, epsilon=eps)
    expected = torch.tensor([[0.05, 0.05, 0.95], [0.95, 0.05, 0.05]])
    torch.testing.assert_close(smoothed, expected)
    one_hot = F.one_hot(torch.tensor([2, 0]), 3).float()
    torch.testing.assert_close(smooth_labels(one_hot, 3, eps), expected)
    assert torch.equal(smooth_labels(one_hot, 3, 0.0), one_hot)
    with pytest.raises(ValueError):
        smooth_labels(one_hot, 4, eps)
    assert math.isclose(smooth_labels(torch.tensor(1), 80, 0.2)[1].item(), 0.9, rel_tol=1e-6)
