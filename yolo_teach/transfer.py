"""Transfer learning: start a model from another run's weights, re-head it, freeze parts of it.

Seed 000 (lightweight YOLO for CT lesions) fine-tunes a detector pretrained on natural images
instead of training it from scratch: with a few hundred labelled slices, the early layers'
edge and texture filters are worth keeping. The pieces, each usable alone::

    report = transfer_weights(model, "runs/shapes/best.pt")  # by name and shape
    print(report)                      # what was loaded, skipped (other shape), new, unused
    freeze(model, "backbone")          # no gradients there (set before building the trainer)
    grayscale_first_conv(model)        # a 1-channel input: the RGB kernels summed

:func:`yolo_teach.experiment.make_experiment` (``weights=``, ``freeze=``) and ``yolo-teach
train --weights W --freeze backbone`` use them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from yolo_teach.checkpoint import CheckpointError
from yolo_teach.data.errors import UserError


@dataclass
class TransferReport:
    """What :func:`transfer_weights` did, by tensor name (``state_dict`` keys).

    Attributes:
        loaded: the model's tensors copied from the source (same name, same shape).
        skipped: same name, another shape: ``{name: (source shape, model shape)}``; they keep
            their initialisation (e.g. the output layer of a head for another class count).
        new: the model's tensors the source does not have (e.g. SE blocks added to a backbone).
        unused: the source's tensors the model does not have.
        source: where the weights came from.
    """

    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    new: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    source: str = "weights"

    @property
    def fresh(self) -> list[str]:
        """The model's tensors that keep their initialisation: skipped and new."""
        return list(self.skipped) + self.new

    @property
    def total(self) -> int:
        return len(self.loaded) + len(self.skipped) + len(self.new)

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded)}/{self.total} tensors from {self.source}"]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} whose shapes differ (they keep their "
                         f"initialisation):")
            lines += [f"  {name}: {tuple(a)} -> {tuple(b)}" for name, (a, b) in
                      self.skipped.items()]
        if self.new:
            lines.append(f"new {len(self.new)} (not in the source): " + _names(self.new))
        if self.unused:
            lines.append(f"unused {len(self.unused)} (not in this model): "
                         + _names(self.unused))
        return "\n".join(lines)


def _names(names: list[str], shown: int = 4) -> str:
    more = f", ... ({len(names) - shown} more)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def source_weights(source: str | Path | dict, use_ema: bool = True) -> tuple[dict, str, str | None]:
    """``(state_dict, description, model name)`` of ``source``: a run's checkpoint (its EMA
    weights when it kept them) or a ``state_dict`` as it is (no model name)."""
    if isinstance(source, dict):
        return source, "a state_dict", None
    from yolo_teach.experiment import read_run, run_weights  # experiment builds on this module

    state = read_run(source)
    model = state["meta"]["model"]
    return run_weights(state, use_ema), f"{source} ({model})", model


def transfer_weights(model: nn.Module, source: str | Path | dict, use_ema: bool = True,
                     name: str = "this model") -> TransferReport:
    """Copy into ``model`` every tensor of ``source`` whose name and shape match one of its own.

    ``source`` is a run's checkpoint (``best.pt``, an exported weights file; any registered
    model: names shared by two models, e.g. YOLOv5n's backbone in its SE variant, are loaded)
    or a ``state_dict``. Float16 weights are copied into a float32 model. Returns the
    :class:`TransferReport`. No tensor matching is an error (a
    :class:`~yolo_teach.checkpoint.CheckpointError` for a file); ``name`` is the model's, for
    that message.
    """
    weights, description, source_model = source_weights(source, use_ema)
    own = model.state_dict()
    report = TransferReport(source=description)
    matching = {}
    for key, tensor in own.items():
        theirs = weights.get(key)
        if theirs is None:
            report.new.append(key)
        elif theirs.shape != tensor.shape:
            report.skipped[key] = (tuple(theirs.shape), tuple(tensor.shape))
        else:
            matching[key] = theirs
            report.loaded.append(key)
    report.unused = [key for key in weights if key not in own]
    if not any(t.is_floating_point() for t in matching.values()):  # BatchNorm counters only
        message = (f"none of its tensors fits {name} by name and shape (a checkpoint of a "
                   f"related model is needed)")
        if source_model is None:
            raise ValueError(f"{description}: {message}")
        raise CheckpointError(f"holds a {source_model}; {message}", source)
    model.load_state_dict(matching, strict=False)
    return report


