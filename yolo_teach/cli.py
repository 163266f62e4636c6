"""``yolo-teach``: train, validate, predict with and export the course's detectors from a terminal.

    yolo-teach train   --model yolov3-nano --data shapes --epochs 30 --imgsz 128 --out runs/v3
    yolo-teach train   --out runs/v3 --resume           # continue after an interruption
    yolo-teach train   --model yolov3-nano --recipe short --time-limit 120 --out runs/short
    yolo-teach train   --weights runs/v3/best.pt --data my/data.yaml --epochs 10 --out runs/ft
    yolo-teach train   --model yolov5n-se-mish --weights runs/v5n/best.pt --freeze backbone --out runs/se
    yolo-teach val     --weights runs/v3/best.pt --data shapes --device auto
    yolo-teach predict --weights runs/v3/best.pt --source images/ --out runs/v3/predict
    yolo-teach export  --weights runs/v3/best.pt --format onnx --out runs/v3/best.onnx
    yolo-teach doctor  --data my/data.yaml --weights runs/v3/best.pt  # label mistakes, anchors, overfit check
    yolo-teach export  --weights runs/v3/best.pt --fuse   # Conv+BN folded, RepConv collapsed
    torchrun --nproc_per_node 2 -m yolo_teach.cli train --device cuda --batch 32 --out runs/ddp

Every command calls the same library functions as the notebooks (:mod:`yolo_teach.experiment`,
:mod:`yolo_teach.predict`, :mod:`yolo_teach.export`, :mod:`yolo_teach.devices`). A mistake of
the user's (a missing file, a malformed data.yaml or label, a file that is not a checkpoint, a bad
option, CUDA asked for without CUDA) prints one line ``yolo-teach: error: ...`` and exits with
status 2; ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from pathlib import Path

import torch

from yolo_teach import __version__
from yolo_teach.data.errors import UserError
from yolo_teach.data.loader import DetectionDataset
from yolo_teach.data.sources import GENERATORS, load_dataset
from yolo_teach.deploy import fuse
from yolo_teach.devices import close_distributed, distributed, select_device
from yolo_teach.doctor import OVERFIT_STEPS, DoctorReport, diagnose
from yolo_teach.experiment import (
    ANCHOR_CHOICES,
    AUGMENT_PRESETS,
    load_detector,
    make_experiment,
    read_run,
    short_run,
)
from yolo_teach.export import check_onnx, export_onnx, require
from yolo_teach.metrics import detection_report, mean_average_precision
from yolo_teach.models.summary import count_parameters
from yolo_teach.predict import image_sources, predict_to_folder
from yolo_teach.registry import assignment_rules, detector_names, get_spec
from yolo_teach.utils import setup

# train option -> (make_experiment argument, default). The parser's defaults are None, so that
# a --recipe can change a default while an option the user typed still wins.
TRAIN_OPTIONS = {
    "epochs": ("epochs", 30), "imgsz": ("img_size", 128), "batch": ("batch_size", 16),
    "accumulate": ("accumulate", 1), "optimizer": ("optimizer", "adamw"), "lr": ("lr", 0.002),
    "augment": ("augment", "full"), "time_limit": ("time_limit", None),
    "assign": ("assign", None), "workers": ("num_workers", 0), "amp": ("amp", None),
}
GENERATED_SIZES = {"train": 2000, "val": 200}  # images generated for a built-in dataset


class _Parser(argparse.ArgumentParser):
    """``argparse`` that raises a :class:`UserError` instead of printing its usage and exiting,
    so that :func:`main` reports a bad option in one line like every other mistake."""

    def error(self, message: str):
        raise UserError(message)


def _positive_int(text: str) -> int:
    if not text.lstrip("-").isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected 0 or a positive integer, got {text!r}")
    return int(text)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="yolo-teach", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"yolo-teach {__version__}")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, help, aliases=()):
        p = sub.add_parser(name, help=help, aliases=list(aliases))
        p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks of errors")
        p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, else CPU), "
                       "cpu, cuda, cuda:N or mps (default: auto)")
        p.add_argument("--threads", type=_positive_int, default=2, help="CPU threads (default: 2)")
        return p

    def option(p, flag, help, **kwargs):  # a train option whose default is in TRAIN_OPTIONS
        default = TRAIN_OPTIONS[flag.lstrip("-").replace("-", "_")][1]
        shown = f" (default: {default})" if default is not None else ""
        p.add_argument(flag, default=None, help=help + shown, **kwargs)

    train = command("train", "train a detector")
    train.set_defaults(func=train_command)
    train.add_argument("--model", default=None, choices=detector_names(),
                       help="default: the model of --weights, else yolov3-nano")
    train.add_argument("--data", default="shapes",
                       help="shapes, face_masks, ct_lesions, or a data.yaml path")
    train.add_argument("--weights", default=None,
                       help="start from this checkpoint's weights, of the same or a related "
                            "model (matched by name and shape; re-headed for another class "
                            "count)")
    train.add_argument("--freeze", nargs="+", default=None, metavar="STAGE",
                       help="stages that get no gradients, e.g. backbone (top-level names of "
                            "the model, or dotted paths)")
    train.add_argument("--recipe", default="default", choices=("default", "short"),
                       help="short: the short-run recipe of benchmarks/ (options given "
                            "explicitly still win)")
    option(train, "--assign", "target assignment of anchor models (default: the checkpoint's "
           "rule with --weights, else the paper's, e.g. 'single')",
           choices=assignment_rules())
    option(train, "--epochs", "epochs", type=_positive_int)
    option(train, "--imgsz", "network input side, pixels", type=_positive_int)
    option(train, "--batch", "images per batch, over all torchrun processes", type=_positive_int)
    option(train, "--accumulate", "Darknet's subdivisions", type=_positive_int)
    option(train, "--optimizer", "optimizer", choices=("sgd", "adamw"))
    option(train, "--lr", "learning rate", type=float)
    option(train, "--time-limit", "seconds of training (default: none)", type=float)
    option(train, "--augment", "full: Mosaic, affine, HSV, flips; light: HSV and flips; none",
           choices=AUGMENT_PRESETS)
    option(train, "--workers", "data-loader processes", type=_count)
    option(train, "--amp", "mixed precision, CUDA only (default: on for CUDA)",
           action=argparse.BooleanOptionalAction)
    train.add_argument("--n-train", type=_positive_int, default=None,
                       help="images of a generated dataset (default 2000); a data.yaml: all")
    train.add_argument("--n-val", type=_positive_int, default=None,
                       help="images of a generated dataset (default 200); a data.yaml: all")
    train.add_argument("--anchors", default=None, choices=ANCHOR_CHOICES,
                       help="default: weights with --weights, else kmeans")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", default="runs/train")
    train.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")

    val = command("val", "COCO mAP of a checkpoint")
    val.set_defaults(func=val_command)
    val.add_argument("--weights", required=True)
    val.add_argument("--data", default="shapes")
    val.add_argument("--n-val", type=_positive_int, default=None,
                     help="images of a generated dataset (default 200); a data.yaml: all")
    val.add_argument("--seed", type=int, default=0, help="the training run's seed")
    val.add_argument("--conf", type=_fraction, default=0.001)
    val.add_argument("--iou", type=_fraction, default=0.6)
    val.add_argument("--batch", type=_positive_int, default=16)

    predict = command("predict", "detect objects; write drawn images and YOLO label files",
                      aliases=("detect",))
    predict.set_defaults(func=predict_command)
    predict.add_argument("--weights", required=True)
    predict.add_argument("--source", required=True, help="a folder of images, one image, a "
                         "data.yaml (its val images) or a built-in dataset name")
    predict.add_argument("--n", type=_positive_int, default=8,
                         help="images of a built-in dataset")
    predict.add_argument("--out", default="runs/predict",
                         help="OUT/NAME.png and OUT/labels/NAME.txt ('class cx cy w h conf')")
    predict.add_argument("--conf", type=_fraction, default=0.25)
    predict.add_argument("--iou", type=_fraction, default=0.45)

    export = command("export", "export the network (raw head outputs) to ONNX")
    export.set_defaults(func=export_command)
    export.add_argument("--weights", required=True)
    export.add_argument("--format", default="onnx", choices=("onnx",))
    export.add_argument("--out", default=None, help="default: WEIGHTS with the suffix .onnx")
    export.add_argument("--opset", type=_positive_int, default=None,
                        help="ONNX opset (default 17; 18 with --dynamo)")
    export.add_argument("--dynamo", action="store_true",
                        help="torch.export-based exporter (needs onnxscript)")
    export.add_argument("--fuse", action="store_true",
                        help="export the fused network (yolo_teach.deploy.fuse: Conv+BN folded, "
                             "RepConv collapsed); checked against the unfused one")

    doctor = command("doctor", "find the classic label mistakes of a YOLO dataset (and a "
                     "checkpoint's)")
    doctor.set_defaults(func=doctor_command)
    doctor.add_argument("--data", required=True, help="a YOLO data.yaml (or dataset folder)")
    doctor.add_argument("--weights", default=None,
                        help="a checkpoint: sweep its confidence threshold on the val split")
    doctor.add_argument("--out", default="runs/doctor", help="OUT/doctor.html and OUT/doctor.png")
    doctor.add_argument("--model", default="yolov3-nano", choices=detector_names(),
                        help="whose anchors the boxes are judged against and what the overfit "
                             "check trains (default: yolov3-nano)")
    doctor.add_argument("--imgsz", type=_positive_int, default=128,
                        help="network input side the box sizes are measured at (default: 128)")
    doctor.add_argument("--overfit-steps", type=_count, default=OVERFIT_STEPS,
                        help=f"steps of the overfit-one-batch check, 0 skips it "
                             f"(default: {OVERFIT_STEPS})")
    doctor.add_argument("--seed", type=int, default=0)
    return parser


# -------------------------------------------------------------------------------- helpers
def _existing(path: str, option: str) -> Path:
    if not Path(path).is_file():
        raise UserError(f"{option} {path}: no such file")
    return Path(path)


def _note(message: str) -> None:
    print(f"yolo-teach: note: {message}", file=sys.stderr)


def _image_count(data: str, split: str, n: int | None, option: str) -> int | None:
    """``n`` for a generated dataset (default :data:`GENERATED_SIZES`); for a data.yaml all
    images (``None``), or the first ``n`` with a note: never a silent truncation."""
    if data in GENERATORS:
        return n if n is not None else GENERATED_SIZES[split]
    if n is not None:
        _note(f"{option} {n}: using only the first {n} {split} images of {data}")
    return n


def _check_imgsz(model: str, imgsz: int) -> None:
    with torch.device("meta"):  # shapes only: builds without allocating or drawing weights
        stride = max(get_spec(model).make_model(1, imgsz).strides)
    if imgsz % stride:
        raise UserError(f"--imgsz {imgsz}: {model} needs a multiple of {stride}")


# -------------------------------------------------------------------------------- commands
def train_command(args) -> dict:
    if args.weights and args.resume:
        raise UserError("--weights and --resume: choose one (--resume continues OUT/last.pt)")
    start = read_run(_existing(args.weights, "--weights")) if args.weights else None
    model = args.model or (start["meta"]["model"] if start else "yolov3-nano")
    device = select_device(args.device)
    options = {name: default for name, default in TRAIN_OPTIONS.values()}
    if args.recipe == "short":
        options.update(short_run(model))
    options.update({name: getattr(args, dest) for dest, (name, _) in TRAIN_OPTIONS.items()
                    if getattr(args, dest) is not None})  # what the user typed wins
    _check_imgsz(model, options["img_size"])
    setup(args.seed, args.threads)
    ddp = distributed()
    main_process = ddp is None or ddp.is_main
    exp = make_experiment(
        model, args.data, n_train=_image_count(args.data, "train", args.n_train, "--n-train"),
        n_val=_image_count(args.data, "val", args.n_val, "--n-val"),
        anchors=args.anchors or ("weights" if start and start["meta"]["model"] == model
                                 else "kmeans"),
        seed=args.seed, out_dir=args.out, weights=args.weights, freeze=args.freeze,
        device=device, **options)
    if exp.transfer is not None and main_process:
        before, after = len(start["meta"]["class_names"]), exp.detector.num_classes
        reheaded = f" (re-headed: {before} -> {after} classes)" if before != after else ""
        print(f"started from {args.weights}{reheaded}: {exp.transfer}")
    if exp.frozen and main_process:
        print(f"frozen: {', '.join(args.freeze)} ({exp.frozen:,} parameters)")
    if args.resume:
        exp.trainer.resume()
    history = exp.trainer.fit()
    final = history[-1] if history else {}
    if main_process:
        print(json.dumps({"out": str(args.out), **final}))
    return final


def val_command(args) -> dict:
    weights = _existing(args.weights, "--weights")
    device = select_device(args.device)
    setup(args.seed, args.threads)
    detector, meta = load_detector(weights, device=device)
    n = _image_count(args.data, "val", args.n_val, "--n-val")
    source = load_dataset(args.data, "val", n=n, seed=args.seed)
    data = DetectionDataset(source, detector.img_size, cache=True)
    preds = detector.predict_dataset(data, args.conf, args.iou, args.batch)
    targets = data.source.targets()
    metrics = mean_average_precision(preds, targets)
    print(detection_report(preds, targets, meta["class_names"]))
    summary = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}
    print(json.dumps(summary))
    return metrics


def predict_command(args) -> list[dict]:
    weights = _existing(args.weights, "--weights")
    device = select_device(args.device)
    setup(0, args.threads)
    detector, meta = load_detector(weights, device=device)
    written = predict_to_folder(detector, meta["class_names"], image_sources(args.source, args.n),
                                args.out, args.conf, args.iou)
    for item in written:
        print(f"{item['image']}: {item['count']} detections, labels in {item['labels']}")
    return written


def export_command(args) -> float:
    require("onnx", "onnxruntime")
    weights = _existing(args.weights, "--weights")
    setup(0, args.threads)
    detector, _ = load_detector(weights, device=select_device(args.device))
    out = Path(args.out) if args.out else weights.with_suffix(".onnx")
    export_onnx(detector, out, opset=args.opset, dynamo=args.dynamo, fuse=args.fuse)
    if args.fuse:
        before, after = count_parameters(detector.model), count_parameters(fuse(detector.model))
        print(f"fused: {before:,} -> {after:,} parameters")
    diff = check_onnx(out, detector)  # a fused file against the unfused model: fold and export
    print(f"{out}: ONNX of {detector.name}'s raw outputs; max abs diff to PyTorch "
          f"(ONNX Runtime, 2 images): {diff:.2e}")
    return diff


def doctor_command(args) -> DoctorReport:
    """Print the doctor's report, write OUT/doctor.html and OUT/doctor.png; exit with status 1
    (``SystemExit``, which :func:`main` returns) when a finding is an error."""
    if args.overfit_steps:
        _check_imgsz(args.model, args.imgsz)
    device = select_device(args.device)
    setup(args.seed, args.threads)
    report = diagnose(args.data, args.weights, args.model, args.imgsz, args.overfit_steps,
                      args.seed, device=device)
    print(report)
    html, png = report.save(args.out)
    print(f"\nwrote {html} and {png}")
    if report.has_errors:
        raise SystemExit(1)
    return report


class _NoteHandler(logging.Handler):
    """The library's warnings (logger ``yolo_teach``) as ``yolo-teach: note: ...`` lines."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"yolo-teach: note: {record.getMessage()}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run ``yolo-teach`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    log = logging.getLogger("yolo_teach")
    if not any(isinstance(h, _NoteHandler) for h in log.handlers):
        log.addHandler(_NoteHandler())
    try:
        args = _parser().parse_args(argv)
        args.func(args)
    except SystemExit as done:  # --help, --version
        return done.code if isinstance(done.code, int) else 0
    except UserError as err:
        return _fail(str(err), argv)
    except BrokenPipeError:  # the reader went away (`yolo-teach models | head`): stop quietly
        _silence_stdout()
        return 141  # 128 + SIGPIPE, what a shell tool killed by the closed pipe returns
    except OSError as err:  # a file the user named cannot be opened or written
        if err.filename is None:
            raise  # not about a file: keep the traceback
        return _fail(f"{err.filename}: {err.strerror}", argv)
    finally:
        close_distributed()
    return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that flushing it at exit raises no second BrokenPipeError
    (the recipe of Python's documentation, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor
        pass


def _fail(message: str, argv: list[str]) -> int:
    """Report the error being handled in one line (the traceback first with ``--verbose``)."""
    if "--verbose" in argv:
        traceback.print_exc()
    print(f"yolo-teach: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
