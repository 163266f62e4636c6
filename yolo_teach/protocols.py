"""The interfaces every detector of the zoo is built from, written down as ``typing.Protocol``s.

A new version plugs into the trainer, the command line, the notebooks and the benchmarks by
providing these pieces (:mod:`yolo_teach.registry` says how to register them); none of that
code asks which version it runs.

==================  ==========================================================================
protocol            what it does
==================  ==========================================================================
DetectionModel      images -> raw output maps, in train and eval mode alike
BoxCoder            raw ``t`` <-> boxes in grid units (decoder and loss share it)
Assigner            which predictions learn which ground truth (may look at the predictions)
Criterion           raw outputs + targets -> loss and its logged terms
PhasedCriterion     a Criterion that changes for the last epochs (YOLOX's L1 phase)
Decoder             raw outputs -> ``(B, N, 4 + 1 + K)`` rows for NMS
Fusable             a block that can return its inference-time equivalent (Conv+BN, RepConv)
TwoStepModel        RefineDet's family: images -> one row per default anchor, twice regressed
PriorCoder          offsets <-> boxes relative to an anchor in pixels (SSD's coding)
PriorMatcher        which default (or refined) anchors learn which ground truth, by IoU
==================  ==========================================================================

The YOLO family works on grids (``BoxCoder``, ``Assigner``: cells and anchor shapes per map);
the two-step detectors on flat lists of anchor boxes (``TwoStepModel``, ``PriorCoder``,
``PriorMatcher``), the vocabulary of SSD and RefineDet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from torch import Tensor, nn

Outputs = Tensor | Sequence[Tensor]  # one map (YOLOv1, YOLOv2) or one per stride, finest first


@runtime_checkable
class DetectionModel(Protocol):
    """An ``nn.Module`` that maps ``images (B, 3, H, W)`` to raw outputs.

    ``forward`` returns the same raw maps in train and eval mode (decoding, losses and NMS live
    elsewhere); ``strides`` are the strides of its output maps, finest first; ``cfg`` is a
    frozen dataclass with at least ``num_classes``. Building the model gives a ready model:
    its bias initialisation is done in ``__init__``.
    """

    strides: Sequence[int]

    def __call__(self, images: Tensor) -> Outputs: ...

    def init_bias(self, prior: float = 0.01) -> None: ...


class BoxCoder(Protocol):
    """Raw box outputs ``t`` to boxes and back, in grid units of one output map.

    ``cell`` is a cell's top-left corner ``(c_x, c_y)`` and ``anchor`` a prior ``(p_w, p_h)``,
    both in cells; boxes are ``cxcywh`` in cells (multiply by the stride for pixels).
    ``centre_range`` is the interval of ``b_x - c_x`` the coder can reach: an assigner that
    makes a cell responsible for a centre outside it could never be satisfied.
    """

    centre_range: tuple[float, float]

    def decode(self, t: Tensor, cell: Tensor, anchor: Tensor) -> Tensor: ...

    def encode(self, box: Tensor, cell: Tensor, anchor: Tensor) -> Tensor: ...


class Assigner(Protocol):
    """Which predictions are responsible for which ground truth.

    Args of ``__call__``:
        targets: ``(M, 6)`` rows ``[b, class, x1, y1, x2, y2]``, pixels of the input.
        anchors: per scale, ``(A, 2)`` anchor sizes in pixels.
        strides: per scale, its stride.
        grid_sizes: per scale, ``(H, W)``.
        predictions: per scale, the decoded predictions ``(B, A, H, W, 5+K)`` (``xyxy`` pixels,
            objectness, class probabilities), detached; static rules ignore them, dynamic ones
            (YOLOX's SimOTA, YOLOv7's lead-guided assignment) need them. May be ``None`` when
            the loss knows its assigner is static.

    Returns one :class:`~yolo_teach.losses.assign.ScaleAssignment` per scale.
    ``centre_range`` is where a responsible cell may lie relative to the centre it learns.
    """

    centre_range: tuple[float, float]

    def __call__(self, targets: Tensor, anchors: Sequence[Tensor], strides: Sequence[int],
                 grid_sizes: Sequence[tuple[int, int]],
                 predictions: Sequence[Tensor] | None = None) -> list: ...


class Criterion(Protocol):
    """A detection loss: ``(outputs, targets (M, 6)) -> (loss, {term: value})``.

    The logged terms are detached and add up to the loss. ``class_gain_option`` names the
    keyword argument of the loss that weighs its class term (``cls_gain``, YOLOv1's
    ``lambda_class``), so that a recipe can scale it without knowing the loss.
    """

    class_gain_option: str

    def __call__(self, outputs: Outputs, targets: Tensor) -> tuple[Tensor, dict[str, Tensor]]: ...


class PhasedCriterion(Criterion, Protocol):
    """A criterion that changes for the last epochs of training (YOLOX: the L1 term joins in
    when Mosaic stops). The trainer calls ``final_phase()`` once, at the start of the first
    epoch inside ``TrainConfig.final_phase``; criteria without the method are left alone."""

    def final_phase(self) -> None: ...


class Decoder(Protocol):
    """Raw outputs -> ``(B, N, 4 + 1 + K)`` rows ``[x1, y1, x2, y2, objectness, p_1..p_K]``."""

    def __call__(self, outputs: Outputs) -> Tensor: ...


@runtime_checkable
class Fusable(Protocol):
    """A block with an inference-time equivalent: ``fuse()`` returns a *new* module equal to it
    in eval mode (Conv+BN folded, YOLOv7's RepConv collapsed to one 3x3 conv, implicit
    knowledge folded into the head), leaving ``self`` untouched. ``yolo_teach.deploy.fuse`` walks
    a model and replaces every Fusable block by its ``fuse()``."""

    def fuse(self) -> nn.Module: ...


@runtime_checkable
class TwoStepModel(Protocol):
    """A two-step detector (RefineDet §3): ``images (B, 3, H, W)`` ->
    :class:`~yolo_teach.layers.refine.RefineOutput`, one row per default anchor, in train and
    eval mode alike. ``priors(img_size)`` gives those anchors (``(N, 4)`` xyxy pixels, in the
    rows' order) and ``feature_sizes(img_size)`` the side of each level's map, finest first.
    ``cfg.num_classes`` counts the background."""

    strides: Sequence[int]

    def __call__(self, images: Tensor): ...

    def priors(self, img_size: int) -> Tensor: ...

    def feature_sizes(self, img_size: int) -> list: ...


class PriorCoder(Protocol):
    """Offsets ``t`` relative to anchor boxes and back: ``encode(boxes, anchors) -> t`` and
    ``decode(t, anchors) -> boxes``, all ``(..., 4)``, boxes and anchors ``xyxy`` pixels
    (:class:`~yolo_teach.decode.SSDBoxCoder`)."""

    def encode(self, boxes: Tensor, anchors: Tensor) -> Tensor: ...

    def decode(self, t: Tensor, anchors: Tensor) -> Tensor: ...


class PriorMatcher(Protocol):
    """``(anchors (N, 4), truths (M, 4)) -> Match`` (``index``, ``iou``, ``positive``, each
    ``(N,)``): which anchors learn which ground truth
    (:class:`~yolo_teach.losses.refine_assign.IoUMatcher`)."""

    def __call__(self, anchors: Tensor, truths: Tensor): ...
