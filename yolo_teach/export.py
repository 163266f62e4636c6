"""Export a detector's network to ONNX, and check the file against PyTorch with ONNX Runtime.

**What is exported**: the network's forward pass, ``detector.model(images)``, i.e. the raw head
maps that the loss and the decoder receive, unchanged. Input ``images (B, 3, S, S)`` float32 RGB
in ``[0, 1]``, letterboxed (:func:`~yolo_teach.data.augment.letterbox`), with a dynamic batch
axis; outputs ``output0, output1, ...`` in the model's order: for YOLOv2-v4 one map per scale,
``(B, A (5 + K), S / stride, S / stride)`` finest first, for YOLOv1 one ``(B, S_grid, S_grid,
5 B + K)``. Decoding the maps into boxes (:mod:`yolo_teach.decode`, with the anchors saved in
the checkpoint's ``meta``) and NMS stay outside the graph: they are the part of a detector this
course teaches in Python, and they change with the assignment rule and the paper.

**Exporter**: ``torch.onnx.export(..., dynamo=False)``, the TorchScript-based exporter, at
opset 17: offline, no ``onnxscript``, works from torch 2.1 on, about 0.3 s for a nano model.
PyTorch has deprecated it in favour of ``dynamo=True`` (``torch.export`` + ``onnxscript``, opset
18), which gives the same numbers here but takes 3-7 s for a nano: pass ``dynamo=True`` (or
``yolo-teach export --dynamo``) to use it.

**Fused export**: ``fuse=True`` (``yolo-teach export --fuse``) exports the network after
:func:`yolo_teach.deploy.fuse`: BatchNorms folded into the convolutions, YOLOv7's RepConv
branches collapsed to one 3x3 convolution. Both exporters already fold a plain Conv+BN pair
into one ``Conv`` node of an eval-mode graph, so the option changes the graph only for the
blocks they cannot see through (RepConv's parallel branches); the outputs are the same.

:func:`check_onnx` runs the file in ONNX Runtime and returns the largest absolute difference to
PyTorch (about 1e-6 for the nano models); for a fused file, compare it with the unfused model:
that checks the fold and the export together.
"""

from __future__ import annotations

import importlib
import logging
import os
import uuid
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from yolo_teach import deploy
from yolo_teach.data.errors import UserError
from yolo_teach.detectors import Detector

INSTALL_HINT = 'pip install "yolo-teach[export]"'


class ExportError(UserError, RuntimeError):
    """ONNX export cannot run here (``onnx`` or ``onnxruntime`` is missing)."""


def require(*modules: str) -> list:
    """Import ``modules`` (e.g. ``"onnx"``, ``"onnxruntime"``); a one-line
    :class:`ExportError` naming the install command when one is missing."""
    imported = []
    for name in modules:
        try:
            imported.append(importlib.import_module(name))
        except ImportError:
            raise ExportError(f"ONNX export needs the {name} package: {INSTALL_HINT}") from None
    return imported


def _network(model: nn.Module | Detector) -> nn.Module:
    return model.model if isinstance(model, Detector) else model


def _as_list(outputs) -> list[torch.Tensor]:
    return [outputs] if torch.is_tensor(outputs) else list(outputs)


def export_onnx(model: nn.Module | Detector, path: str | Path, img_size: int | None = None,
                opset: int | None = None, dynamo: bool = False, fuse: bool = False) -> Path:
    """Write ``model``'s forward pass (raw head outputs, see the module docstring) to ``path``.

    Args:
        model: a :class:`~yolo_teach.detectors.Detector` or its network.
        path: the ``.onnx`` file, written through a temporary file and a rename.
        img_size: side ``S`` of the input (default: the detector's ``img_size``; required for
            a bare network).
        opset: ONNX opset (default 17, or 18 with ``dynamo``).
        dynamo: use the ``torch.export``-based exporter (needs ``onnxscript``).
        fuse: export :func:`yolo_teach.deploy.fuse`'s copy of the network (Conv+BN folded,
            RepConv collapsed); ``model`` itself is not changed.

    Returns:
        ``path``, checked with ``onnx.checker``.
    """
    (onnx,) = require("onnx")
    if dynamo:
        require("onnxscript")
    img_size = img_size or getattr(model, "img_size", None)
    if img_size is None:
        raise ValueError("img_size is needed to export a bare network")
    network = deploy.fuse(_network(model)) if fuse else _network(model)
    was_training = network.training
    network.eval()
    device = next(network.parameters()).device
    images = torch.zeros(1, 3, img_size, img_size, device=device)  # (1, 3, S, S)
    with torch.no_grad():
        names = [f"output{i}" for i in range(len(_as_list(network(images))))]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's
            warnings.simplefilter("ignore", FutureWarning)  # torch.export's internals
            _export(network, images, tmp, names, opset, dynamo)
        onnx.checker.check_model(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        network.train(was_training)
    return path


def _export(network, images, path, names, opset, dynamo) -> None:
    if dynamo:
        quiet = logging.getLogger("torch.onnx")  # "torchvision is not installed" warnings
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            torch.onnx.export(network, (images,), str(path), dynamo=True,
                              opset_version=opset or 18, input_names=["images"],
                              output_names=names, dynamic_shapes=({0: torch.export.Dim("batch")},),
                              verbose=False)
        finally:
            quiet.setLevel(level)
        return
    axes = {name: {0: "batch"} for name in ["images", *names]}
    torch.onnx.export(network, (images,), str(path), dynamo=False, opset_version=opset or 17,
                      input_names=["images"], output_names=names, dynamic_axes=axes)


def check_onnx(path: str | Path, model: nn.Module | Detector, images: torch.Tensor | None = None,
               batch: int = 2, seed: int = 0) -> float:
    """Largest absolute difference between ONNX Runtime running ``path`` and PyTorch running
    ``model`` on ``images`` (default: ``batch`` seeded random images of the detector's size).
    """
    (ort,) = require("onnxruntime")
    network = _network(model)
    if images is None:
        size = model.img_size if isinstance(model, Detector) else None
        if size is None:
            raise ValueError("pass images to check a bare network")
        generator = torch.Generator().manual_seed(seed)
        images = torch.rand(batch, 3, size, size, generator=generator)  # (B, 3, S, S)
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            expected = _as_list(network(images.to(next(network.parameters()).device)))
    finally:
        network.train(was_training)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": images.cpu().numpy()})
    if len(got) != len(expected):
        raise ValueError(f"{path}: {len(got)} outputs, PyTorch gives {len(expected)}")
    return max(float(np.abs(g - e.float().cpu().numpy()).max()) for g, e in zip(got, expected))
