"""The non-local block (seed 004 eq. 6-7) by hand and against a naive double loop, and the
multi-scale feature fusion (eq. 5) around it: shapes, resizing, bad input."""

import math

import pytest
import torch

from yolo_teach.layers.nonlocal_block import NonLocalBlock, NonLocalFusion, project, resize
from yolo_teach.models.summary import count_flops, count_parameters


def identity_embeddings(block: NonLocalBlock) -> None:
    """theta, phi and g the identity (1x1 conv of weight I, bias 0)."""
    with torch.no_grad():
        for conv in (block.theta, block.phi, block.g):
            conv.weight.copy_(torch.eye(conv.out_channels)[:, :, None, None])
            conv.bias.zero_()


def test_nonlocal_response_by_hand():
    block = NonLocalBlock(1, reduction=1)
    identity_embeddings(block)
    n = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2)  # two positions, N_0 = 0 and N_1 = 1
    m = block.response(n)
    # i = 0: f(0, 0) = f(0, 1) = e^0 = 1 -> M_0 = (1 * 0 + 1 * 1) / 2 = 0.5
    # i = 1: f(1, 0) = e^0 = 1, f(1, 1) = e^1 -> M_1 = (1 * 0 + e * 1) / (1 + e) = 0.7311
    assert m.flatten().tolist() == pytest.approx([0.5, math.e / (1 + math.e)])


def test_nonlocal_block_equals_eq_6_7_by_naive_loops():
    torch.manual_seed(0)
    block = NonLocalBlock(4).eval()  # C' = 2
    torch.nn.init.normal_(block.w_z.bn.weight)  # leave the identity start, to see W_z M
    n = torch.randn(2, 4, 2, 3)

    def embed(conv, v):  # a 1x1 conv at one position: (C,) -> (C',)
        return conv.weight[:, :, 0, 0] @ v + conv.bias

    expected_m = torch.zeros(2, 2, 2, 3)
    cells = [(y, x) for y in range(2) for x in range(3)]
    with torch.no_grad():
        for b in range(2):
            for yi, xi in cells:
                n_i = n[b, :, yi, xi]
                f = [math.exp(float(embed(block.theta, n_i) @ embed(block.phi, n[b, :, yj, xj])))
                     for yj, xj in cells]  # eq. 7
                c = sum(f)  # C(N), eq. 6
                expected_m[b, :, yi, xi] = sum(f_j / c * embed(block.g, n[b, :, yj, xj])
                                               for f_j, (yj, xj) in zip(f, cells))
        torch.testing.assert_close(block.response(n), expected_m)
        torch.testing.assert_close(block(n), n + block.w_z(expected_m))  # Z = N + W_z M


def test_nonlocal_block_starts_as_identity_and_counts():
    block = NonLocalBlock(8)  # C' = 4
    n = torch.randn(1, 8, 3, 3)
    torch.testing.assert_close(block(n), n)  # W_z's BatchNorm scale starts at 0
    # theta, phi, g: 3 (8 * 4 + 4); W_z: 4 * 8 without bias + BN 2 * 8
    assert count_parameters(block) == 3 * (8 * 4 + 4) + 4 * 8 + 2 * 8
    with pytest.raises(ValueError, match=r"\(1, 6, 3, 3\)"):
        block(torch.randn(1, 6, 3, 3))


def test_resize_pools_down_and_upsamples_nearest():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert resize(x, (2, 2)).flatten().tolist() == [5.0, 7.0, 13.0, 15.0]  # 2x2 maxima
    up = resize(torch.tensor([[[[1.0, 2.0]]]]), (2, 4))
    assert up.flatten().tolist() == [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]
    assert resize(x, (4, 4)) is x
    # a point-wise conv commutes with nearest upsampling, so project() may run it first
    conv = torch.nn.Conv2d(1, 3, 1)
    small = torch.randn(1, 1, 2, 2)
    torch.testing.assert_close(project(conv, small, (4, 4)), conv(resize(small, (4, 4))))


def test_fusion_keeps_every_shape():
    fusion = NonLocalFusion((8, 16, 32))
    features = [torch.randn(2, 8, 16, 12), torch.randn(2, 16, 8, 6), torch.randn(2, 32, 4, 3)]
    out = fusion(features)
    assert [tuple(o.shape) for o in out] == [tuple(f.shape) for f in features]
    assert isinstance(fusion.reduce[1], torch.nn.Identity)  # the middle map sets the width


def test_fusion_is_the_mean_at_the_middle_size():
    # equal widths: no 1x1 convs, so step 1 is exactly eq. 5 on the resized maps
    fusion = NonLocalFusion((4, 4, 4))
    seen = {}
    fusion.refine.register_forward_hook(lambda m, inputs, out: seen.setdefault("n", inputs[0]))
    features = [torch.randn(1, 4, 8, 8), torch.randn(1, 4, 4, 4), torch.randn(1, 4, 2, 2)]
    out = fusion(features)
    p3 = torch.nn.functional.max_pool2d(features[0], 2)  # stride 8 -> 16
    p5 = features[2].repeat_interleave(2, -1).repeat_interleave(2, -2)  # stride 32 -> 16
    torch.testing.assert_close(seen["n"], (p3 + features[1] + p5) / 3)  # eq. 5, L = 3
    # the non-local block starts as the identity: each level gets the mean added back
    torch.testing.assert_close(out[1], features[1] + seen["n"])


def test_fusion_flops_by_hand():
    # widths (8, 16, 32) at 64 px: maps 8x8, 4x4, 2x2; the fusion runs at 4x4 = 16 positions
    fusion = NonLocalFusion((8, 16, 32))

    class Wrap(torch.nn.Module):  # count_flops feeds an image; make the three maps from it
        def __init__(self):
            super().__init__()
            self.fusion = fusion

        def forward(self, x):
            return self.fusion([x[:, :1].expand(-1, 8, 8, 8), x[:, :1, :4, :4].expand(-1, 16, 4, 4),
                                x[:, :1, :2, :2].expand(-1, 32, 2, 2)])

    hw, c, inner = 16, 16, 8
    convs = 2 * (8 * c * hw + 32 * c * 4)  # reduce: 8 -> 16 at 4x4, 32 -> 16 at 2x2
    convs += 2 * (c * 8 * hw + c * 32 * 4)  # expand: back at 4x4 and at 2x2
    convs += 2 * (3 * c * inner * hw + inner * c * hw)  # theta, phi, g and W_z
    matmuls = 2 * (hw * hw * inner) * 2  # theta^T phi and f g
    assert count_flops(Wrap(), 8) == convs + matmuls


def test_fusion_names_bad_input():
    fusion = NonLocalFusion((8, 16, 32))
    good = [torch.randn(1, 8, 8, 8), torch.randn(1, 16, 4, 4), torch.randn(1, 32, 2, 2)]
    with pytest.raises(ValueError, match=r"\(1, 16, 4, 4\)"):
        fusion(good[1:])
    with pytest.raises(ValueError, match=r"\(1, 9, 8, 8\)"):
        fusion([torch.randn(1, 9, 8, 8), *good[1:]])
