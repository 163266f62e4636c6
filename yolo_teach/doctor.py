"""The detector doctor: the classic label mistakes of a YOLO dataset, found before training.

"The loss goes down but mAP is 0" is most often a label mistake. :func:`diagnose` reads the raw
label files line by line (so that it can name file and line, and never stops at the first broken
one), runs one check per classic mistake, measures the boxes against a model's anchors, tries to
overfit one batch and, given a checkpoint, sweeps the confidence threshold on the val split::

    report = diagnose("my/data.yaml", weights="runs/v3/best.pt")
    print(report)                      # most severe first, each with an example file:line
    report.write_html("doctor.html")   # findings table and histograms in one file

Each check is a function of the parsed :class:`LabelRow` s (from :func:`scan_labels`) that
returns a :class:`~yolo_teach.doctor_report.Finding` or ``None``; ``yolo-teach doctor`` is the
command line.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Subset

from yolo_teach.anchors import autoanchor
from yolo_teach.data.core import BoxDataset
from yolo_teach.data.errors import ImageError, LabelError, UserError
from yolo_teach.data.formats.common import _read_image, _read_text
from yolo_teach.data.formats.yolo import _column_hint, _yolo_label_path, _yolo_split
from yolo_teach.data.loader import DetectionDataset, collate_detections
from yolo_teach.detectors import build_detector
from yolo_teach.doctor_checks import (  # noqa: F401  (re-exported)
    EXAMPLES,
    MIN_ASPECT,
    MIN_BOX_PIXELS,
    OUTSIDE_MARGIN,
    ImageGradients,
    LabelRow,
    LabelScan,
    _finding,
    _normalised,
    _pixel_box,
    _sticks_out,
    check_alignment,
    check_class_ids,
    check_corner_format,
    check_degenerate,
    check_duplicates,
    check_empty_labels,
    check_malformed,
    check_outside,
    check_pixel_coordinates,
    check_swapped_wh,
    edge_alignment,
)
from yolo_teach.doctor_report import DoctorReport, Finding
from yolo_teach.experiment import AUTOANCHOR_T, AUTOANCHOR_THRESHOLD, load_detector
from yolo_teach.metrics import detection_report, mean_average_precision
from yolo_teach.registry import get_spec

OVERFIT_STEPS = 60  # steps of the overfit check: yolov3-nano memorises 8 images at 128 px
CONF_THRESHOLDS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5)


# ------------------------------------------------------------------------------------ reading
def scan_labels(data: str | Path) -> LabelScan:
    """Read the label files of a YOLO dataset's train and val images, line by line.

    Unlike :func:`~yolo_teach.data.formats.read_yolo` it never stops at a broken line or file:
    each one is recorded. Only an unusable ``data.yaml`` (or no images) raises a ``UserError``.
    """
    data = Path(data)
    if not data.exists():
        raise UserError(f"--data {data}: no such data.yaml or dataset folder")
    has_yaml = data.is_file() or (data / "data.yaml").is_file()
    train = _yolo_split(data, "train" if has_yaml else None)  # a bare folder: images/, labels/
    scan = LabelScan([], [], class_names=train.class_names, val_images=train.images)
    if has_yaml:
        try:
            scan.val_images = _yolo_split(data, "val").images
        except LabelError as err:
            scan.notes.append(f"no val split ({err}); the sweep uses the train images")
    for image in dict.fromkeys([*train.images, *scan.val_images]):
        scan.images.append(image)
        _scan_image(image, scan)
    if not scan.images:
        raise UserError(f"{data}: no images found")
    return scan


def _scan_image(image: Path, scan: LabelScan) -> None:
    try:
        height, width = _read_image(image).shape[:2]
        size = (width, height)
    except ImageError as err:
        scan.unreadable.append((image, err.message))
        size = None
    label_path = _yolo_label_path(image)
    if not label_path.is_file():
        scan.missing.append(image)
        return
    try:
        text = _read_text(label_path)
    except LabelError as err:
        scan.malformed.append((label_path, err.line, err.message))
        return
    if not text.split():
        scan.empty.append(image)
    for line, content in enumerate(text.split("\n"), start=1):
        tokens = content.split()
        try:
            values = [float(t) for t in tokens]
        except ValueError:
            values = []
        if len(values) == 5 and all(math.isfinite(v) for v in values):
            scan.rows.append(LabelRow(label_path, line, values[0], tuple(values[1:]), image, size))
        elif tokens:  # blank lines are fine
            count = len(tokens)
            why = "not all numbers" if count == 5 else f"{count} columns{_column_hint(count)}"
            scan.malformed.append((label_path, line, f"{content.strip()!r}: {why}"))


# ------------------------------------------------------------------------------ statistics
def label_statistics(rows: list[LabelRow], class_names: list[str], img_size: int = 128,
                     model: str = "yolov3-nano", seed: int = 0) -> tuple[dict, list[Finding]]:
    """Boxes per class and box sizes at the ``img_size`` input against ``model``'s anchors.

    The anchors are judged with YOLOv5's AutoAnchor criterion: the best possible recall
    (:func:`~yolo_teach.anchors.ratio_recall`, ``anchor_t`` 4) of the official anchors, and of
    k-means ones for comparison. Findings: ``class-imbalance`` (info), ``low-anchor-recall``.
    """
    valid = [r for r in _normalised(rows) if r.image_size is not None
             and r.cls == int(r.cls) and 0 <= r.cls < len(class_names)]
    counts = np.bincount([int(r.cls) for r in valid], minlength=len(class_names))
    wh = np.array([(r.box[2] * r.image_size[0], r.box[3] * r.image_size[1])
                   for r in valid]).reshape(-1, 2)
    wh *= img_size / np.array([max(r.image_size) for r in valid]).reshape(-1, 1)
    stats = {"class_names": list(class_names), "class_counts": counts.tolist(), "box_wh": wh,
             "img_size": img_size, "model": model, "anchors": None, "anchor_recall": None}
    findings = []
    used = counts[counts > 0]
    if len(used) and (len(used) < len(counts) or used.max() >= 10 * used.min()):
        rare = [n for n, c in zip(class_names, counts) if c < used.max() / 10]
        findings.append(Finding("class-imbalance", "info", f"classes {', '.join(rare[:5])} have "
                                f"under a tenth of the boxes of the commonest ({used.max()}): "
                                "they will be learned last, if at all; label more of them, or "
                                "weight them.", count=len(rare)))
    spec = get_spec(model).anchors
    if spec is not None and len(wh):
        official = torch.cat(spec.pixels(img_size)).double().numpy()  # (A, 2)
        fit = autoanchor(wh, official, AUTOANCHOR_T, AUTOANCHOR_THRESHOLD, seed)
        kmeans = fit["recall_after"] if fit["refit"] else fit["recall_before"]
        stats.update(anchors=official, anchor_recall={"official": fit["recall_before"],
                                                      "kmeans": kmeans})
        if fit["recall_before"] < AUTOANCHOR_THRESHOLD:
            findings.append(Finding(
                "low-anchor-recall", "warning", f"{model}'s official anchors can learn only "
                f"{fit['recall_before']:.1%} of the boxes at {img_size} px (YOLOv5's AutoAnchor "
                f"wants {AUTOANCHOR_THRESHOLD:.0%}); k-means anchors reach {kmeans:.1%}: train "
                "with --anchors kmeans (the default) or auto.", count=len(wh)))
    return stats, findings


# ------------------------------------------------------------------------------ overfit
def boxes_of(scan: LabelScan, images: list[Path], num_classes: int) -> BoxDataset:
    """The usable boxes of ``images`` (valid class, inside the image after clipping) in memory."""
    by_image: dict[Path, list[LabelRow]] = {}
    for r in _normalised(scan.rows):
        if r.cls == int(r.cls) and 0 <= r.cls < num_classes:
            by_image.setdefault(r.image, []).append(r)
    readable = {p for p, _ in scan.unreadable}
    keep = [p for p in images if p not in readable]
    pictures = [_read_image(p) for p in keep]
    boxes, labels = [], []
    for path, picture in zip(keep, pictures):
        height, width = picture.shape[:2]
        rows = by_image.get(path, [])
        xyxy = np.array([_pixel_box(*r.box, (width, height)) for r in rows]).reshape(-1, 4)
        xyxy = np.clip(xyxy, 0, [width, height, width, height])
        inside = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        boxes.append(xyxy[inside])
        labels.append(np.array([int(r.cls) for r in rows], np.int64)[inside])
    names = scan.class_names or [f"class_{k}" for k in range(num_classes)]
    return BoxDataset(pictures, boxes, labels, names, [p.stem for p in keep])


def overfit_batch(source, model: str = "yolov3-nano", img_size: int = 128,
                  steps: int = OVERFIT_STEPS, lr: float = 0.003, batch_size: int = 8,
                  seed: int = 0, device: str | torch.device = "cpu") -> dict:
    """Train a fresh ``model`` on one batch (the first ``batch_size`` images with boxes of
    ``source``, letterboxed, no augmentation) with AdamW for ``steps`` steps, then measure mAP50
    on that same batch: a working pipeline memorises it (sample data, 128 px, 60 steps: loss
    74 -> 0.7, mAP50 1.0). It catches boxes the network cannot match, e.g. a dataset class that
    returns 0-1 boxes where pixels belong (loss still falls 14x, mAP50 0.0). It does NOT catch
    labels shuffled between images, shifted boxes or boxes that miss a random flip: measured,
    8 images are memorised with those too (mAP50 0.67-0.88); see ``boxes-off-objects``.

    ``source``: ``len``, ``num_classes`` and ``source[i] -> (image, boxes xyxy pixels,
    labels)``, read again at every step (a ``BoxDataset`` fits). Returns ``{"loss_start",
    "loss_end", "losses", "map50", "steps", "images", "boxes", "seconds"}``.
    """
    chosen = [i for i in range(len(source)) if len(source[i][1])][:batch_size]
    data = DetectionDataset(Subset(source, chosen), img_size)
    torch.manual_seed(seed)
    detector = build_detector(model, source.num_classes, img_size)
    net = detector.model.to(device).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    losses, start = [], time.perf_counter()
    for _ in range(steps if chosen else 0):
        images, targets = collate_detections([data[i] for i in range(len(data))])
        loss, _ = detector.criterion(net(images.to(device)), targets.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    map50, boxes = -1.0, 0
    if chosen:
        images, targets = collate_detections([data[i] for i in range(len(data))])
        net.eval()
        with torch.no_grad():
            preds = detector.predict(images.to(device), 0.001, 0.6)
        truth = [{"boxes": targets[targets[:, 0] == b, 2:], "labels": targets[targets[:, 0] == b,
                  1].long()} for b in range(len(images))]
        map50, boxes = mean_average_precision([{k: v.cpu() for k, v in p.items()}
                                               for p in preds], truth)["map_50"], len(targets)
    return {"loss_start": losses[0] if losses else math.nan,
            "loss_end": losses[-1] if losses else math.nan, "losses": losses, "map50": map50,
            "steps": len(losses), "images": len(chosen), "boxes": boxes,
            "seconds": time.perf_counter() - start}


def check_overfit(result: dict, min_map50: float = 0.5, max_loss_ratio: float = 0.5
                  ) -> Finding | None:
    """``cannot-overfit``: the loss did not fall to ``max_loss_ratio`` of its start, or mAP50 on
    the trained batch stayed below ``min_map50``."""
    if result["images"] == 0:
        return Finding("cannot-overfit", "error", "no image has a usable box to train on: fix "
                       "the findings above first.")
    ratio = result["loss_end"] / result["loss_start"]
    if ratio <= max_loss_ratio and result["map50"] >= min_map50:
        return None
    return Finding("cannot-overfit", "warning", f"trained {result['steps']} steps on one batch of "
                   f"{result['images']} images, the loss went {result['loss_start']:.3g} -> "
                   f"{result['loss_end']:.3g} and mAP50 on that very batch is "
                   f"{result['map50']:.2f}: a detector memorises one batch when its boxes match "
                   "its images. Check that the labels belong to their images and follow every "
                   "resize, flip or crop of the image.", count=result["images"])


# ------------------------------------------------------------------------------ checkpoint
def check_classes(checkpoint_names: list[str], data_names: list[str]) -> Finding | None:
    """``class-mismatch``: the checkpoint's classes against the data.yaml's names."""
    if list(checkpoint_names) == list(data_names):
        return None
    if len(checkpoint_names) != len(data_names):
        return Finding("class-mismatch", "error", f"the checkpoint knows {len(checkpoint_names)} "
                       f"classes, data.yaml names {len(data_names)}: its class ids mean other "
                       "things; fine-tune it on this data (yolo-teach train --weights).", count=1)
    return Finding("class-mismatch", "warning", f"the checkpoint's class names "
                   f"{checkpoint_names[:5]} differ from data.yaml's {data_names[:5]}: same ids, "
                   "other names? Check the order of names: in data.yaml.", count=1)


def confidence_sweep(detector, source: BoxDataset, thresholds=CONF_THRESHOLDS,
                     iou_threshold: float = 0.6) -> list[dict]:
    """mAP50, precision and recall of ``detector`` on ``source`` at each confidence threshold:
    one ``{"conf", "map50", "precision", "recall", "detections"}`` per threshold."""
    data = DetectionDataset(source, detector.img_size, cache=True)
    preds = detector.predict_dataset(data, min(thresholds), iou_threshold)
    targets = source.targets()
    top = max([source.num_classes, detector.num_classes])
    names = [f"class_{k}" for k in range(top)]
    rows = []
    for t in thresholds:
        kept = [{k: np.asarray(v)[np.asarray(p["scores"]) >= t] for k, v in p.items()}
                for p in preds]
        report = detection_report(kept, targets, names, conf_threshold=t)
        rows.append({"conf": t, "map50": max(mean_average_precision(kept, targets)["map_50"], 0.0),
                     "precision": report.precision, "recall": report.recall,
                     "detections": report.detections_count})
    return rows


# ------------------------------------------------------------------------------ all of it
def diagnose(data: str | Path, weights: str | Path | None = None, model: str = "yolov3-nano",
             img_size: int = 128, overfit_steps: int = OVERFIT_STEPS, seed: int = 0,
             device: str | torch.device = "cpu") -> DoctorReport:
    """Run every check on a YOLO ``data.yaml`` (or dataset folder); see the module docstring.

    Args:
        data: the dataset; its train and val splits are read (the val split for the sweep).
        weights: a checkpoint to sweep the confidence threshold with on the val split.
        model: whose anchors the box sizes are judged against, and what the overfit check trains.
        img_size: the network input side the box sizes are measured at.
        overfit_steps: steps of :func:`overfit_batch`; 0 skips it.
    """
    scan = scan_labels(data)
    names = scan.class_names
    if names is None:
        top = max((int(r.cls) for r in scan.rows if r.cls == int(r.cls)), default=-1)
        names = [f"class_{k}" for k in range(max(top + 1, 1))]
    rows, gradients = scan.rows, ImageGradients()
    findings = [check_malformed(scan), check_empty_labels(scan),
                check_class_ids(rows, len(names) if scan.class_names else None),
                check_duplicates(rows), check_degenerate(rows, img_size)]
    geometry = check_pixel_coordinates(rows) or check_corner_format(rows)
    swapped = None if geometry else check_swapped_wh(rows, gradients)
    findings += [geometry, swapped]
    if geometry is None or geometry.code != "corner-format":
        findings.append(check_outside(rows, swapped is not None))
    if geometry is None and swapped is None:
        findings.append(check_alignment(rows, gradients))
    if scan.unreadable:
        findings.append(_finding("unreadable-image", "error", f"{len(scan.unreadable)} images "
                                 f"cannot be read ({scan.unreadable[0][1]}): replace or delete "
                                 "them.", [(path, None) for path, _ in scan.unreadable]))
    stats, more = label_statistics(rows, names, img_size, model, seed)
    findings += more
    stats.update(images=len(scan.images), boxes=len(rows), notes=scan.notes)
    overfit = None
    if overfit_steps > 0:
        have = {r.image for r in _normalised(rows)}
        batch = [p for p in scan.images if p in have][:8]
        overfit = overfit_batch(boxes_of(scan, batch, len(names)), model, img_size,
                                overfit_steps, seed=seed, device=device)
        findings.append(check_overfit(overfit))
    sweep = None
    if weights is not None:
        detector, meta = load_detector(weights, device=device)
        findings.append(check_classes(meta["class_names"], names))
        sweep = confidence_sweep(detector, boxes_of(scan, scan.val_images, len(names)))
    return DoctorReport(str(data), [f for f in findings if f is not None], stats, overfit, sweep)
