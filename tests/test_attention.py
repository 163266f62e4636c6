"""Tests of SE and CBAM (parameter counts, an independent re-computation of each equation) and of
the context managers that record their maps or switch them off."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from yolo_teach.layers.attention import CBAM, SE, attention_off, record_attention
from yolo_teach.models.summary import count_parameters


def mlp_params(c: int, r: int = 16) -> int:
    # two layers with a bias: C -> C/r -> C
    return 2 * c * (c // r) + c // r + c


@pytest.mark.parametrize("channels", [32, 64, 256])
def test_se_and_cbam_parameter_counts(channels):
    assert count_parameters(SE(channels)) == mlp_params(channels)
    # + the 7x7 conv over 2 maps without bias (2 * 49 = 98) + its BatchNorm(1) (scale, shift)
    assert count_parameters(CBAM(channels)) == mlp_params(channels) + 98 + 2
    assert count_parameters(CBAM(channels, spatial_bn=False)) == mlp_params(channels) + 98
    # 64 channels: 2 * 64 * 4 + 4 + 64 = 580 for SE, 680 for CBAM
    assert count_parameters(SE(64)) == 580 and count_parameters(CBAM(64)) == 680


def test_se_is_squeeze_then_excitation():
    torch.manual_seed(0)
    se = SE(32, reduction=8)
    x = torch.randn(2, 32, 5, 7)
    w1, b1 = se.gate[1].weight.flatten(1), se.gate[1].bias  # (4, 32), (4,)
    w2, b2 = se.gate[3].weight.flatten(1), se.gate[3].bias  # (32, 4), (32,)
    z = x.mean(dim=(2, 3))  # squeeze: (2, 32)
    s = torch.sigmoid(F.relu(z @ w1.T + b1) @ w2.T + b2)  # excitation: (2, 32)
    torch.testing.assert_close(se(x), x * s[:, :, None, None])


@pytest.mark.parametrize("spatial_bn", [True, False])
def test_cbam_is_channel_then_spatial_attention(spatial_bn):
    torch.manual_seed(0)
    cbam = CBAM(32, spatial_bn=spatial_bn).eval()
    x = torch.randn(2, 32, 6, 6)
    mlp = cbam.channel_gate.mlp

    def shared_mlp(f):  # eq. 2: W_1(ReLU(W_0 f)), one MLP for both descriptors
        return F.linear(F.relu(F.linear(f, mlp[0].weight, mlp[0].bias)), mlp[2].weight, mlp[2].bias)

    m_c = torch.sigmoid(shared_mlp(x.mean((2, 3))) + shared_mlp(x.amax((2, 3))))  # eq. 1: (2, 32)
    x1 = x * m_c[:, :, None, None]
    pooled = torch.stack([x1.amax(1), x1.mean(1)], dim=1)  # [max; mean]: (2, 2, 6, 6)
    m_s = cbam.spatial_gate.bn(F.conv2d(pooled, cbam.spatial_gate.conv.weight, padding=3))
    torch.testing.assert_close(cbam(x), x1 * torch.sigmoid(m_s))  # eq. 3-4
    assert cbam.spatial_gate.conv.bias is None
    assert isinstance(cbam.spatial_gate.bn, nn.BatchNorm2d if spatial_bn else nn.Identity)


def small_net():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), SE(16), nn.ReLU(), CBAM(16),
                         nn.Sequential(nn.Conv2d(16, 8, 1), CBAM(8, reduction=4)))


def test_record_attention_gives_every_map_by_name_with_shapes_in_0_1():
    torch.manual_seed(0)
    net = small_net().eval()
    x = torch.randn(2, 3, 10, 12)
    with record_attention(net) as maps:
        y = net(x)
    assert sorted(maps) == ["1", "3", "4.1"]
    assert set(maps["1"]) == {"channel"}  # SE: channel attention only
    assert maps["1"]["channel"].shape == (2, 16)
    assert maps["3"]["channel"].shape == (2, 16) and maps["3"]["spatial"].shape == (2, 1, 10, 12)
    assert maps["4.1"]["channel"].shape == (2, 8)
    for kinds in maps.values():
        for m in kinds.values():
            assert ((m >= 0) & (m <= 1)).all() and not m.requires_grad
    torch.testing.assert_close(maps["1"]["channel"], net[1].gate(net[0](x)).flatten(1))
    # the hooks are gone after the block, and recording changed nothing
    assert all(not m._forward_hooks for m in net.modules())
    torch.testing.assert_close(net(x), y)


def test_attention_off_makes_every_module_an_identity_until_the_block_ends():
    torch.manual_seed(0)
    net = small_net().eval()
    x = torch.randn(2, 3, 8, 8)
    with_attention = net(x)
    without = net[4][0](F.relu(net[0](x)))  # the net with SE and both CBAMs removed
    with attention_off(net) as names:
        torch.testing.assert_close(net(x), without)
    assert names == ["1", "3", "4.1"]
    torch.testing.assert_close(net(x), with_attention)
    assert not torch.allclose(with_attention, without)


def test_summary_counts_cbams_shared_mlp_once():
    """CBAM's MLP runs twice (average- and max-pooled channels): one set of weights."""
    from torch import nn

    from yolo_teach.layers.attention import CBAM
    from yolo_teach.models.summary import count_parameters, summary

    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), CBAM(32))
    assert summary(model, 16).total_params == count_parameters(model)
