"""What a run leaves besides its weights: the per-epoch history (``history.json`` and
``history.csv``), read back as rows or columns; and a model's predictions over a whole dataset,
mapped back to the original images (what validation scores and the notebooks plot).

Used by :class:`yolo_teach.train.Trainer` (and importable from :mod:`yolo_teach.train`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from yolo_teach.data.augment import unletterbox_boxes
from yolo_teach.data.loader import DetectionDataset, collate_detections

Predictor = Callable[[nn.Module, torch.Tensor], list[dict]]


def write_history(out_dir: str | Path, history: list[dict]) -> None:
    """Write ``history`` (one dict per epoch) to ``out_dir/history.json`` and ``history.csv``
    (one column per key seen in any row, blank where a row lacks it)."""
    out_dir = Path(out_dir)
    (out_dir / "history.json").write_text(json.dumps(history, indent=1))
    keys = list(dict.fromkeys(k for row in history for k in row))
    with open(out_dir / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)


@torch.no_grad()
def predict_dataset(predict: Predictor, model: nn.Module, data: DetectionDataset,
                    batch_size: int = 16, channels_last: bool = False) -> list[dict]:
    """Run ``predict(model, images)`` over ``data`` (in order) and map every box back from the
    letterboxed network input to its original image: one numpy prediction dict per image.
    The images go to the device of ``model``'s weights."""
    model.eval()
    device = next(model.parameters()).device
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate_detections,
                        generator=torch.Generator().manual_seed(0))  # not the global RNG
    preds = []
    for images, _ in loader:
        images = images.to(device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        for pred in predict(model, images):
            r, pad, shape = data.letterbox_params(len(preds))
            preds.append({"boxes": unletterbox_boxes(pred["boxes"].cpu().numpy(), r, pad, shape),
                          "scores": pred["scores"].cpu().numpy(),
                          "labels": pred["labels"].cpu().numpy()})
    return preds


def load_history(path: str | Path) -> list[dict]:
    """Read ``history.json`` (or the folder that holds it)."""
    path = Path(path)
    return json.loads((path / "history.json" if path.is_dir() else path).read_text())


def history_columns(history: list[dict]) -> dict[str, np.ndarray]:
    """The history as one array per column (NaN where an epoch has no value, e.g. no validation)."""
    keys = list(dict.fromkeys(k for row in history for k in row))
    return {k: np.array([row.get(k, np.nan) for row in history], dtype=float) for k in keys}
