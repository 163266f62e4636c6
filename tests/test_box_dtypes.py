"""Box ops on narrow dtypes agree with float64, and bad shapes raise ``ValueError``.

int8 holds up to 127 and float16 up to 65,504: a 100x100 box in int8, or a 900x660 box in
float16, has an area (10,000; 594,000) its own dtype cannot hold. The ops widen first
(``yolo_teach.boxes``: half floats -> float32, integers -> float64 for ratios, int64 for areas).
"""

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
    upcast,
    xyxy_to_yolo,
    yolo_to_xyxy,
)
from yolo_teach.nms import batched_nms, diou_nms, nms, soft_nms

# int8: every coordinate <= 127; the first box is 100x100 (area 10,000 > 127)
SMALL = [[10, 10, 110, 110], [30, 20, 120, 127], [0, 0, 40, 60], [90, 100, 127, 127]]
# pixel boxes, multiples of 8 so that bfloat16 (8 significant bits) holds them exactly:
# 896x656 (area 587,776 > float16's 65,504), 904x664, 440x320 and 688x592
PIXELS = [[40, 32, 936, 688], [200, 96, 1104, 760], [16, 720, 456, 1040], [1200, 8, 1888, 600]]
CASES = [  # (dtype, boxes, relative tolerance)
    (torch.int8, SMALL, 1e-3),
    (torch.uint8, SMALL, 1e-3),
    (torch.int16, PIXELS, 1e-3),
    (torch.int32, PIXELS, 1e-3),
    (torch.int64, PIXELS, 1e-3),
    (torch.float16, PIXELS, 2e-3),
    (torch.bfloat16, PIXELS, 1e-3),
    (torch.float32, PIXELS, 1e-3),
]
PAIRWISE = [box_iou, generalized_box_iou, distance_box_iou, complete_box_iou]
LOSSES = [generalized_box_iou_loss, distance_box_iou_loss, complete_box_iou_loss]
# what the ops return: (IoU family, box_area and box_convert)
INTEGER = (torch.float64, torch.int64)
RESULT_DTYPE = {torch.int8: INTEGER, torch.uint8: INTEGER, torch.int16: INTEGER,
                torch.int32: INTEGER, torch.int64: INTEGER,
                torch.float16: (torch.float32, torch.float32),
                torch.bfloat16: (torch.float32, torch.float32),
                torch.float32: (torch.float32, torch.float32)}


def close(actual, expected, rtol):
    assert not torch.isnan(actual).any()
    torch.testing.assert_close(actual.double(), expected, rtol=rtol, atol=1e-9)


@pytest.mark.parametrize(("dtype", "rows", "rtol"), CASES, ids=[str(case[0]) for case in CASES])
def test_box_ops_agree_with_float64(dtype, rows, rtol):
    boxes = torch.tensor(rows, dtype=dtype)
    ref = torch.tensor(rows, dtype=torch.float64)
    assert torch.equal(boxes.double(), ref)  # the coordinates are representable
    ratio_dtype, area_dtype = RESULT_DTYPE[dtype]
    area = box_area(boxes)
    assert area.dtype == area_dtype
    close(area, box_area(ref), rtol)
    for fmt in ("xywh", "cxcywh"):
        close(box_convert(boxes, "xyxy", fmt), box_convert(ref, "xyxy", fmt), rtol)
    xywh = box_convert(ref, "xyxy", "xywh").to(dtype)  # x + w up to 1888 (int8: 127)
    close(box_convert(xywh, "xywh", "xyxy"), ref, rtol)
    for fn in PAIRWISE:
        value = fn(boxes, boxes.flip(0))
        assert value.dtype == ratio_dtype, fn.__name__
        close(value, fn(ref, ref.flip(0)), rtol)
    close(aligned_box_iou(boxes, boxes.flip(0)), aligned_box_iou(ref, ref.flip(0)), rtol)
    for fn in LOSSES:
        close(fn(boxes, boxes.flip(0)), fn(ref, ref.flip(0)), rtol)


