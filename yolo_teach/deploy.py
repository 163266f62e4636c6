r"""Deployment transforms: what a trained detector becomes before it ships (YOLOv7 §3-4, the
"bag of freebies" that costs nothing at inference).

:func:`fuse` returns a new model in which every :class:`~yolo_teach.protocols.Fusable` block is
replaced by its ``fuse()``: Conv+BN folded into one convolution (``ConvBNAct``), YOLOv7's
re-parameterised convolutions collapsed to one 3x3 convolution, implicit knowledge folded into
the head. The result equals the model in eval mode (up to float rounding, about 1e-7 of the
output's scale) and has fewer parameters: a Conv+BN fold removes :math:`\gamma, \beta` (2 C)
and adds a bias (C), so C fewer per BatchNorm of C channels; a RepConv loses its 1x1 and
identity branches as well.

**What a fused model cannot do.** Fusing is one-way; keep the unfused checkpoint and fuse when
you export (``export_onnx(..., fuse=True)``, ``yolo-teach export --fuse``).

- *Train.* There is no BatchNorm left: in training mode the fused network still computes
  :math:`W' x + b'` with the running statistics baked in, instead of normalising by the
  batch's statistics; the learning rates, weight decay and initialisation of the recipes
  assume the BatchNorms that normalise every layer.
- *Fine-tune or recalibrate BatchNorm.* :math:`\mu, \sigma^2, \gamma, \beta` are folded into
  the kernel and bias; re-estimating the running statistics on a new domain, or training only
  the BatchNorms, needs the unfused model.
- *Load the training checkpoint.* The ``state_dict`` keys differ (``bn.*`` gone, ``conv.bias``
  new, RepConv's ``conv1x1`` and ``identity`` gone), so training cannot resume from it.
- *Show or export the training-time branches.* A fused RepConv is a single 3x3 convolution:
  its 3x3 / 1x1 / identity branches (and the implicit-knowledge vectors folded into the head)
  can no longer be exported, inspected or re-parameterised.

Both ONNX exporters fold a Conv+BN pair into one ``Conv`` node on their own (an eval-mode graph
has no ``BatchNormalization``), so for a plain Conv+BN network ``fuse`` gives the same ONNX
graph; it matters for the blocks an exporter cannot see through, such as RepConv's parallel
branches.
"""

from __future__ import annotations

import copy

from torch import nn

from yolo_teach.protocols import Fusable


def fuse_blocks(module: nn.Module) -> nn.Module:
    """Replace, in place, every Fusable block below ``module`` by its ``fuse()`` (top-down: a
    Fusable block folds its own insides) and return ``module`` in eval mode. For a model's own
    ``fuse()`` (YOLOv7 drops its auxiliary head, then fuses the rest); users call :func:`fuse`."""
    for name, child in module.named_children():
        if isinstance(child, Fusable):
            setattr(module, name, child.fuse())
        else:
            fuse_blocks(child)
    return module.eval()  # the blocks fuse() built (e.g. a new nn.Conv2d) start in training mode


def fuse(model: nn.Module) -> nn.Module:
    """A fused copy of ``model`` in eval mode (``model`` itself is left untouched).

    Walks the module tree top-down; a Fusable block is replaced by ``block.fuse()`` and not
    descended into (it knows how to fold what it contains), any other module is descended into.
    Fusing a fused model changes nothing (its ``ConvBNAct`` blocks have ``nn.Identity`` norms).
    See the module docstring for what the fused model can no longer do.
    """
    if isinstance(model, Fusable):  # a model that knows its own inference form (YOLOv7)
        return model.fuse().eval()
    return fuse_blocks(copy.deepcopy(model))
