import math

import numpy as np
import pytest
import torch

from yolo_teach.boxes import (
    aligned_box_iou,
    box_area,
    box_convert,
    box_iou,
    complete_box_iou,
    complete_box_iou_loss,
    distance_box_iou,
    distance_box_iou_loss,
    generalized_box_iou,
    generalized_box_iou_loss,
    xyxy_to_yolo,
    yolo_to_xyxy,
)


# ----------------------------------------------------------------- formats
def test_box_convert_hand_computed():
    xyxy = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    # xywh: top-left (10, 20), size (30-10, 60-20) = (20, 40)
    assert box_convert(xyxy, "xyxy", "xywh").tolist() == [[10, 20, 20, 40]]
    # cxcywh: centre ((10+30)/2, (20+60)/2) = (20, 40)
    assert box_convert(xyxy, "xyxy", "cxcywh").tolist() == [[20, 40, 20, 40]]
    assert box_convert(torch.tensor([[20.0, 40, 20, 40]]), "cxcywh", "xyxy").tolist() == [
        [10, 20, 30, 60]]


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh", "xyxy"])
def test_box_convert_round_trip_numpy_and_torch(fmt):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (50, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 50, (50, 2))], 1)
    back = box_convert(box_convert(boxes, "xyxy", fmt), fmt, "xyxy")
    assert isinstance(back, np.ndarray) and np.allclose(back, boxes)
    t = torch.from_numpy(boxes)
    assert torch.allclose(box_convert(box_convert(t, "xyxy", fmt), fmt, "xyxy"), t)


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh"])
def test_box_convert_of_one_box_and_of_a_batch(fmt):
    rows = [[10.0, 20.0, 30.0, 60.0], [0.0, 0.0, 4.0, 2.0], [5.0, 5.0, 5.0, 9.0]]
    per_row = [box_convert(np.array(r), "xyxy", fmt).tolist() for r in rows]  # (4,) each
    assert per_row[0] == ([10, 20, 20, 40] if fmt == "xywh" else [20, 40, 20, 40])
    batch = np.array(rows * 2).reshape(2, 3, 4)  # (B, N, 4)
    assert box_convert(batch, "xyxy", fmt).tolist() == [per_row, per_row]
    assert box_convert(torch.from_numpy(batch), "xyxy", fmt).tolist() == [per_row, per_row]
    assert box_convert(torch.tensor(rows[0]), "xyxy", fmt).tolist() == per_row[0]


def test_box_convert_rejects_unknown_format():
    with pytest.raises(ValueError, match="unknown box format"):
        box_convert(torch.zeros(1, 4), "xyxy", "yolo")


def test_yolo_label_helpers_seed_000_example():
    # a DeepLesion-style xyxy box on a 512x512 slice: centre (128, 192), size 128x128
    xyxy = np.array([[64.0, 128.0, 192.0, 256.0]])
    yolo = xyxy_to_yolo(xyxy, width=512, height=512)
    assert np.allclose(yolo, [[0.25, 0.375, 0.25, 0.25]])
    assert np.allclose(yolo_to_xyxy(yolo, 512, 512), xyxy)
    # non-square image: x scales with width, y with height
    t = torch.tensor([[0.0, 0.0, 320.0, 240.0]])
    assert torch.allclose(xyxy_to_yolo(t, 640, 480), torch.tensor([[0.25, 0.25, 0.5, 0.5]]))


def test_box_area():
    assert box_area(torch.tensor([[0.0, 0, 2, 3], [1, 1, 1, 5]])).tolist() == [6, 0]


# ----------------------------------------------------------------- hand-computed overlaps
A = torch.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=torch.float64)
B = torch.tensor([[1.0, 1.0, 3.0, 3.0]], dtype=torch.float64)


