"""``yolo-teach``: train, validate and run the course's detectors from a terminal.

    yolo-teach train  --model yolov3-nano --data shapes --epochs 30 --imgsz 128 --out runs/v3
    yolo-teach train  --out runs/v3 --resume          # continue after an interruption
    yolo-teach val    --weights runs/v3/best.pt --data shapes
    yolo-teach detect --weights runs/v3/best.pt --source images/ --out runs/v3/detect

Every command calls the same library functions as the notebooks (:mod:`yolo_teach.experiment`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from yolo_teach.data.augment import letterbox, unletterbox_boxes
from yolo_teach.data.formats.common import IMAGE_SUFFIXES
from yolo_teach.data.loader import DetectionDataset
from yolo_teach.data.sources import load_dataset
from yolo_teach.experiment import AUGMENT_PRESETS, load_detector, make_experiment
from yolo_teach.metrics import detection_report, mean_average_precision
from yolo_teach.registry import assignment_rules, detector_names
from yolo_teach.utils import setup
from yolo_teach.viz.render import render_boxes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yolo-teach", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a detector")
    train.add_argument("--model", default="yolov3-nano", choices=detector_names())
    train.add_argument("--data", default="shapes",
                       help="shapes, face_masks, ct_lesions, or a data.yaml path")
    train.add_argument("--assign", default=None, choices=assignment_rules(),
                       help="target assignment of anchor models (default: the faithful 'single')")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--imgsz", type=int, default=128)
    train.add_argument("--batch", type=int, default=16)
    train.add_argument("--accumulate", type=int, default=1, help="Darknet's subdivisions")
    train.add_argument("--optimizer", default="adamw", choices=("sgd", "adamw"))
    train.add_argument("--lr", type=float, default=0.002)
    train.add_argument("--time-limit", type=float, default=None, help="seconds of training")
    train.add_argument("--n-train", type=int, default=2000, help="generated training images")
    train.add_argument("--n-val", type=int, default=200, help="generated validation images")
    train.add_argument("--anchors", default="kmeans", choices=("kmeans", "official"))
    train.add_argument("--augment", default="full", choices=AUGMENT_PRESETS,
                       help="full: Mosaic, affine, HSV, flips; light: HSV and flips; none")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=2)
    train.add_argument("--out", default="runs/train")
    train.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")

    val = sub.add_parser("val", help="COCO mAP of a checkpoint")
    val.add_argument("--weights", required=True)
    val.add_argument("--data", default="shapes")
    val.add_argument("--n-val", type=int, default=200)
    val.add_argument("--seed", type=int, default=0, help="the training run's seed")
    val.add_argument("--conf", type=float, default=0.001)
    val.add_argument("--iou", type=float, default=0.6)
    val.add_argument("--batch", type=int, default=16)
    val.add_argument("--threads", type=int, default=2)

    detect = sub.add_parser("detect", help="draw detections on images")
    detect.add_argument("--weights", required=True)
    detect.add_argument("--source", required=True,
                        help="a folder of images, one image, or a built-in dataset name")
    detect.add_argument("--n", type=int, default=8, help="images of a built-in dataset")
    detect.add_argument("--out", default="runs/detect")
    detect.add_argument("--conf", type=float, default=0.25)
    detect.add_argument("--iou", type=float, default=0.45)
    detect.add_argument("--threads", type=int, default=2)
    return parser


def train(args) -> dict:
    setup(args.seed, args.threads)
    exp = make_experiment(
        args.model, args.data, assign=args.assign, img_size=args.imgsz, n_train=args.n_train,
        n_val=args.n_val, anchors=args.anchors, seed=args.seed, out_dir=args.out,
        epochs=args.epochs, batch_size=args.batch, accumulate=args.accumulate,
        optimizer=args.optimizer, lr=args.lr, time_limit=args.time_limit, augment=args.augment)
    if args.resume:
        exp.trainer.resume()
    history = exp.trainer.fit()
    final = history[-1] if history else {}
    print(json.dumps({"out": str(args.out), **final}))
    return final


def _val_data(data, n, seed, img_size):
    return DetectionDataset(load_dataset(data, "val", n=n, seed=seed), img_size, cache=True)


def val(args) -> dict:
    setup(args.seed, args.threads)
    detector, meta = load_detector(args.weights)
    data = _val_data(args.data, args.n_val, args.seed, detector.img_size)
    preds = detector.predict_dataset(data, args.conf, args.iou, args.batch)
    targets = data.source.targets()
    metrics = mean_average_precision(preds, targets)
    print(detection_report(preds, targets, meta["class_names"]))
    summary = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}
    print(json.dumps(summary))
    return metrics


def _images(source: str, n: int):
    """``(name, RGB image)`` pairs from a folder, a file or a built-in dataset."""
    path = Path(source)
    if path.is_dir() or path.is_file():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) \
            if path.is_dir() else [path]
        for file in files:
            bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if bgr is None:
                print(f"skipping {file}: not a readable image", file=sys.stderr)
                continue
            yield file.stem, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    else:
        dataset = load_dataset(source, "val", n=n)
        yield from zip(dataset.names, dataset.images)


def detect(args) -> list[Path]:
    setup(0, args.threads)
    detector, meta = load_detector(args.weights)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, image in _images(args.source, args.n):
        boxed, _, r, pad = letterbox(image, np.zeros((0, 4), np.float32), detector.img_size)
        tensor = torch.from_numpy(boxed.transpose(2, 0, 1).copy()).float().div(255)[None]
        det = detector.predict(tensor, args.conf, args.iou)[0]
        boxes = unletterbox_boxes(det["boxes"].numpy(), r, pad, image.shape[:2])
        drawn = render_boxes(image, boxes, det["labels"], det["scores"], meta["class_names"])
        path = out / f"{name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        written.append(path)
        print(f"{path}: {len(boxes)} detections")
    return written


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    {"train": train, "val": val, "detect": detect}[args.command](args)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

