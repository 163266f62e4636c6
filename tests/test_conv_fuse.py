"""Conv+BN folding (fold_batch_norm, ConvBNAct.fuse): the deploy transform of every zoo model."""

import pytest
import torch
from torch import nn

from yolo_teach.deploy import fuse
from yolo_teach.layers.attention import CBAM
from yolo_teach.layers.conv import ConvBNAct, fold_batch_norm


@pytest.mark.parametrize("groups, norm", [(1, True), (2, True), (1, False)])
def test_conv_bn_fuse_equals_eval_block(groups, norm):
    # W' = s W, b' = beta + s (b - mu), s = gamma / sqrt(var + eps): the same map in eval mode
    torch.manual_seed(0)
    block = ConvBNAct(4, 6, 3, stride=2, groups=groups,
                      norm_layer=nn.BatchNorm2d if norm else None)
    if norm:  # non-trivial statistics, or the fold would be an identity
        block.bn.running_mean.normal_()
        block.bn.running_var.uniform_(0.5, 2.0)
        block.bn.weight.data.normal_()
        block.bn.bias.data.normal_()
    block.eval()
    fused = block.fuse()
    x = torch.randn(2, 4, 9, 9)
    torch.testing.assert_close(fused(x), block(x), rtol=1e-5, atol=1e-5)
    assert isinstance(fused.bn, nn.Identity) and fused.conv.bias is not None
    assert block.bn is not fused.bn  # the original is untouched
    if norm:  # gamma and beta (2 C) out, a bias (C) in: C = 6 fewer
        assert sum(p.numel() for p in fused.parameters()) == sum(
            p.numel() for p in block.parameters()) - 6


def test_fold_batch_norm_rejects_other_norms():
    with pytest.raises(TypeError, match="GroupNorm"):
        fold_batch_norm(nn.Conv2d(4, 4, 1), nn.GroupNorm(2, 4))


def test_cbam_spatial_gate_fuse_folds_its_batch_norm():
    # the official CBAM's BatchNorm(1) after the 7x7 conv folds like any Conv+BN
    torch.manual_seed(0)
    block = CBAM(16, spatial_bn=True)
    gate = block.spatial_gate
    gate.bn.running_mean.fill_(0.3)
    gate.bn.running_var.fill_(2.0)
    gate.bn.weight.data.fill_(1.5)
    block.eval()
    fused = fuse(block)
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(fused(x), block(x), rtol=1e-5, atol=1e-6)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
