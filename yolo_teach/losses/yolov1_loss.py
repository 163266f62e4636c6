"""The YOLOv1 loss: one sum-squared error over boxes, confidences and class probabilities.

YOLOv1 §2.2 "Training", eq. 3, with :math:`\\mathbb{1}^{obj}_i` "an object appears in cell i"
and :math:`\\mathbb{1}^{obj}_{ij}` "the j-th predictor in cell i is responsible":

.. math::
    λ_{coord} \\sum_{i=0}^{S^2} \\sum_{j=0}^{B} \\mathbb{1}^{obj}_{ij}
        [(x_i - \\hat x_i)^2 + (y_i - \\hat y_i)^2]
    + λ_{coord} \\sum_{i,j} \\mathbb{1}^{obj}_{ij}
        [(\\sqrt{w_i} - \\sqrt{\\hat w_i})^2 + (\\sqrt{h_i} - \\sqrt{\\hat h_i})^2]

    + \\sum_{i,j} \\mathbb{1}^{obj}_{ij} (C_i - \\hat C_i)^2
    + λ_{noobj} \\sum_{i,j} \\mathbb{1}^{noobj}_{ij} (C_i - \\hat C_i)^2
    + \\sum_{i} \\mathbb{1}^{obj}_i \\sum_{c} (p_i(c) - \\hat p_i(c))^2

with :math:`λ_{coord} = 5` and :math:`λ_{noobj} = 0.5` ("to remedy" the many cells without
objects that "overpower the gradient"). Here B is the number of predictors per cell
(``num_boxes``); in code B is the batch. The responsible predictor is the one whose current
prediction "has the highest IOU with the ground truth", so predictors specialise.
"""

from __future__ import annotations

import torch
from torch import Tensor

from yolo_teach.boxes import aligned_box_iou, box_convert

CONF_TARGETS = ("iou", "one")


def one_object_per_cell(targets: Tensor, img_size: int, grid_size: int):
    """The ground truths YOLOv1 can learn: at most one per cell, the first in ``targets``.

    YOLOv1 predicts one set of class probabilities per cell, so Darknet's label grid keeps a
    single object per cell (the first it meets; the order is random after augmentation).

    Returns:
        ``(b, row, col, truth)``: ``(n,)`` image, row and column of each kept cell and
        ``truth (n, 5)`` = ``[class, x, y, w, h]`` with ``x, y`` the centre's offset within the
        cell and ``w, h`` relative to the image, as in the paper.
    """
    s = grid_size
    cxcywh = box_convert(targets[:, 2:6], "xyxy", "cxcywh") / img_size  # (M, 4) in [0, 1]
    col = (cxcywh[:, 0] * s).floor().clamp(0, s - 1).long()  # (M,)
    row = (cxcywh[:, 1] * s).floor().clamp(0, s - 1).long()  # (M,)
    b = targets[:, 0].long()
    key = (b * s + row) * s + col  # (M,) one id per (image, row, col)
    unique, inverse = torch.unique(key, return_inverse=True)
    order = torch.arange(len(key), device=key.device)
    first = torch.full((len(unique),), len(key), device=key.device, dtype=torch.long)
    first = first.scatter_reduce(0, inverse, order, reduce="amin")  # (n,) first row per cell
    xy = cxcywh[first, :2] * s - torch.stack([col[first], row[first]], 1)  # (n, 2) in [0, 1]
    truth = torch.cat([targets[first, 1:2], xy, cxcywh[first, 2:4]], dim=1)  # (n, 5)
    return b[first], row[first], col[first], truth


def responsible_predictor(p: Tensor, truth: Tensor, grid_size: int) -> tuple[Tensor, Tensor]:
    """Which predictor of each object cell is responsible, and every predictor's IoU.

    "We assign one predictor to be 'responsible' for predicting an object based on which
    prediction has the highest current IOU with the ground truth" (§2.2). Boxes are drawn in
    units of one cell from the cell's top-left corner: centre ``(x, y)``, size
    ``(\\sqrt{w})^2 S`` (the paper's sizes are relative to the image, i.e. to S cells).

    # NOTE(paper): when no predictor of the cell overlaps the truth (early in training), Darknet's
    # detection layer picks the one with the smallest RMSE over (x, y, w, h); so do we.

    Args:
        p: ``(n, nb, 5)`` the predictors of the cells with an object (detached).
        truth: ``(n, 5)`` rows ``[class, x, y, w, h]`` from :func:`one_object_per_cell`.

    Returns:
        ``(index (n,), iou (n, nb))``.
    """
    pred_box = torch.cat([p[..., :2], p[..., 2:4] ** 2 * grid_size], dim=-1)  # (n, nb, 4)
    truth_box = torch.cat([truth[:, 1:3], truth[:, 3:5] * grid_size], dim=-1)[:, None, :]
    iou = aligned_box_iou(box_convert(pred_box, "cxcywh", "xyxy"),
                          box_convert(truth_box, "cxcywh", "xyxy"))  # (n, nb)
    rmse = ((pred_box - truth_box) ** 2).sum(-1).sqrt()  # (n, nb)
    score = torch.where(iou.amax(1, keepdim=True) > 0, iou, -rmse)  # (n, nb)
    return score.argmax(1), iou