def test_the_reported_overflows_are_gone():
    # int8 100x100 box: area 10,000, not 10,000 mod 256 = 16
    assert box_area(torch.tensor([[10, 10, 110, 110]], dtype=torch.int8)).item() == 10_000
    # int16: the far boxes 0 and 3 have DIoU < 0 (the overflow once gave a positive one)
    pixels = torch.tensor(PIXELS, dtype=torch.int16)
    assert (distance_box_iou(pixels, pixels)[0, 3] < 0).item()
    # float16 896x656 boxes: union 587,776 + ... overflowed to inf, then NaN
    half = torch.tensor(PIXELS, dtype=torch.float16)
    assert torch.isfinite(box_iou(half, half)).all()
    assert torch.diagonal(box_iou(half, half)).tolist() == [1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize(("dtype", "rows", "rtol"), CASES, ids=[str(case[0]) for case in CASES])
def test_nms_family_agrees_with_float64(dtype, rows, rtol):
    boxes = torch.tensor(rows + [[x1, y1, x2 - 8, y2] for x1, y1, x2, y2 in rows], dtype=dtype)
    ref = boxes.double()
    scores = torch.tensor([0.9, 0.3, 0.5, 0.7, 0.8, 0.6, 0.4, 0.2])
    labels = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1])
    assert nms(boxes, scores, 0.5).tolist() == nms(ref, scores, 0.5).tolist()
    assert diou_nms(boxes, scores, 0.5).tolist() == diou_nms(ref, scores, 0.5).tolist()
    assert (batched_nms(boxes, scores, labels, 0.5).tolist()
            == batched_nms(ref, scores, labels, 0.5).tolist())
    keep, new = soft_nms(boxes, scores)
    keep_ref, new_ref = soft_nms(ref, scores)
    assert keep.tolist() == keep_ref.tolist()
    close(new, new_ref, rtol)


def test_soft_nms_widens_half_scores():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 5]])
    keep, new = soft_nms(boxes, torch.tensor([0.9, 0.8], dtype=torch.float16), method="linear")
    # IoU 50/100 = 0.5 > 0.3: 0.8 (0.7998 in float16) * (1 - 0.5) = 0.3999
    assert new.dtype == torch.float32 and keep.tolist() == [0, 1]
    assert new.tolist() == pytest.approx([0.9, 0.4], abs=1e-3)
    empty = soft_nms(torch.zeros(0, 4), torch.zeros(0, dtype=torch.bfloat16))[1]
    assert empty.dtype == torch.float32 and empty.numel() == 0


def test_upcast_is_the_dtype_of_the_iou_family():
    for dtype, expected in [(torch.int8, torch.float64), (torch.int32, torch.float64),
                            (torch.float16, torch.float32), (torch.bfloat16, torch.float32),
                            (torch.float32, torch.float32), (torch.float64, torch.float64)]:
        assert upcast(torch.zeros(1, 4, dtype=dtype)).dtype == expected, dtype


def test_box_convert_keeps_float_dtypes():
    for dtype in (np.float32, np.float64):
        boxes = np.array([[10.0, 20.0, 30.0, 60.0]], dtype=dtype)
        assert box_convert(boxes, "xyxy", "cxcywh").dtype == dtype
        assert xyxy_to_yolo(boxes, 100, 100).dtype == dtype
        assert yolo_to_xyxy(boxes / 100, 1, 1).dtype == dtype
    for dtype in (torch.float32, torch.float64):
        boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0]], dtype=dtype)
        assert box_convert(boxes, "xyxy", "xywh").dtype == dtype
        assert xyxy_to_yolo(boxes, 100, 100).dtype == dtype
        assert yolo_to_xyxy(boxes / 100, 1, 1).dtype == dtype


def test_numpy_box_convert_widens_too():
    xywh = np.array([[100, 100, 27, 27]], dtype=np.int8)  # x2 = 127: fits; 100 + 100 would not
    assert box_convert(np.array([[100, 0, 100, 10]], dtype=np.int8), "xywh", "xyxy").tolist() == [
        [100, 0, 200, 10]]
    assert box_convert(xywh, "xywh", "xyxy").dtype == np.int64
    half = np.array([[40, 32, 936, 688]], dtype=np.float16)
    # cxcywh: centre (488, 360), size 896x656
    assert box_convert(half, "xyxy", "cxcywh").tolist() == [[488, 360, 896, 656]]
    assert box_convert(half, "xyxy", "xyxy").dtype == np.float32


def test_yolo_helpers_widen_half_floats():
    yolo = torch.tensor([[0.5, 0.5, 0.875, 0.640625]], dtype=torch.float16)
    # on a 1024x1024 image: centre (512, 512), size 896x656 -> (64, 184, 960, 840)
    pixels = yolo_to_xyxy(yolo, 1024, 1024)
    assert pixels.dtype == torch.float32 and pixels.tolist() == [[64, 184, 960, 840]]
    back = xyxy_to_yolo(torch.tensor([[64, 184, 960, 840]], dtype=torch.int16), 1024, 1024)
    assert back.tolist() == [[0.5, 0.5, 0.875, 0.640625]]


