r"""The loss of RefineDet and RefineDetLite (RefineDetLite §4, eq. 1-6; RefineDet §3.3).

Four parts, eq. 1: a box and a class loss for the ARM (coarse: binary object / background on the
default anchors) and for the ODM (refined: K + 1 classes on the ARM-refined anchors),

.. math:: L = \lambda^{arm}_{loc} L^{arm}_{loc} + \lambda^{arm}_{cls} L^{arm}_{cls}
          + \lambda^{odm}_{loc} L^{odm}_{loc} + \lambda^{odm}_{cls} L^{odm}_{cls}

each summed over the sampled anchors and divided by the number of positives (SSD, RefineDet).
The paper's **basic configuration** (§5.1): smooth L1 on the coded offsets, cross entropy, OHEM
at 1 : 3, all λ = 1, plain NMS. Its **advanced configuration** swaps in, one option each:

=================================  =====================================================
option                             what it does
=================================  =====================================================
``box_loss=GIoUBoxLoss()``         GIoU loss on the decoded boxes (Rezatofighi et al.)
``class_weights=...``              eq. 5, from the training set's box counts per class
``iou_guided=IoUGuided()``         eq. 3-4: soft labels and sample weights from the IoU of
                                   the predicted box, in eq. 2's weighted KL divergence
``weighting=UncertaintyWeighting`` eq. 6: learnable log-variances instead of fixed λ
soft-NMS                           at inference (the detector's ``nms``)
=================================  =====================================================

The ODM never sees an anchor the ARM is sure is background (negative anchor filtering,
:func:`~yolo_teach.losses.refine_assign.filtered_anchors`), and it learns the refined anchors:
the ARM's offsets, detached, move the default anchors before they are matched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from yolo_teach.boxes import aligned_box_iou, generalized_box_iou_loss
from yolo_teach.decode import SSDBoxCoder
from yolo_teach.layers.refine import RefineOutput
from yolo_teach.losses.refine_assign import (
    FILTER_THRESHOLD,
    NEGATIVE_RATIO,
    IoUMatcher,
    filtered_anchors,
    hard_negatives,
)
from yolo_teach.nms import batched_soft_nms

# RefineDetLite §5.1, advanced configuration: alpha, beta (eq. 3-4), gamma, W (eq. 5)
ALPHA, BETA, GAMMA, W = 0.25, 0.90, 0.75, 10.0


# ------------------------------------------------------------------------------- box losses
@dataclass(frozen=True)
class SmoothL1BoxLoss:
    """Smooth L1 on the coded offsets (SSD, RefineDet; the basic configuration), summed over
    the 4 coordinates: ``(t_hat (P, 4), anchors (P, 4), truths (P, 4), coder) -> (P,)``."""

    def __call__(self, t_hat: Tensor, anchors: Tensor, truths: Tensor,
                 coder: SSDBoxCoder) -> Tensor:
        t = coder.encode(truths, anchors)  # (P, 4)
        return F.smooth_l1_loss(t_hat, t, reduction="none", beta=1.0).sum(-1)  # (P,)


@dataclass(frozen=True)
class GIoUBoxLoss:
    """``1 - GIoU`` of the decoded box and its truth (RefineDetLite §4.1, advanced
    configuration): ``(t_hat (P, 4), anchors (P, 4), truths (P, 4), coder) -> (P,)``."""

    def __call__(self, t_hat: Tensor, anchors: Tensor, truths: Tensor,
                 coder: SSDBoxCoder) -> Tensor:
        return generalized_box_iou_loss(coder.decode(t_hat, anchors), truths)  # (P,)


# ------------------------------------------------------------------------- eq. 2-5, class
def class_weights(counts: Sequence[int], W: float = W, gamma: float = GAMMA
                  ) -> tuple[float, ...]:
    r"""Eq. 5, the dataset-aware class weights: ``counts[i]`` boxes of foreground class ``i``
    -> ``K + 1`` weights, background (index 0) first with weight 1 (plain floats, so that they
    are saved with a checkpoint's loss options).

    .. math:: w_i = \frac{W - 1}{r_{max}^\gamma - 1} (r_i^\gamma - 1) + 1, \quad
              r_i = \frac{M_{max}}{M_i}, \; r_{max} = \frac{M_{max}}{M_{min}}

    The most frequent class gets 1, the rarest ``W``. A class without boxes counts as one box;
    equal counts give every class 1.
    """
    m = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)  # (K,)
    r, r_max = m.max() / m, m.max() / m.min()
    if r_max == 1.0:
        fg = np.ones_like(m)
    else:
        fg = (W - 1) / (r_max**gamma - 1) * (r**gamma - 1) + 1  # (K,)
    return tuple(float(w) for w in np.concatenate([[1.0], fg]))  # K + 1


@dataclass(frozen=True)
class IoUGuided:
    r"""Eq. 3-4, the IoU-guided soft label and sample weight, from :math:`\widehat{IoU}_j`, the IoU
    of anchor ``j``'s predicted box with its ground truth (the best-overlapping one for a
    negative):

    .. math:: y_{j t_j} = \begin{cases} 1 - \alpha (1 - \widehat{IoU}_j) & t_j > 0 \\
              1 - \alpha \widehat{IoU}_j & t_j = 0 \end{cases}, \qquad
              y_{ji} = \frac{1 - y_{j t_j}}{K - 1} \; (i \ne t_j), \qquad
              \eta_j = \frac{1}{1 + \beta (\widehat{IoU}_j - 1) \mathbf 1(t_j > 0)}

    with K counting the background. A well-placed positive keeps a label near 1, a badly placed
    one a softer label but a larger weight (a hard positive); a negative that covers an object
    well is told it is not quite background.
    """

    alpha: float = ALPHA
    beta: float = BETA

    def labels(self, target: Tensor, iou: Tensor, num_classes: int) -> Tensor:
        """Eq. 3: ``target (P,)`` hard labels (0 = background), ``iou (P,)`` in [0, 1],
        ``num_classes`` K counting the background -> soft labels ``(P, K)``, rows sum to 1."""
        positive = target > 0
        y_t = torch.where(positive, 1 - self.alpha * (1 - iou), 1 - self.alpha * iou)  # (P,)
        y = ((1 - y_t) / (num_classes - 1)).unsqueeze(-1).expand(-1, num_classes).clone()
        return y.scatter(-1, target.unsqueeze(-1), y_t.unsqueeze(-1))  # (P, K)

    def weights(self, target: Tensor, iou: Tensor) -> Tensor:
        """Eq. 4: ``target (P,)``, ``iou (P,)`` -> sample weights ``eta (P,)``."""
        return 1 / (1 + self.beta * (iou - 1) * (target > 0).to(iou.dtype))


def weighted_kl_loss(logits: Tensor, soft_labels: Tensor, class_weight: Tensor | None = None,
                     sample_weight: Tensor | None = None) -> Tensor:
    r"""Eq. 2 per anchor: :math:`\eta_j \sum_i w_i\, y_{ji} \log(y_{ji} / \mathrm{softmax}(x_j)_i)`.

    ``logits``, ``soft_labels (P, K)``; ``class_weight (K,)`` (eq. 5, ``None`` = 1);
    ``sample_weight (P,)`` (eq. 4, ``None`` = 1) -> ``(P,)``. With one-hot labels and unit
    weights it is the cross entropy (:math:`0 \log 0 = 0`).
    """
    log_p = F.log_softmax(logits, dim=-1)  # (P, K)
    y = soft_labels
    log_y = torch.where(y > 0, torch.log(y.clamp(min=1e-12)), torch.zeros_like(y))  # (P, K)
    terms = y * (log_y - log_p)  # (P, K)
    if class_weight is not None:
        terms = terms * class_weight
    loss = terms.sum(-1)  # (P,)
    return loss * sample_weight if sample_weight is not None else loss


# --------------------------------------------------------------------------- eq. 1 and eq. 6
TASKS = ("arm_box", "arm_cls", "odm_box", "odm_cls")  # the four parts of eq. 1, in its order


class UncertaintyWeighting(nn.Module):
    r"""Eq. 6 (Kendall et al. 2018): each part weighted by a learnable homoscedastic
    uncertainty :math:`\sigma_k^2`, trained as :math:`s_k = \log \sigma_k^2` (the paper's
    "logarithmic form", stable):

    .. math:: L = \sum_{k \in box} \Bigl(\tfrac{1}{2} e^{-s_k} L_k + \tfrac{s_k}{2}\Bigr)
              + \sum_{k \in cls} \Bigl(e^{-s_k} L_k + \tfrac{s_k}{2}\Bigr)

    A regression part gets :math:`1 / 2\sigma^2`, a classification part :math:`1 / \sigma^2`.
    For a fixed :math:`L_k` the optimum is :math:`\sigma_k^2 = L_k` (box) or
    :math:`2 L_k` (class): a part whose loss stays large is weighted down.
    """

    factors = {"arm_box": 0.5, "arm_cls": 1.0, "odm_box": 0.5, "odm_cls": 1.0}

    def __init__(self):
        super().__init__()
        self.log_var = nn.Parameter(torch.zeros(len(TASKS)))  # s_k = log sigma_k^2, (4,)

    def forward(self, parts: dict[str, Tensor]) -> dict[str, Tensor]:
        """``{task: L_k}`` -> ``{task: weighted L_k}`` plus ``"log_var"``: the sum of
        :math:`s_k / 2`; the values add up to eq. 6."""
        out = {}
        for k, task in enumerate(TASKS):
            out[task] = self.factors[task] * torch.exp(-self.log_var[k]) * parts[task]
        out["log_var"] = self.log_var.sum() / 2
        return out


# ------------------------------------------------------------------------------------ loss
@dataclass(frozen=True)
class RefineAssignment:
    """The anchors one loss evaluation used, all ``(B, N)`` bool unless stated.

    Attributes:
        arm_positive, arm_negative: the ARM's positives and its mined negatives (OHEM).
        refined: (B, N, 4) xyxy, the default anchors moved by the ARM's offsets.
        filtered: the anchors removed by negative anchor filtering.
        odm_positive, odm_negative: the ODM's positives (on the refined anchors, filtered ones
            excluded) and its mined negatives.
        odm_labels: (B, N) long, class + 1 on the ODM positives, 0 elsewhere.
    """

    arm_positive: Tensor
    arm_negative: Tensor
    refined: Tensor
    filtered: Tensor
    odm_positive: Tensor
    odm_negative: Tensor
    odm_labels: Tensor


class RefineDetLoss(nn.Module):
    """Eq. 1 for a two-step detector's :class:`~yolo_teach.layers.refine.RefineOutput`.

    Args:
        priors: ``(N, 4)`` xyxy pixels, the default anchors in the output's row order.
        num_classes: K foreground classes (the network predicts K + 1 with the background).
        box_loss: :class:`SmoothL1BoxLoss` (basic) or :class:`GIoUBoxLoss`.
        class_weights: eq. 5 weights ``(K + 1,)`` (e.g. :func:`class_weights` of the training
            set's counts); ``None`` = 1.
        iou_guided: :class:`IoUGuided` for eq. 3-4, ``None`` for hard labels.
        uncertainty: eq. 6's learnable weights instead of the fixed λ (this loss then has
            parameters: the trainer optimises them with the network's).
        box_gain, cls_gain: the fixed λ of eq. 1 (both modules).
        negative_ratio: OHEM's negatives per positive.
        iou_threshold: IoU for a positive anchor, ARM and ODM.
        filter_threshold: ARM background probability that removes an anchor from the ODM.
        coder: offsets <-> boxes (default :class:`~yolo_teach.decode.SSDBoxCoder`).

    ``__call__(outputs, targets (M, 6) [b, class, x1, y1, x2, y2] pixels) -> (loss, terms)``.
    """

    class_gain_option = "cls_gain"

    def __init__(self, priors: Tensor, num_classes: int, box_loss=SmoothL1BoxLoss(),
                 class_weights: Tensor | Sequence[float] | None = None,
                 iou_guided: IoUGuided | None = None, uncertainty: bool = False,
                 box_gain: float = 1.0, cls_gain: float = 1.0,
                 negative_ratio: int = NEGATIVE_RATIO, iou_threshold: float = 0.5,
                 filter_threshold: float = FILTER_THRESHOLD, coder: SSDBoxCoder | None = None):
        super().__init__()
        self.register_buffer("priors", torch.as_tensor(priors, dtype=torch.float32),
                             persistent=False)
        self.num_classes = num_classes
        self.box_loss, self.iou_guided = box_loss, iou_guided
        self.coder = coder or SSDBoxCoder()
        weights = None if class_weights is None else torch.as_tensor(class_weights,
                                                                       dtype=torch.float32)
        if weights is not None and weights.shape != (num_classes + 1,):
            raise ValueError(f"class_weights needs {num_classes + 1} values (background "
                             f"first), got {tuple(weights.shape)}")
        self.register_buffer("class_weights", weights, persistent=False)
        self.box_gain, self.cls_gain = box_gain, cls_gain  # the fixed λ of eq. 1
        self.uncertainty = UncertaintyWeighting() if uncertainty else None
        self.negative_ratio, self.filter_threshold = negative_ratio, filter_threshold
        self.matcher = IoUMatcher(iou_threshold)

    # ---- matching, per image -----------------------------------------------------------
    def _match(self, anchors: Tensor, targets: Tensor, batch: int):
        """``anchors (B, N, 4)`` -> positive (B, N), truth boxes (B, N, 4), labels (B, N)
        (class + 1 on positives, 0 elsewhere), best-truth boxes (B, N, 4) and whether the
        image has any truth (B,)."""
        positive = torch.zeros(anchors.shape[:2], dtype=torch.bool, device=anchors.device)
        labels = torch.zeros(anchors.shape[:2], dtype=torch.long, device=anchors.device)
        truths = torch.zeros_like(anchors)
        has_truth = torch.zeros(batch, dtype=torch.bool, device=anchors.device)
        for b in range(batch):
            rows = targets[targets[:, 0] == b]  # (M_b, 6)
            if len(rows) == 0:
                continue
            match = self.matcher(anchors[b], rows[:, 2:6])
            positive[b] = match.positive
            truths[b] = rows[match.index, 2:6]  # (N, 4) best truth of every anchor
            labels[b] = torch.where(match.positive, rows[match.index, 1].long() + 1, 0)
            has_truth[b] = True
        return positive, truths, labels, has_truth

    # ---- the two modules --------------------------------------------------------------
    def _arm(self, out: RefineOutput, targets: Tensor, priors: Tensor):
        batch = out.arm_loc.shape[0]
        anchors = priors.expand(batch, -1, -1)  # (B, N, 4)
        positive, truths, _, _ = self._match(anchors, targets, batch)
        ce = F.cross_entropy(out.arm_conf.transpose(1, 2), positive.long(),
                             reduction="none")  # (B, N)
        negative = hard_negatives(ce, positive, ~positive, self.negative_ratio)
        n_pos = positive.sum().clamp(min=1)
        box = self.box_loss(out.arm_loc[positive], anchors[positive], truths[positive],
                            self.coder).sum()
        parts = {"arm_box": box / n_pos, "arm_cls": ce[positive | negative].sum() / n_pos}
        return parts, {"arm_positive": positive, "arm_negative": negative}

    def _odm(self, out: RefineOutput, targets: Tensor, priors: Tensor):
        batch = out.odm_loc.shape[0]
        refined = self.coder.decode(out.arm_loc.detach(), priors)  # (B, N, 4) ARM's anchors
        filtered = filtered_anchors(out.arm_conf, self.filter_threshold)  # (B, N)
        matched, truths, labels, has_truth = self._match(refined, targets, batch)
        positive = matched & ~filtered
        labels = torch.where(positive, labels, 0)  # (B, N)
        if self.iou_guided is None:
            cls = F.cross_entropy(out.odm_conf.transpose(1, 2), labels,
                                  reduction="none")  # (B, N)
            if self.class_weights is not None:
                cls = cls * self.class_weights[labels]  # eq. 2 with one-hot labels
        else:
            with torch.no_grad():  # IoU-hat of eq. 3: the predicted box vs its truth
                boxes = self.coder.decode(out.odm_loc, refined)  # (B, N, 4)
                iou = aligned_box_iou(boxes.reshape(-1, 4), truths.reshape(-1, 4)).view(
                    batch, -1).clamp(0, 1) * has_truth[:, None]  # (B, N)
            soft = self.iou_guided.labels(labels.reshape(-1), iou.reshape(-1),
                                          self.num_classes + 1)  # (BN, K + 1)
            eta = self.iou_guided.weights(labels.reshape(-1), iou.reshape(-1))  # (BN,)
            cls = weighted_kl_loss(out.odm_conf.reshape(-1, self.num_classes + 1), soft,
                                   self.class_weights, eta).view(batch, -1)  # (B, N)
        negative = hard_negatives(cls, positive, ~positive & ~filtered, self.negative_ratio)
        n_pos = positive.sum().clamp(min=1)
        box = self.box_loss(out.odm_loc[positive], refined[positive], truths[positive],
                            self.coder).sum()
        parts = {"odm_box": box / n_pos, "odm_cls": cls[positive | negative].sum() / n_pos}
        return parts, {"refined": refined, "filtered": filtered, "odm_positive": positive,
                       "odm_negative": negative, "odm_labels": labels}

    def _parts(self, outputs: RefineOutput, targets: Tensor):
        priors = self.priors.to(outputs.arm_loc.device)
        if outputs.arm_loc.shape[1] != len(priors):
            raise ValueError(f"the network predicts {outputs.arm_loc.shape[1]} anchors but the "
                             f"loss has {len(priors)} priors: build both for one input size")
        targets = targets.to(outputs.arm_loc.device)
        arm, arm_masks = self._arm(outputs, targets, priors)
        odm, odm_masks = self._odm(outputs, targets, priors)
        return {**arm, **odm}, RefineAssignment(**arm_masks, **odm_masks)

    def assign(self, outputs: RefineOutput, targets: Tensor) -> RefineAssignment:
        """Which anchors the loss uses, and how, for ``outputs`` and ``targets`` (no gradient):
        what the two-step widget draws and the tests check."""
        with torch.no_grad():
            return self._parts(outputs, targets)[1]

    def forward(self, outputs: RefineOutput, targets: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        parts, _ = self._parts(outputs, targets)
        if self.uncertainty is not None:
            terms = self.uncertainty(parts)
        else:
            terms = {k: (self.box_gain if k.endswith("box") else self.cls_gain) * v
                     for k, v in parts.items()}
        loss = sum(terms.values())
        return loss, {k: v.detach() for k, v in terms.items()}


# ---------------------------------------------------------------------------------- recipes
def refinedet_rules() -> dict:
    """The two configurations of RefineDetLite §5.1, as loss recipes ``(strides, num_classes,
    img_size) -> RefineDetLoss options`` (plus ``nms``, popped by
    :func:`~yolo_teach.detectors.refine_head`):

    * ``"basic"``: smooth L1, cross entropy, OHEM 1 : 3, λ = 1, greedy NMS (RefineDet's own
      loss, and RefineDetLite's basic configuration);
    * ``"advanced"``: GIoU, the IoU-guided soft labels and weights (eq. 3-4), uncertainty
      weighting (eq. 6) and soft-NMS. The class weights of eq. 5 need the training set's
      counts: pass ``class_weights=class_weights(counts)`` as a loss option.
    """
    return {
        "basic": lambda strides, num_classes, img_size: {},
        "advanced": lambda strides, num_classes, img_size: {
            "box_loss": GIoUBoxLoss(), "iou_guided": IoUGuided(), "uncertainty": True,
            "nms": batched_soft_nms},
    }


__all__ = [
    "ALPHA",
    "BETA",
    "GAMMA",
    "GIoUBoxLoss",
    "IoUGuided",
    "RefineAssignment",
    "RefineDetLoss",
    "SmoothL1BoxLoss",
    "TASKS",
    "UncertaintyWeighting",
    "W",
    "class_weights",
    "refinedet_rules",
    "weighted_kl_loss",
]
