"""What makes the YOLOX nano learn faster on the shapes data? One change per run, equal steps.

Every run trains ``yolox-cpu-nano`` (YOLOX-Nano's network) or a variant of its
:class:`~yolo_teach.models.yolox.YOLOXConfig` with SimOTA and ``short_run("yolox-cpu-nano")``
for the same number of steps and seed, changing one thing: the network (registered here, from
outside the package, as any user's model would be), the input size, or one training option.
One JSON line per run: ``run``, ``model``, ``img_size``, ``options``, ``seed``, ``steps``,
``params``, ``images_per_second``, ``map_50``, ``map``.

    python benchmarks/yolox_nano_variants.py --threads 1 --steps 600
    python benchmarks/yolox_nano_variants.py --runs base img256 img320 --steps 2000 \
        --out yolo_teach/assets/results/yolox_nano_variants.jsonl
    python benchmarks/yolox_nano_variants.py --runs img256+width0.375 img320+width0.375 \
        --steps 2000 --seeds 0 1 2 --loss-options '{"topk": 20}'

The readings of sessions 6, 12 and 13 are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from yolo_teach.experiment import make_experiment, short_run
from yolo_teach.models.summary import count_parameters
from yolo_teach.models.yolox import YOLOX, YOLOXConfig, yolox_head
from yolo_teach.registry import DetectorSpec, detector_names, register
from yolo_teach.utils import setup

NANO = YOLOXConfig(depth=0.33, width=0.25, depthwise=True)  # yolox_cpu_nano()
NETWORKS = {  # one field of the nano's config
    "plain": {"depthwise": False},  # plain 3x3 convs (2.2 M params)
    "spp3": {"spp_kernel_sizes": (3,)},  # one 3x3 pool: the 4x4 deepest map at 128 px
    "depth0.67": {"depth": 0.67},  # two bottlenecks per CSP layer
    "tiny-widths": {"width": 0.375, "depthwise": False},  # YOLOX-Tiny's widths (5.0 M params)
    "width0.375": {"width": 0.375},  # 1.5 x the nano's widths, depth-wise convs kept
    "width0.5": {"width": 0.5},  # YOLOX-S's widths, depth-wise convs kept
}
# run -> (network, input size, training options)
RUNS = {
    "base": ("yolox-cpu-nano", 128, {}),
    **{name: (f"yolox-cpu-nano:{name}", 128, {}) for name in NETWORKS},
    "lr0.002": ("yolox-cpu-nano", 128, {"lr": 0.002}),
    "lr0.01": ("yolox-cpu-nano", 128, {"lr": 0.01}),
    "img192": ("yolox-cpu-nano", 192, {}),
    "img256": ("yolox-cpu-nano", 256, {}),
    "img320": ("yolox-cpu-nano", 320, {}),
    "img256+final-phase": ("yolox-cpu-nano", 256, {"final_phase": 0.15}),
    "img256+depth0.67": ("yolox-cpu-nano:depth0.67", 256, {}),
    "img256+plain": ("yolox-cpu-nano:plain", 256, {}),
    "img256+tiny-widths": ("yolox-cpu-nano:tiny-widths", 256, {}),
    "img256+width0.375": ("yolox-cpu-nano:width0.375", 256, {}),
    "img256+width0.5": ("yolox-cpu-nano:width0.5", 256, {}),
    "img256+width0.375+lr0.0075": ("yolox-cpu-nano:width0.375", 256, {"lr": 0.0075}),
    "img256+width0.375+lr0.01": ("yolox-cpu-nano:width0.375", 256, {"lr": 0.01}),
    "img256+width0.375+lr0.0035": ("yolox-cpu-nano:width0.375", 256, {"lr": 0.0035}),
    "img320+width0.375": ("yolox-cpu-nano:width0.375", 320, {}),
}


def register_networks() -> None:
    for name, change in NETWORKS.items():
        if f"yolox-cpu-nano:{name}" not in detector_names():
            cfg = replace(NANO, **change)
            register(DetectorSpec(
                name=f"yolox-cpu-nano:{name}", make_head=yolox_head, img_size=128,
                make_model=lambda k, size, c=cfg: YOLOX(replace(c, num_classes=k)),
                rules={"simota": None}, default_rule="simota", description=f"nano, {change}"))


def run(name: str, steps: int, seed: int = 0, threads: int = 1,
        loss_options: dict | None = None) -> dict:
    """Train run ``name`` of :data:`RUNS`; ``loss_options`` override the loss's arguments (e.g.
    ``{"topk": 20}``) and are recorded in the row."""
    model, img_size, options = RUNS[name]
    if loss_options:
        options = {**options, "loss_options": loss_options}
    setup(seed, threads)
    started = time.perf_counter()
    exp = make_experiment(model, "shapes", assign="simota", img_size=img_size, seed=seed,
                          epochs=10_000, max_steps=steps, val_every=0, progress=False,
                          **{**short_run("yolox-cpu-nano"), **options})
    last = exp.trainer.fit()[-1]
    return {"run": name, "model": model, "img_size": img_size, "options": options, "seed": seed,
            "steps": last["iteration"], "params": count_parameters(exp.detector.model),
            "images_per_second": round(last["images_per_second"], 1),
            "map_50": round(last["map_50"], 4), "map": round(last["map"], 4),
            "wall_seconds": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--loss-options", type=json.loads, default=None,
                        help='arguments of the loss to override, as JSON, e.g. \'{"topk": 20}\'')
    parser.add_argument("--out", type=Path, default=None, help="append the lines to this file")
    args = parser.parse_args(argv)
    register_networks()
    results = []
    for name in args.runs:
        for seed in args.seeds:
            result = run(name, args.steps, seed, args.threads, args.loss_options)
            print(json.dumps(result), flush=True)
            if args.out is not None:
                with open(args.out, "a") as f:
                    f.write(json.dumps(result) + "\n")
            results.append(result)
    return results


if __name__ == "__main__":
    main()