# ----------------------------------------------------------------- shapes
Z = torch.zeros
BAD_SHAPES = [
    ("nms, boxes (3, 5)", lambda: nms(Z(3, 5), Z(3), 0.5), r"got shapes \[\(3, 5\), \(3,\)\]"),
    ("nms, one box (4,)", lambda: nms(Z(4), Z(1), 0.5), r"got shapes \[\(4,\), \(1,\)\]"),
    ("diou_nms, (0, 5)", lambda: diou_nms(Z(0, 5), Z(0), 0.5), r"\[\(0, 5\), \(0,\)\]"),
    ("soft_nms, (3, 5)", lambda: soft_nms(Z(3, 5), Z(3)), r"\[\(3, 5\), \(3,\)\]"),
    ("batched_nms, 2 idxs", lambda: batched_nms(Z(3, 4), Z(3), Z(2), 0.5),
     r"expected boxes \(N, 4\) and scores, idxs \(N,\); got shapes \[\(3, 4\), \(3,\), \(2,\)\]"),
    ("box_iou, boxes1 (3, 5)", lambda: box_iou(Z(3, 5), Z(2, 4)),
     r"^boxes1 must have shape \(N, 4\), got \(3, 5\)$"),
    ("generalized_box_iou, boxes1 (2, 2, 4)", lambda: generalized_box_iou(Z(2, 2, 4), Z(2, 4)),
     r"^boxes1 must have shape \(N, 4\), got \(2, 2, 4\)$"),
    ("complete_box_iou, boxes2 (2, 2, 4)", lambda: complete_box_iou(Z(2, 4), Z(2, 2, 4)),
     r"^boxes2 must have shape \(N, 4\), got \(2, 2, 4\)$"),
    ("aligned_box_iou, 3 vs 2", lambda: aligned_box_iou(Z(3, 4), Z(2, 4)),
     r"^aligned boxes must broadcast: \(3, 4\) vs \(2, 4\)$"),
    ("aligned_box_iou, boxes1 (3, 3)", lambda: aligned_box_iou(Z(3, 3), Z(3, 4)),
     r"^boxes1 must have shape \(\.\.\., 4\), got \(3, 3\)$"),
    ("aligned_box_iou, boxes2 (3, 3)", lambda: aligned_box_iou(Z(3, 4), Z(3, 3)),
     r"^boxes2 must have shape \(\.\.\., 4\), got \(3, 3\)$"),
    ("giou loss, 3 vs 2", lambda: generalized_box_iou_loss(Z(3, 4), Z(2, 4)),
     r"^aligned boxes must have the same shape: \(3, 4\) vs \(2, 4\)$"),
    ("ciou loss, (3, 5)", lambda: complete_box_iou_loss(Z(3, 5), Z(3, 5)),
     r"^boxes1 must have shape \(\.\.\., 4\), got \(3, 5\)$"),
    ("box_area, (3, 5)", lambda: box_area(Z(3, 5)),
     r"^boxes must have shape \(\.\.\., 4\), got \(3, 5\)$"),
    ("box_area, scalar", lambda: box_area(torch.tensor(1.0)),
     r"^boxes must have shape \(\.\.\., 4\), got \(\)$"),
    ("box_convert, (3, 3)", lambda: box_convert(np.zeros((3, 3)), "xyxy", "xywh"),
     r"^boxes must have shape \(\.\.\., 4\), got \(3, 3\)$"),
]


@pytest.mark.parametrize(("name", "call", "shapes"), BAD_SHAPES, ids=[b[0] for b in BAD_SHAPES])
def test_bad_shapes_raise_value_error_naming_them(name, call, shapes):
    with pytest.raises(ValueError, match=shapes):
        call()


def test_aligned_iou_still_broadcasts():
    # YOLOv1's loss compares (n, B, 4) predictors with (n, 1, 4) truths
    pred = torch.tensor([[[0.0, 0, 2, 2], [0, 0, 4, 4]]])  # (1, 2, 4)
    truth = torch.tensor([[[0.0, 0, 2, 2]]])  # (1, 1, 4)
    assert aligned_box_iou(pred, truth).tolist() == [[1.0, 0.25]]  # 4/4, 4/16
