"""Fine-tuning against training from scratch on the CT-lesion phantoms (seed 000, notebook 17).

The CT-lesion study (seed 000) starts YOLOv5 from weights pretrained on natural images and asks
how well it finds lesions on CT slices without a GPU. Here the start is our CPU nano pretrained
on the shapes scenes at 256 px (``yolo_teach/assets/weights/yolov5-cpu-nano-shapes.pt``, written
by ``scripts/train_checkpoints.py``), the target the DeepLesion-like phantoms
(``yolo_teach.data.ct_lesions``) at 256 px, the input 256 px.

* **Learning curve**: pretrained and scratch at three training-set sizes, the same optimizer
  steps (batch 8) for every run, seeds 0, 1, 2; 200 validation slices (the same for every
  size and start: they depend on the seed only).
* **Table 1 shaped rows**: the baseline, + SE, + SE + Mish, each fine-tuned from the same
  checkpoint at the largest size (the SE tensors are new, everything else is loaded).

One JSON line per run: ``experiment``, ``model``, ``start`` (``pretrained``/``scratch``),
``n_train``, ``seed``, ``steps``, ``params``, ``train_seconds``, ``images_per_second``
(training), ``val_images_per_second``, ``map_50``, ``map`` (50-95), ``P`` and ``R`` (score >=
0.25, IoU 0.5), ``ap50_per_class`` and ``ap_per_class`` (COCO, by class name), the transfer
report's counts (``loaded``, ``new``, ``skipped``). Resumable: runs already in ``--out`` (same
experiment, model, start, n_train, seed, steps) are skipped; two processes may share the file
(``--only``, ``--seeds``) on two cores, one thread each::

    python benchmarks/medical_transfer.py --threads 1              # everything (~90 min)
    python benchmarks/medical_transfer.py --only curve --seeds 1 --sizes 512 128 32
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from yolo_teach import paths
from yolo_teach.experiment import make_experiment, short_run
from yolo_teach.metrics import class_table, mean_average_precision, resampled_ap
from yolo_teach.metrics.report import detection_report
from yolo_teach.models.summary import count_parameters
from yolo_teach.results import append_jsonl, read_jsonl, summarize
from yolo_teach.utils import setup

BASE = "yolov5-cpu-nano"
WEIGHTS = paths.weights() / "yolov5-cpu-nano-shapes.pt"  # scripts/train_checkpoints.py
DATA, DATA_SIZE, IMG_SIZE, N_VAL = "ct_lesions", 256, 256, 200
SIZES = (32, 128, 512)  # training slices
STEPS = 600  # optimizer steps of 8 slices, every run
VARIANTS = (BASE, "yolov5-cpu-nano-se", "yolov5-cpu-nano-se-mish")  # Table 1's rows
CONF = 0.25  # for P and R
EXAMPLES = 8  # validation slices whose detections (score >= CONF) are kept for the mosaics
BOOTSTRAP = 1000  # resamples of the validation slices for the per-class table's intervals
KEY = ("experiment", "model", "start", "n_train", "seed", "steps")


def run(model: str, start: str, n_train: int, seed: int, steps: int, threads: int,
        weights: Path = WEIGHTS) -> dict:
    """Train one run and measure it on the validation slices; returns its JSON record."""
    setup(seed, threads)
    with tempfile.TemporaryDirectory() as tmp:
        exp = make_experiment(model, DATA, img_size=IMG_SIZE, data_size=DATA_SIZE,
                              n_train=n_train, n_val=N_VAL, seed=seed, out_dir=tmp,
                              epochs=10_000, max_steps=steps, val_every=0, progress=False,
                              weights=weights if start == "pretrained" else None,
                              **short_run(model))
        val = exp.trainer.val_data
        exp.trainer.val_data = None  # measured once below, not again at the end of fit()
        last = exp.trainer.fit()[-1]
        started = time.perf_counter()
        preds = exp.trainer.predictions(val)
        val_seconds = time.perf_counter() - started
    targets = [{"boxes": b, "labels": lab} for b, lab in zip(exp.val_set.boxes,
                                                           exp.val_set.labels)]
    coco = mean_average_precision(preds, targets)
    report = detection_report(preds, targets, exp.class_names, CONF)
    labels, full, _ = resampled_ap(preds, targets, n=0)
    names = exp.class_names
    transfer = exp.transfer
    extra = {}
    if start == "pretrained" and n_train == max(SIZES):  # Table 1 and 2 shaped results
        extra["class_table"] = [{k: round(v, 4) if isinstance(v, float) else v
                                 for k, v in row.items()}
                                for row in class_table(preds, targets, names, CONF,
                                                       BOOTSTRAP, seed)]
        extra["examples"] = [{key: _kept(p, key) for key in ("boxes", "scores", "labels")}
                             for p in preds[:EXAMPLES]]
    return {
        "model": model, "start": start, "n_train": n_train, "seed": seed, "steps": steps,
        "params": count_parameters(exp.detector.model), "img_size": IMG_SIZE,
        "data_size": DATA_SIZE, "n_val": N_VAL, "iterations": last["iteration"],
        "warmup_iters": exp.trainer.cfg.warmup_iters,
        "train_seconds": round(last["train_seconds"], 1),
        "images_per_second": round(last["images_per_second"], 1),
        "val_images_per_second": round(len(val) / val_seconds, 1),
        "map_50": round(coco["map_50"], 4), "map": round(coco["map"], 4),
        "P": round(report.precision, 4), "R": round(report.recall, 4),
        "ap50_per_class": {names[k]: round(float(full[j, 0]), 4) for j, k in enumerate(labels)
                           if full[j, 0] > -1},
        "ap_per_class": {names[k]: round(float(full[j].mean()), 4)
                         for j, k in enumerate(labels) if full[j, 0] > -1},
        "loaded": len(transfer.loaded) if transfer else 0,
        "new": len(transfer.new) if transfer else 0,
        "skipped": len(transfer.skipped) if transfer else 0,
        **extra,
    }


def _kept(pred: dict, key: str) -> list:
    """``pred[key]`` of the detections with score >= CONF, as rounded plain lists."""
    keep = pred["scores"] >= CONF
    values = pred[key][keep]
    return values.tolist() if key == "labels" else values.round(2 if key == "scores" else 1
                                                                ).tolist()


def plan(only: str | None, sizes, seeds, steps: int) -> list[dict]:
    """Every run of the benchmark, in the order they are made: the first seed's curve, Table 1,
    then the other seeds' curves."""
    curve = [{"experiment": "curve", "model": BASE, "start": start, "n_train": n, "seed": s,
              "steps": steps} for s in seeds for n in sizes for start in ("pretrained", "scratch")]
    table = [{"experiment": "table1", "model": m, "start": "pretrained", "n_train": max(sizes),
              "seed": seeds[0], "steps": steps} for m in VARIANTS[1:]]
    first = 2 * len(sizes)
    return {"curve": curve, "table1": table, None: curve[:first] + table + curve[first:]}[only]


