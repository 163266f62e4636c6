"""YOLOv7's loss with a lead and an auxiliary head (Wang et al. 2022, *YOLOv7*, §4.2; official
``utils/loss.py``: ``ComputeLossOTA`` and ``ComputeLossAuxOTA``): YOLOv5's terms per head on
the labels of :mod:`yolo_teach.losses.lead_guided`'s assignment, the auxiliary ones weighted by
0.25, and the recipe that registers it (:func:`lead_aux_recipe`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from yolo_teach.boxes import complete_box_iou_loss
from yolo_teach.decode import YOLOv5BoxCoder, as_map_list, decode_anchor_maps, split_anchor_map
from yolo_teach.losses.assign import ScaleAssignment
from yolo_teach.losses.lead_guided import IOU_WEIGHT, LeadGuidedAssigner
from yolo_teach.losses.terms import BCEClassLoss, IoUBoxLoss, objectness_iou
from yolo_teach.losses.yolo_loss import YOLOLoss

TOPK_AUX = 20  # q of dynamic k in ComputeLossAuxOTA (models with an auxiliary head)
AUX_WEIGHT = 0.25  # official: "lbox += 0.25 * (1.0 - iou_aux).mean()", same for obj and cls
GUIDES = ("lead", "lead_fine", "independent")
YOLOV7_CODER = YOLOv5BoxCoder()  # both heads: centre 2σ(t) - 0.5, size p (2σ(t))^2
YOLOV7_CLASS_LOSS = BCEClassLoss()


def yolov7_balance(num_scales: int) -> list[float]:
    """YOLOv7's objectness balance :math:`β_s`, finest first: [4, 1, 0.4] for 3 maps, else the
    first of [4, 1, 0.25, 0.06, 0.02] (P3-P7)."""
    return [4.0, 1.0, 0.4] if num_scales == 3 else [4.0, 1.0, 0.25, 0.06, 0.02][:num_scales]


def yolov7_gains(num_scales: int, num_classes: int, img_size: int) -> dict[str, float]:
    """YOLOv7's loss gains (hyp.scratch.p5/p6.yaml: box 0.05, cls 0.3, obj 0.7), scaled by its
    train.py as YOLOv5's are: ``3 / num_scales``, ``num_classes / 80`` for the class term and
    ``(img_size / 640)^2`` for objectness."""
    per_scale = 3 / num_scales
    return {
        "box_gain": 0.05 * per_scale,
        "cls_gain": 0.3 * num_classes / 80 * per_scale,
        "obj_gain": 0.7 * (img_size / 640) ** 2 * per_scale,
    }


class LeadAuxLoss:
    """YOLOv7's loss for a lead head and an auxiliary head (official ``ComputeLossAuxOTA``).

    ``(outputs, targets) -> (loss, {"box", "obj", "cls", "aux_box", "aux_obj", "aux_cls"})``:

    .. math:: L = L_{lead} + w_{aux} L_{aux}, \\qquad w_{aux} = 0.25

    each head's :math:`L` the YOLOv5 terms (CIoU box loss, objectness target the detached IoU,
    BCE classes; means per scale, objectness balanced per scale, gains), computed by a
    :class:`~yolo_teach.losses.YOLOLoss` on the labels of :class:`LeadGuidedAssigner`.

    Args:
        anchors: per scale, ``(A, 2)`` anchor sizes in pixels (both heads share them).
        strides: per scale, finest first.
        guide: how the auxiliary head is assigned: ``"lead"`` (coarse-to-fine lead guided, Fig.
            5e, the paper's), ``"lead_fine"`` (lead guided, Fig. 5d) or ``"independent"`` (Fig.
            5c): see the module docstring.
        aux_weight: :math:`w_{aux}`.
        coder: the box coder of both heads (the decoder's restriction of §4.2 lives in it).
        class_loss: e.g. ``BCEClassLoss(label_smoothing=0.1)``.
        objectness_balance: :math:`β_s`; ``None`` for all ones (:func:`yolov7_balance` gives
            the official values).
        box_gain, obj_gain, cls_gain: the gains (:func:`yolov7_gains`).
        anchor_t, topk, iou_weight: of the assigners (``topk`` 20 as ``ComputeLossAuxOTA``).

    ``outputs`` are the lead head's maps ``(B, A(5+K), H, W)``, finest first, followed by the
    auxiliary head's (2 x num_scales maps, in training); with the lead maps alone the loss is the
    lead loss and the aux terms are 0. The logged terms are detached, after gains, balance and
    ``aux_weight``, and add up to the loss.
    """

    class_gain_option = "cls_gain"

    def __init__(self, anchors: Sequence, strides: Sequence[int], guide: str = "lead",
                 aux_weight: float = AUX_WEIGHT, coder=YOLOV7_CODER,
                 class_loss=YOLOV7_CLASS_LOSS, objectness_balance: Sequence[float] | None = None,
                 box_gain: float = 1.0, obj_gain: float = 1.0, cls_gain: float = 1.0,
                 anchor_t: float = 4.0, topk: int = TOPK_AUX, iou_weight: float = IOU_WEIGHT):
        if guide not in GUIDES:
            raise ValueError(f"guide must be one of {GUIDES}, got {guide!r}")
        options = {"anchor_t": anchor_t, "topk": topk, "iou_weight": iou_weight}
        self.fine = LeadGuidedAssigner(coarse=False, **options)
        self.coarse = LeadGuidedAssigner(coarse=True, **options)
        # YOLOv5's terms of one scale (gains applied here, so 1 there); it also checks that the
        # coder reaches the fine positives. The coarse ones it cannot always reach, on purpose.
        self.terms = YOLOLoss(anchors, strides, self.fine, coder,
                              box_loss=IoUBoxLoss(complete_box_iou_loss),
                              objectness_target=objectness_iou, ignore_threshold=None,
                              class_loss=class_loss, objectness_balance=objectness_balance,
                              reduction="mean")
        self.strides, self.guide, self.aux_weight = self.terms.strides, guide, aux_weight
        self.box_gain, self.obj_gain, self.cls_gain = box_gain, obj_gain, cls_gain

    @property
    def coder(self):
        """The box coder(s) of both heads (the decoder of inference uses the same)."""
        return self.terms.coder

    @property
    def class_loss(self):
        return self.terms.class_loss

    def __call__(self, outputs: Sequence[Tensor], targets: Tensor):
        """``outputs``: lead maps then aux maps (or lead maps only); ``targets``: ``(M, 6)`` rows
        ``[b, class, x1, y1, x2, y2]`` in pixels of the input."""
        lead, aux = self._split(outputs)
        targets = targets.to(lead[0])
        lead_asg, aux_asg = self.assign(outputs, targets)
        box, obj, cls = self._head_terms(lead, lead_asg, targets)
        terms = {"box": self.box_gain * box, "obj": self.obj_gain * obj,
                 "cls": self.cls_gain * cls}
        zero = lead[0].new_zeros(())
        aux_box, aux_obj, aux_cls = (self._head_terms(aux, aux_asg, targets) if aux
                                     else (zero, zero, zero))
        terms["aux_box"] = self.aux_weight * self.box_gain * aux_box
        terms["aux_obj"] = self.aux_weight * self.obj_gain * aux_obj
        terms["aux_cls"] = self.aux_weight * self.cls_gain * aux_cls
        loss = sum(terms.values())
        return loss, {k: v.detach() for k, v in terms.items()}

    def assign(self, outputs: Sequence[Tensor], targets: Tensor):
        """``(lead assignments, aux assignments)``, one
        :class:`~yolo_teach.losses.assign.ScaleAssignment` per scale each; the second is
        ``None`` without aux maps."""
        lead, aux = self._split(outputs)
        targets = targets.to(lead[0])
        anchors = [a.to(lead[0]) for a in self.terms.anchors]
        grid_sizes = [tuple(p.shape[-2:]) for p in lead]
        lead_pred = self._decoded(lead, anchors)
        lead_asg = self.fine(targets, anchors, self.strides, grid_sizes, lead_pred)
        if not aux:
            return lead_asg, None
        if self.guide == "lead":  # Fig. 5e: coarse labels from the lead head's predictions
            aux_asg = self.coarse(targets, anchors, self.strides, grid_sizes, lead_pred)
        elif self.guide == "lead_fine":  # Fig. 5d: the lead head's labels
            aux_asg = lead_asg
        else:  # Fig. 5c: the auxiliary head's own predictions
            aux_asg = self.fine(targets, anchors, self.strides, grid_sizes,
                                self._decoded(aux, anchors))
        return lead_asg, aux_asg

    def _split(self, outputs) -> tuple[list[Tensor], list[Tensor]]:
        maps, n = as_map_list(outputs), len(self.strides)
        if len(maps) not in (n, 2 * n):
            raise ValueError(f"expected {n} lead maps, optionally followed by {n} auxiliary "
                             f"maps, got {len(maps)} maps")
        return maps[:n], maps[n:]

    @torch.no_grad()
    def _decoded(self, maps: list[Tensor], anchors: list[Tensor]) -> list[Tensor]:
        """Per scale ``(B, A, H, W, 5+K)``: xyxy pixels, objectness, class probabilities."""
        out = []
        for p, anchors_px, stride, coder in zip(maps, anchors, self.strides, self.terms.coders):
            rows = decode_anchor_maps(p.detach(), [anchors_px], [stride], coder,
                                      self.terms.class_loss.activation)  # (B, A H W, 5+K)
            b, _, h, w = p.shape
            out.append(rows.view(b, len(anchors_px), h, w, -1))  # (B, A, H, W, 5+K)
        return out

    def _head_terms(self, maps: list[Tensor], assignments: list[ScaleAssignment],
                    targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Box, balanced objectness and class terms of one head, before gains."""
        anchors = [a.to(maps[0]) for a in self.terms.anchors]
        box = obj = cls = maps[0].new_zeros(())
        for s, (p, asg) in enumerate(zip(maps, assignments)):
            pred = split_anchor_map(p, len(anchors[s]))  # (B, A, H, W, 5+K)
            box_s, obj_s, cls_s = self.terms._scale_terms(pred, asg, anchors[s], self.strides[s],
                                                          self.terms.coders[s], targets)
            box = box + box_s
            obj = obj + self.terms.objectness_balance[s] * obj_s
            cls = cls + cls_s
        return box, obj, cls


def lead_aux_recipe(guide: str = "lead", aux_weight: float = AUX_WEIGHT, topk: int = TOPK_AUX):
    """A loss recipe ``(strides, num_classes, img_size) -> LeadAuxLoss keyword arguments``
    (besides ``anchors`` and ``strides``): YOLOv7's balance and gains with the given guide;
    ``topk`` 20 as ``ComputeLossAuxOTA``, 10 for a model without an auxiliary head."""

    def recipe(strides: Sequence[int], num_classes: int, img_size: int) -> dict:
        return {
            "loss_class": LeadAuxLoss,
            "guide": guide,
            "topk": topk,
            "aux_weight": aux_weight,
            "objectness_balance": yolov7_balance(len(strides)),
            **yolov7_gains(len(strides), num_classes, img_size),
        }

    return recipe