def test_iou_family_hand_computed_squares():
    # intersection 1x1 = 1, union 4 + 4 - 1 = 7
    assert box_iou(A, B).item() == pytest.approx(1 / 7)
    # enclosing box C = (0,0,3,3), area 9: GIoU = 1/7 - (9 - 7)/9
    assert generalized_box_iou(A, B).item() == pytest.approx(1 / 7 - 2 / 9)
    # centres (1,1) and (2,2): rho^2 = 2; diagonal of C: c^2 = 3^2 + 3^2 = 18
    assert distance_box_iou(A, B).item() == pytest.approx(1 / 7 - 2 / 18)
    # same aspect ratio: v = 0, so CIoU = DIoU
    assert complete_box_iou(A, B).item() == pytest.approx(1 / 7 - 2 / 18)


def test_ciou_hand_computed_aspect_ratio_term():
    p = torch.tensor([[0.0, 0.0, 4.0, 2.0]], dtype=torch.float64)  # 4 wide, 2 high
    g = torch.tensor([[0.0, 0.0, 2.0, 4.0]], dtype=torch.float64)  # 2 wide, 4 high
    iou = 4 / 12  # intersection 2x2, union 8 + 8 - 4
    diou = iou - 2 / 32  # centres (2,1), (1,2): rho^2 = 2; C = (0,0,4,4): c^2 = 32
    v = 4 / math.pi**2 * (math.atan(2 / 4) - math.atan(4 / 2)) ** 2
    alpha = v / (1 - iou + v)
    assert complete_box_iou(p, g).item() == pytest.approx(diou - alpha * v)
    assert complete_box_iou_loss(p, g).item() == pytest.approx(1 - (diou - alpha * v))


def test_aligned_iou_is_the_diagonal_of_pairwise():
    rng = np.random.default_rng(5)
    b1, b2 = random_boxes(rng, 8), random_boxes(rng, 8)
    assert torch.allclose(aligned_box_iou(b1, b2), torch.diagonal(box_iou(b1, b2)))