class YOLOv1Loss:
    """YOLOv1's eq. 3: ``(out (B, S, S, 5 num_boxes + K), targets (M, 6)) -> (loss, terms)``.

    Args:
        img_size: side of the square network input in pixels.
        num_boxes: predictors per cell (B in the paper).
        lambda_coord, lambda_noobj: the paper's weights, 5 and 0.5.
        lambda_class: weight of the class term; 1 in the paper (eq. 3 has none). A larger one
            is our addition for short runs from scratch, like YOLOv3's class gain.
        conf_target: :math:`\\hat C` of the responsible predictor. ``"iou"`` (default, the
            paper: "we want the confidence score to equal the IOU between the predicted box and
            the ground truth", Darknet's ``rescore=1``), so that confidence times class
            probability is the class-specific score of §2; ``"one"`` (common practice in
            re-implementations), which gives a strong objectness signal from the first step,
            while early boxes overlap nothing and the IoU target is close to 0.

    Returns:
        ``(loss, {"box", "obj", "noobj", "cls"})``: eq. 3 summed over the grid and divided by
        the batch size; the logged terms include their λ and add up to the loss.
    """

    class_gain_option = "lambda_class"  # the argument that weighs the class term

    def __init__(self, img_size: int, num_boxes: int = 2, lambda_coord: float = 5.0,
                 lambda_noobj: float = 0.5, conf_target: str = "iou", lambda_class: float = 1.0):
        if conf_target not in CONF_TARGETS:
            raise ValueError(f"conf_target must be one of {CONF_TARGETS}, got {conf_target!r}")
        self.img_size, self.num_boxes = img_size, num_boxes
        self.lambda_coord, self.lambda_noobj = lambda_coord, lambda_noobj
        self.lambda_class = lambda_class
        self.conf_target = conf_target

    def __call__(self, out: Tensor, targets: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        batch, s, nb = out.shape[0], out.shape[1], self.num_boxes
        pred = out[..., : 5 * nb].reshape(batch, s, s, nb, 5)  # (B, S, S, nb, 5)
        scores = out[..., 5 * nb :]  # (B, S, S, K)
        b, row, col, truth = one_object_per_cell(targets.to(out), self.img_size, s)
        n = len(b)

        p = pred[b, row, col]  # (n, nb, 5) the predictors of the cells with an object
        j, iou = responsible_predictor(p.detach(), truth, s)  # (n,), (n, nb)
        resp = p[torch.arange(n), j]  # (n, 5)

        xy = ((resp[:, :2] - truth[:, 1:3]) ** 2).sum(1)  # (n,)
        # the network outputs sqrt(w), sqrt(h) directly (§2.2)
        wh = ((resp[:, 2:4] - truth[:, 3:5].sqrt()) ** 2).sum(1)  # (n,)
        c_hat = iou[torch.arange(n), j] if self.conf_target == "iou" else torch.ones_like(xy)
        obj = (resp[:, 4] - c_hat) ** 2  # (n,)

        noobj_mask = torch.ones_like(pred[..., 4])  # (B, S, S, nb)
        noobj_mask[b, row, col, j] = 0.0
        noobj = (noobj_mask * pred[..., 4] ** 2).sum()

        one_hot = torch.zeros_like(scores[b, row, col])  # (n, K)
        one_hot[torch.arange(n), truth[:, 0].long()] = 1.0
        cls = ((scores[b, row, col] - one_hot) ** 2).sum()

        terms = {
            "box": self.lambda_coord * (xy + wh).sum() / batch,
            "obj": obj.sum() / batch,
            "noobj": self.lambda_noobj * noobj / batch,
            "cls": self.lambda_class * cls / batch,
        }
        loss = terms["box"] + terms["obj"] + terms["noobj"] + terms["cls"]
        return loss, {k: v.detach() for k, v in terms.items()}