def finished(path: Path) -> set[tuple]:
    """The keys (:data:`KEY`) of the runs already in ``path``."""
    return {tuple(r.get(k) for k in KEY) for r in read_jsonl(path)} if path.exists() else set()


def markdown(rows: list[dict]) -> str:
    """benchmarks/README.md's tables from the rows: the learning curve, Table 1 and Table 2."""
    curve = [r for r in rows if r["experiment"] == "curve"]
    lines = ["| n_train | start | mAP50 per seed (seed order) | mAP50 mean ± s | mAP50-95 mean | P | R | "
             "train s/run |", "| ---: | --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for g in summarize(sorted(curve, key=lambda r: (r["n_train"], r["start"] != "pretrained",
                                                    r["seed"])),
                       by=("n_train", "start"), metrics=("map_50", "map", "P", "R",
                                                          "train_seconds")):
        seeds = " / ".join(f"{r['map_50']:.3f}" for r in sorted(curve, key=lambda r: r["seed"])
                           if (r["n_train"], r["start"]) == (g["n_train"], g["start"]))
        lines.append(f"| {g['n_train']} | {g['start']} | {seeds} | {g['map_50']:.3f} ± "
                     f"{g['map_50_std']:.3f} | {g['map']:.3f} | {g['P']:.3f} | {g['R']:.3f} | "
                     f"{g['train_seconds']:.0f} |")
    big = max((r["n_train"] for r in curve), default=None)
    table1 = [r for r in rows if r["start"] == "pretrained" and r["n_train"] == big
              and r["seed"] == 0 and r["model"] in VARIANTS]
    table1.sort(key=lambda r: VARIANTS.index(r["model"]))
    lines += ["", "| model | params | P | R | mAP50 | mAP50-95 | train img/s |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['model']} | {r['params']:,} | {r['P']:.3f} | {r['R']:.3f} | "
              f"{r['map_50']:.3f} | {r['map']:.3f} | {r['images_per_second']:.1f} |"
              for r in table1]
    base = next((r for r in table1 if "class_table" in r), None)
    if base is not None:
        lines += ["", "| class | images | instances | P | R | mAP50 [95 % CI] | "
                  "mAP50-95 [95 % CI] |", "| --- | ---: | ---: | ---: | ---: | --- | --- |"]
        table2 = base["class_table"]
        lines += [f"| {c['class']} | {c['images']} | {c['instances']} | {c['P']:.3f} | "
                  f"{c['R']:.3f} | {c['mAP50']:.3f} [{c['mAP50_low']:.3f}, "
                  f"{c['mAP50_high']:.3f}] | {c['mAP50-95']:.3f} [{c['mAP50-95_low']:.3f}, "
                  f"{c['mAP50-95_high']:.3f}] |" for c in table2[-1:] + table2[:-1]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("curve", "table1"), default=None)
    parser.add_argument("--markdown", action="store_true",
                        help="print the README's tables from --out and stop")
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=STEPS, help="optimizer steps (batch 8)")
    parser.add_argument("--weights", type=Path, default=WEIGHTS, help="the pretrained start")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=paths.results() / "medical_transfer.jsonl")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(read_jsonl(args.out)))
        return []
    records = []
    for job in plan(args.only, args.sizes, args.seeds, args.steps):
        if tuple(job[k] for k in KEY) in finished(args.out):  # read again: another process
            continue  # may share the file
        started = time.perf_counter()
        record = {"experiment": job["experiment"],
                  **run(job["model"], job["start"], job["n_train"], job["seed"], job["steps"],
                        args.threads, args.weights)}
        record["wall_seconds"] = round(time.perf_counter() - started, 1)
        records.append(record)
        print(json.dumps(record), flush=True)
        append_jsonl(args.out, record)
    if not records:
        print(f"nothing to do: every run is in {args.out}")
    return records


if __name__ == "__main__":
    main()