def test_giou_of_far_apart_boxes_tends_to_minus_one():
    far = torch.tensor([[1000.0, 1000.0, 1002.0, 1002.0]], dtype=torch.float64)
    assert box_iou(A, far).item() == 0
    assert generalized_box_iou(A, far).item() == pytest.approx(-1, abs=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_identical_tiny_boxes_have_iou_one(dtype):
    # 0.001 x 0.001 in normalised coordinates: union 1e-6. An eps of 1e-7 added to the union gave
    # 1e-6 / 1.1e-6 = 0.909; IoU is scale-free, so it must be 1 (and GIoU, DIoU, CIoU too)
    tiny = torch.tensor([[0.5, 0.25, 0.501, 0.251], [0.1, 0.1, 0.1002, 0.1001]], dtype=dtype)
    for fn in (box_iou, generalized_box_iou, distance_box_iou, complete_box_iou):
        assert torch.diagonal(fn(tiny, tiny)).tolist() == pytest.approx([1, 1], abs=1e-6)
    # half-overlapping tiny boxes: intersection 0.0005 x 0.001, union 2 x 1e-6 - 0.5e-6
    shifted = tiny[:1] + torch.tensor([0.0005, 0, 0.0005, 0], dtype=dtype)
    assert box_iou(tiny[:1], shifted).item() == pytest.approx(0.5 / 1.5, rel=1e-3)


def test_ciou_of_a_zero_height_prediction():
    p = torch.tensor([[0.0, 1.0, 4.0, 1.0]], dtype=torch.float64)  # a horizontal line, 4 wide
    g = torch.tensor([[0.0, 0.0, 4.0, 2.0]], dtype=torch.float64)  # 4 wide, 2 high
    # IoU 0 / 8 = 0; same centre (2, 1): rho = 0, so DIoU = 0
    # arctan(w/h): the line's limit is pi/2, the box's arctan(2): their difference is arctan(1/2)
    v = 4 / math.pi**2 * math.atan(1 / 2) ** 2  # 0.0871
    alpha = v / (1 - 0 + v)
    assert complete_box_iou(p, g).item() == pytest.approx(-alpha * v)
    assert complete_box_iou(g, p).item() == pytest.approx(-alpha * v)  # v is symmetric
    # a point has no shape (arctan 0): v = 4/pi^2 arctan(2)^2 against the box; same centre
    point = torch.tensor([[2.0, 1.0, 2.0, 1.0]], dtype=torch.float64)
    v = 4 / math.pi**2 * math.atan(2) ** 2  # 0.4968
    assert complete_box_iou(point, g).item() == pytest.approx(-v * v / (1 + v))


# ----------------------------------------------------------------- an independent implementation
def naive(a, b):
    """IoU, GIoU, DIoU, CIoU of two boxes with Python floats (the papers' formulas, directly)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    wa, ha, wb, hb = a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1]
    union = wa * ha + wb * hb - inter
    iou = inter / union
    cw = max(a[2], b[2]) - min(a[0], b[0])
    ch = max(a[3], b[3]) - min(a[1], b[1])
    giou = iou - (cw * ch - union) / (cw * ch)
    rho2 = ((a[0] + a[2]) / 2 - (b[0] + b[2]) / 2) ** 2 + ((a[1] + a[3]) / 2 - (b[1] + b[3]) / 2) ** 2
    diou = iou - rho2 / (cw**2 + ch**2)
    v = 4 / math.pi**2 * (math.atan(wb / hb) - math.atan(wa / ha)) ** 2
    alpha = v / (1 - iou + v)
    return iou, giou, diou, diou - alpha * v


def random_boxes(rng, n, dtype=torch.float64):
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(0.5, 60, (n, 2))
    return torch.tensor(np.concatenate([xy, xy + wh], 1), dtype=dtype)


def test_pairwise_family_equals_naive_on_10000_pairs():
    rng = np.random.default_rng(0)
    b1, b2 = random_boxes(rng, 100), random_boxes(rng, 100)  # 100 x 100 = 10,000 pairs
    ours = [f(b1, b2) for f in (box_iou, generalized_box_iou, distance_box_iou, complete_box_iou)]
    for i in range(100):
        for j in range(100):
            ref = naive(b1[i].tolist(), b2[j].tolist())
            for k in range(4):
                assert abs(ours[k][i, j].item() - ref[k]) < 1e-5


def test_aligned_losses_equal_naive_on_10000_pairs():
    rng = np.random.default_rng(1)
    b1, b2 = random_boxes(rng, 10_000, torch.float32), random_boxes(rng, 10_000, torch.float32)
    losses = [generalized_box_iou_loss(b1, b2), distance_box_iou_loss(b1, b2),
              complete_box_iou_loss(b1, b2)]
    ref = torch.tensor([naive(p.tolist(), g.tolist())[1:] for p, g in zip(b1.double(), b2.double())],
                       dtype=torch.float64)
    for k in range(3):
        assert torch.allclose(losses[k].double(), 1 - ref[:, k], atol=1e-5)


def test_loss_reductions():
    rng = np.random.default_rng(2)
    b1, b2 = random_boxes(rng, 7), random_boxes(rng, 7)
    none = complete_box_iou_loss(b1, b2)
    assert none.shape == (7,)
    assert complete_box_iou_loss(b1, b2, reduction="sum").item() == pytest.approx(none.sum().item())
    assert complete_box_iou_loss(b1, b2, reduction="mean").item() == pytest.approx(none.mean().item())
    assert generalized_box_iou_loss(b1[:0], b2[:0], reduction="mean").item() == 0
    with pytest.raises(ValueError, match="reduction"):
        distance_box_iou_loss(b1, b2, reduction="avg")
    with pytest.raises(ValueError, match="same shape"):
        distance_box_iou_loss(b1, b2[:3])


# ----------------------------------------------------------------- degenerate boxes and gradients
DEGENERATE = [
    ([0, 0, 0, 5], [0, 0, 3, 5]),  # zero width
    ([0, 0, 5, 0], [1, 1, 3, 3]),  # zero height
    ([2, 2, 2, 2], [2, 2, 2, 2]),  # two identical points
    ([0, 0, 4, 4], [0, 0, 4, 4]),  # identical boxes
    ([0, 0, 1, 1], [1e4, 1e4, 1e4 + 1, 1e4 + 1]),  # far apart
    ([0, 0, 2, 2], [2, 0, 4, 2]),  # touching edges
    ([0, 0, 0, 0], [5, 5, 5, 5]),  # two distinct points
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("pair", DEGENERATE)
def test_degenerate_boxes_give_finite_values_and_gradients(pair, dtype):
    for loss_fn in (generalized_box_iou_loss, distance_box_iou_loss, complete_box_iou_loss):
        p = torch.tensor([pair[0]], dtype=dtype, requires_grad=True)
        g = torch.tensor([pair[1]], dtype=dtype)
        loss = loss_fn(p, g, reduction="sum")
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(p.grad).all(), loss_fn.__name__
    for fn in (box_iou, generalized_box_iou, distance_box_iou, complete_box_iou):
        p = torch.tensor([pair[0]], dtype=dtype, requires_grad=True)
        value = fn(p, torch.tensor([pair[1]], dtype=dtype))
        value.sum().backward()
        assert torch.isfinite(value).all() and torch.isfinite(p.grad).all(), fn.__name__


def test_degenerate_pairs_have_iou_zero_and_no_gradient():
    # the union is empty: IoU is 0 by definition (0/0 otherwise), and nothing to learn from it
    for box in ([2.0, 2, 2, 2], [0.0, 1, 2, 1]):  # a point, a horizontal line
        p = torch.tensor([box], dtype=torch.float64, requires_grad=True)
        iou = aligned_box_iou(p, torch.tensor([box], dtype=torch.float64))
        iou.sum().backward()
        assert iou.tolist() == [0.0] and p.grad.tolist() == [[0.0] * 4]


def test_identical_boxes_have_zero_loss():
    b = torch.tensor([[3.0, 4.0, 10.0, 12.0]])
    for loss_fn in (generalized_box_iou_loss, distance_box_iou_loss, complete_box_iou_loss):
        assert loss_fn(b, b).item() == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("loss_fn", [generalized_box_iou_loss, distance_box_iou_loss])
def test_gradcheck_float64(loss_fn):
    rng = np.random.default_rng(3)
    p = random_boxes(rng, 6).requires_grad_(True)
    g = random_boxes(rng, 6)
    assert torch.autograd.gradcheck(lambda x: loss_fn(x, g), (p,), eps=1e-6, atol=1e-5)


def test_ciou_gradient_treats_alpha_as_constant():
    # NOTE(paper): alpha carries no gradient; the gradient must equal the one of
    # 1 - IoU + rho^2/c^2 + alpha0 * v with alpha0 frozen at its current value (checked with
    # finite differences of that frozen function, written independently here).
    rng = np.random.default_rng(4)
    p = random_boxes(rng, 5).requires_grad_(True)
    g = random_boxes(rng, 5)
    complete_box_iou_loss(p, g, reduction="sum").backward()

    def frozen(x, alpha0):
        out = []
        for a, b, al in zip(x.tolist(), g.tolist(), alpha0):
            iou, _, diou, _ = naive(a, b)
            v = 4 / math.pi**2 * (math.atan((b[2] - b[0]) / (b[3] - b[1]))
                                  - math.atan((a[2] - a[0]) / (a[3] - a[1]))) ** 2
            out.append(1 - diou + al * v)
        return sum(out)

    alpha0 = []
    for a, b in zip(p.tolist(), g.tolist()):
        iou, _, diou, ciou = naive(a, b)
        v = 4 / math.pi**2 * (math.atan((b[2] - b[0]) / (b[3] - b[1]))
                              - math.atan((a[2] - a[0]) / (a[3] - a[1]))) ** 2
        alpha0.append(v / (1 - iou + v))
    numeric = torch.zeros_like(p)
    h = 1e-6
    for i in range(p.shape[0]):
        for j in range(4):
            x1, x2 = p.detach().clone(), p.detach().clone()
            x1[i, j] += h
            x2[i, j] -= h
            numeric[i, j] = (frozen(x1, alpha0) - frozen(x2, alpha0)) / (2 * h)
    assert torch.allclose(p.grad, numeric, atol=1e-5)
