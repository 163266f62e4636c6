"""What does fusing buy at inference on a CPU? Unfused PyTorch, fused PyTorch and ONNX Runtime.

For every model, input size and thread count, one image (batch 1) through three backends:

- ``torch``: the network as trained, in eval mode (every BatchNorm a separate layer);
- ``torch-fused``: :func:`yolo_teach.deploy.fuse`'s copy (Conv+BN folded, RepConv collapsed);
- ``onnxruntime``: the fused network exported (``export_onnx(..., fuse=True)``) and run by an
  ONNX Runtime session on the CPU with ``intra_op_num_threads`` = the thread count.

The three are timed side by side, one call each per round
(:func:`yolo_teach.models.timing.compare_latency`), after the same warm-up. Prints one JSON
line per measurement: ``model``, ``backend``, ``threads``, ``img_size``, ``batch``,
``num_classes`` (80, COCO's head), ``params`` (of the network that backend runs),
``median_ms``, ``q1_ms`` / ``q3_ms`` (the interquartile range), ``min_ms`` / ``max_ms``,
``repeats``, ``warmup``, the ``torch`` and ``onnxruntime`` versions and the ``cpu``.

    python benchmarks/latency.py --quick                     # one model, 320 px, 1 thread
    python benchmarks/latency.py --out yolo_teach/assets/results/latency.jsonl
    python benchmarks/latency.py --models yolov5n --sizes 640 --threads 1 --repeats 50
    python benchmarks/latency.py --table2 --out yolo_teach/assets/results/latency_refinedet.jsonl

``--table2`` is RefineDetLite's Table 2 setting: one thread, 320 px, batch 1, for RefineDetLite72,
RefineDet320 (VGG16) and YOLOv3-320. The paper ran ONNX-converted models in Caffe2 on an
i7-6700 (130 ms against 1300 ms for YOLOv3): its ratio, not its milliseconds, is what another
CPU can compare.

Weights are random (latency does not depend on them). Numbers depend on the machine and on what
else runs: on a shared machine start Python with ``OMP_WAIT_POLICY=PASSIVE`` (see the README)
and compare the backends of one line group, measured together, rather than runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from yolo_teach.detectors import build_detector
from yolo_teach.export import require
from yolo_teach.models.timing import cpu_name, deploy_latency
from yolo_teach.registry import detector_names

# the deployable small models; yolov7-tiny joins when it is registered
MODELS = ("yolov7-tiny", "yolov5n", "yolov4-tiny", "yolox-nano")
TABLE2 = ("refinedet-lite72", "refinedet320", "yolov3")  # RefineDetLite Table 2, 1 thread, 320 px
SIZES = (320, 416, 640)
THREADS = (1, 2)
NUM_CLASSES = 80  # COCO's head, as deployed


def measure(name: str, img_size: int, threads: int, repeats: int, warmup: int) -> list[dict]:
    """One JSON record per backend for ``name`` at ``img_size`` px and ``threads`` threads
    (:func:`yolo_teach.models.timing.deploy_latency`, random weights, COCO's 80 classes)."""
    (ort,) = require("onnxruntime")
    torch.manual_seed(0)
    network = build_detector(name, NUM_CLASSES, img_size=img_size).model.eval()
    records = deploy_latency(network, img_size, threads, warmup, repeats, name=name)
    machine = {"torch": torch.__version__, "onnxruntime": ort.__version__, "cpu": cpu_name()}
    keys = ("median_ms", "q1_ms", "q3_ms", "min_ms", "max_ms")
    return [{**{k: v for k, v in r.items() if k not in keys and k != "times_ms"},
             "num_classes": NUM_CLASSES, **{k: round(r[k], 3) for k in keys}, **machine}
            for r in records]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=None,
                        help=f"registered names (default: those of {', '.join(MODELS)} that are "
                             "registered)")
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    parser.add_argument("--threads", nargs="+", type=int, default=list(THREADS))
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per backend")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls per backend first")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: the first model only, 320 px, 1 thread, 5 repeats")
    parser.add_argument("--table2", action="store_true",
                        help="RefineDetLite's Table 2: " + ", ".join(TABLE2) + " at 320 px, "
                             "1 thread")
    parser.add_argument("--out", type=Path, default=None, help="append the lines to this file")
    args = parser.parse_args(argv)
    if args.table2:
        args.models, args.sizes, args.threads = list(TABLE2), [320], [1]
    names = args.models or [name for name in MODELS if name in detector_names()]
    unknown = sorted(set(names) - set(detector_names()))
    if unknown:
        parser.error(f"unknown models {unknown}; registered: {detector_names()}")
    if args.quick:
        names, args.sizes, args.threads = names[:1], [320], [1]
        args.repeats, args.warmup = 5, 2
    cells = [(name, img_size, threads) for name in names for img_size in args.sizes
             for threads in args.threads]
    results = []
    for name, img_size, threads in cells:
        records = measure(name, img_size, threads, args.repeats, args.warmup)
        for record in records:
            print(json.dumps(record), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.writelines(json.dumps(record) + "\n" for record in records)
        results.extend(records)
    return results


if __name__ == "__main__":
    main()