def rehead(detector, num_classes: int):
    """The same detector (name, input size, rule, anchors) for ``num_classes`` classes, with
    every tensor of ``detector`` whose shape still fits: ``(new_detector, TransferReport)``.

    The class outputs of the head change shape and keep the new detector's initialisation.
    """
    from yolo_teach.detectors import build_detector

    anchors = [a.tolist() for a in detector.anchors] if detector.anchors else None
    new = build_detector(detector.name, num_classes, detector.img_size, assign=detector.rule,
                         anchors=anchors)
    report = transfer_weights(new.model, detector.model.state_dict())
    report.source = f"{detector.name} ({detector.num_classes} classes)"
    return new, report


def stages(model: nn.Module) -> list[str]:
    """The model's stages: the names of its top-level modules (``backbone``, ``neck``, ...)."""
    return [name for name, _ in model.named_children()]


class StageError(UserError, ValueError):
    """A stage name the model does not have."""


def _modules(model: nn.Module, names: str | Sequence[str]) -> list[nn.Module]:
    names = [names] if isinstance(names, str) else list(names)
    found = []
    for name in names:
        try:
            found.append(model.get_submodule(name))
        except AttributeError:
            raise StageError(f"{type(model).__name__} has no stage {name!r}; its stages are "
                             f"{stages(model)} (a dotted name reaches inside one)") from None
    return found


def freeze(model: nn.Module, names: str | Sequence[str]) -> int:
    """Stop the gradients of the stages ``names`` (top-level names or dotted paths); return
    the number of parameters frozen. Freeze before building the optimizer: it leaves frozen
    parameters out (:func:`~yolo_teach.optim.build_optimizer`).

    NOTE: BatchNorm layers of a frozen stage still update their running statistics in training
    mode, as in YOLOv5's ``--freeze``: the new images' statistics replace the old ones.
    """
    count = 0
    for module in _modules(model, names):
        for p in module.parameters():
            count += p.numel() if p.requires_grad else 0
            p.requires_grad_(False)
    return count


def unfreeze(model: nn.Module, names: str | Sequence[str] | None = None) -> int:
    """Let gradients through the stages ``names`` again (every parameter when ``None``); return
    the number of parameters unfrozen. Build a new optimizer afterwards."""
    modules = [model] if names is None else _modules(model, names)
    count = 0
    for module in modules:
        for p in module.parameters():
            count += 0 if p.requires_grad else p.numel()
            p.requires_grad_(True)
    return count


def trainable_table(model: nn.Module) -> list[dict]:
    """One row per stage: ``stage``, ``params`` and ``trainable`` (parameters with gradients)."""
    rows = []
    for name, module in model.named_children():
        params = list(module.parameters())
        rows.append({"stage": name, "params": sum(p.numel() for p in params),
                     "trainable": sum(p.numel() for p in params if p.requires_grad)})
    return rows


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The first convolution that sees the image: ``(name, conv)``, the first ``Conv2d`` in
    registration order (the stem of every network of the package)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    raise ValueError(f"{type(model).__name__} has no Conv2d")


@torch.no_grad()
def grayscale_first_conv(model: nn.Module) -> str:
    """Adapt ``model`` to 1-channel images in place: its first convolution's kernels over R,
    G, B are summed into one kernel, so a grey image ``g`` gives exactly what the RGB network
    gave for ``(g, g, g)`` (a CT slice shown in grey). Returns the convolution's name.

    A model whose input is normalised per channel inside the network (e.g. RefineDetLite's
    input BatchNorm) must be adapted there too: this is refused rather than done wrongly.
    """
    name, conv = first_conv(model)
    if conv.in_channels % 3 or conv.groups != 1:
        raise ValueError(f"{name} takes {conv.in_channels} channels in {conv.groups} groups; "
                         f"expected an RGB convolution (3 channels, or 3 per patch of a "
                         f"space-to-depth stem, in 1 group)")
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.num_features == 3:
            raise ValueError(f"{type(model).__name__} normalises the 3 input channels before "
                             f"{name}; adapt that layer by hand")
    patches = conv.in_channels // 3  # YOLOX's Focus stem: 4 patches x (R, G, B), patch-major
    gray = nn.Conv2d(patches, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                     conv.dilation, 1, conv.bias is not None, conv.padding_mode,
                     device=conv.weight.device, dtype=conv.weight.dtype)
    weight = conv.weight.unflatten(1, (patches, 3))  # (C_out, patches, 3, k, k)
    gray.weight.copy_(weight.sum(dim=2))  # (C_out, patches, k, k)
    if conv.bias is not None:
        gray.bias.copy_(conv.bias)
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, gray)
    return name
