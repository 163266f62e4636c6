"""Measure a model: parameters, FLOPs and a Darknet-style layer table.

FLOPs follow the YOLO papers' convention (Darknet's ``BFLOPs``): 2 x the multiply-accumulates
of the convolution and fully connected layers, for one image; batch norm, activations, pooling
and additions are not counted. The forward passes run on the ``meta`` device, where tensors
have a shape but no data: a model built under ``with torch.device("meta"):`` (even the 272 M
parameters of YOLOv1) is measured without allocating a single weight.

    >>> print(summary(yolov3_tiny(), img_size=416))  # doctest: +SKIP
    layer  type        filters  size/strd              output      params   BFLOPs  name
        0  conv             16  3 x 3/ 1     416 x 416 x   16         464    0.150  backbone16.0
    ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from yolo_teach.layers import ConvBNAct, MaxPoolStride1, Reorg

# Darknet's names for PyTorch's own layer types, as in its printout. The package's blocks name
# themselves with a class attribute ``darknet_name`` (e.g. ``Reorg.darknet_name = "reorg"``), so
# a new block needs no entry here.
LAYER_NAMES: dict[type[nn.Module], str] = {
    nn.Conv2d: "conv",
    nn.Linear: "connected",
    nn.MaxPool2d: "max",
    nn.Upsample: "upsample",
    nn.Dropout: "dropout",
}


def layer_kind(module: nn.Module) -> str:
    """Darknet's name of a table layer: its ``darknet_name``, :data:`LAYER_NAMES`, or the class
    name in lower case."""
    name = getattr(module, "darknet_name", None)
    return name or LAYER_NAMES.get(type(module), type(module).__name__.lower())


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (weights, biases, batch-norm scales and shifts) of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _meta_forward(model: nn.Module, img_size: int | tuple[int, int], in_channels: int) -> None:
    """Run ``model`` once, in eval mode, on a meta image with meta copies of its weights."""
    height, width = (img_size, img_size) if isinstance(img_size, int) else img_size
    tensors = {
        name: torch.empty_like(t, device="meta")
        for name, t in chain(model.named_parameters(), model.named_buffers())
    }
    image = torch.empty(1, in_channels, height, width, device="meta")  # (1, C, H, W)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            functional_call(model, tensors, (image,))
    finally:
        model.train(was_training)


def count_flops(model: nn.Module, img_size: int | tuple[int, int], in_channels: int = 3) -> int:
    """FLOPs of one forward pass on one ``img_size`` image: 2 x MACs of conv and linear layers.

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` on the meta device, so the model's
    own weights are neither read nor copied (it may live on CPU, GPU or meta).
    """
    counter = FlopCounterMode(display=False)
    with counter:
        _meta_forward(model, img_size, in_channels)
    return counter.get_total_flops()


@dataclass(frozen=True)
class LayerRow:
    """One row of the layer table: one Darknet layer (a conv with its BN and activation) or one
    parameter-free layer (pool, upsample, reorg, dropout)."""

    index: int
    name: str  # qualified module name, e.g. "backbone.stage1.0"
    kind: str  # Darknet's layer type: conv, max, connected, ...
    filters: int | None  # output channels or features
    kernel_stride: str  # "3 x 3/ 2"
    output_shape: tuple[int, ...]  # one image, without the batch axis
    params: int
    flops: int  # 2 x MACs, one image


@dataclass(frozen=True)
class ModelSummary:
    """The layer table of a model; ``str(summary)`` prints it like Darknet does."""

    img_size: int | tuple[int, int]
    rows: list[LayerRow] = field(default_factory=list)

    @property
    def total_params(self) -> int:
        return sum(row.params for row in self.rows)

    @property
    def total_flops(self) -> int:
        return sum(row.flops for row in self.rows)

    def __str__(self) -> str:
        lines = [
            f"{'layer':>5}  {'type':<10} {'filters':>8}  {'size/strd':<10} {'output':>18} "
            f"{'params':>11}  {'BFLOPs':>7}  name"
        ]
        for r in self.rows:
            if len(r.output_shape) == 3:  # Darknet prints H x W x C
                c, h, w = r.output_shape
                shape = f"{h:>4} x{w:>4} x{c:>5}"
            else:
                shape = " x ".join(str(s) for s in r.output_shape)
            filters = "" if r.filters is None else str(r.filters)
            lines.append(
                f"{r.index:>5}  {r.kind:<10} {filters:>8}  {r.kernel_stride:<10} {shape:>18} "
                f"{r.params:>11,}  {r.flops / 1e9:>7.3f}  {r.name}"
            )
        lines.append(
            f"total: {len(self.rows)} layers, {self.total_params:,} parameters, "
            f"{self.total_flops / 1e9:.2f} BFLOPs at {self.img_size}"
        )
        return "\n".join(lines)


def _layers(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """The table's layers in definition order: each ConvBNAct whole, otherwise leaf modules."""
    if isinstance(module, ConvBNAct) or not list(module.children()):
        return [] if isinstance(module, nn.Identity) else [(prefix, module)]
    found = []
    for name, child in module.named_children():
        found += _layers(child, f"{prefix}.{name}" if prefix else name)
    return found


def _describe(module: nn.Module) -> tuple[int | None, str, nn.Module | None]:
    """(filters, "k x k/ s", the conv or linear layer holding the weights) of a table layer."""
    conv = module.conv if isinstance(module, ConvBNAct) else module
    if isinstance(conv, nn.Conv2d):
        (k, _), (s, _) = conv.kernel_size, conv.stride
        return conv.out_channels, f"{k} x {k}/{s:>2}", conv
    if isinstance(conv, nn.Linear):
        return conv.out_features, "", conv
    if isinstance(module, nn.MaxPool2d):
        k, s = module.kernel_size, module.stride
        return None, f"{k} x {k}/{s:>2}", None
    if isinstance(module, MaxPoolStride1):
        return None, "2 x 2/ 1", None
    if isinstance(module, Reorg):
        return None, f"      /{module.stride:>2}", None
    return None, "", None


def summary(
    model: nn.Module, img_size: int | tuple[int, int], in_channels: int = 3
) -> ModelSummary:
    r"""A Darknet-style table of ``model``: one row per layer, in the order the data flows.

    A ``ConvBNAct`` is one row, as Darknet's ``[convolutional]`` (conv + BN + activation);
    parameter-free modules (pools, upsampling, reorg, dropout) get their own rows; tensor
    operations inside ``forward`` (concatenations, residual additions) get none. The FLOPs of a
    row are computed from its weight shape, :math:`2 \cdot k^2 C_{in} C_{out} H_{out} W_{out}`,
    independently of :func:`count_flops`, so the two totals check each other.

    Args:
        model: any model built from ``torch.nn`` modules (on CPU or meta).
        img_size: input size, an int for a square image or (H, W).
        in_channels: image channels.

    Returns:
        a :class:`ModelSummary`; ``print`` it to see the table.
    """
    layers = _layers(model)
    names = {id(m): name for name, m in layers}
    shapes: dict[str, list[tuple[int, ...]]] = {}
    order: list[str] = []

    def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        name = names[id(module)]
        order.append(name)
        shapes.setdefault(name, []).append(tuple(output.shape[1:]))

    handles = [m.register_forward_hook(record) for _, m in layers]
    try:
        _meta_forward(model, img_size, in_channels)
    finally:
        for handle in handles:
            handle.remove()

    modules = dict(layers)
    rows, counted = [], set()
    for index, name in enumerate(order):
        module = modules[name]
        output_shape = shapes[name].pop(0)
        filters, kernel_stride, weighted = _describe(module)
        flops = 0
        if weighted is not None:
            positions = output_shape[1] * output_shape[2] if len(output_shape) == 3 else 1
            flops = 2 * weighted.weight.numel() * positions  # 2 * MACs per image
        params = 0 if name in counted else count_parameters(module)
        counted.add(name)
        rows.append(
            LayerRow(
                index=index,
                name=name,
                kind=layer_kind(module),
                filters=filters,
                kernel_stride=kernel_stride,
                output_shape=output_shape,
                # a layer called twice (CBAM's shared MLP) has one set of weights: its
                # parameters are counted on its first row, its FLOPs on every row
                params=params,
                flops=flops,
            )
        )
    return ModelSummary(img_size=img_size, rows=rows)
