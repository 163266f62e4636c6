"""Why does the nano YOLOv4 learn more slowly than the nano YOLOv3? Variants at equal steps.

Every run trains with the neighbours rule and the short-run recipe for the same number of steps
(default 600, seed 0) and prints one JSON line: ``model``, ``steps``, ``map_50``, ``map`` and the
last epoch's mean loss terms ``box``, ``obj``, ``cls``. Variants of ``yolov4_nano`` change one
field of its :class:`~yolo_teach.models.yolov4.YOLOv4Config`; they are registered here, from
outside the package, as any user's model would be.

    python benchmarks/v4_nano_variants.py --threads 1 --out yolo_teach/assets/results/v4_nano_variants.jsonl
    python benchmarks/v4_nano_variants.py --runs yolov3-nano v4n-v3layout --steps 1000
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from yolo_teach.detectors import register_anchor_models
from yolo_teach.experiment import make_experiment, short_run
from yolo_teach.losses.recipes import yolov4_rules
from yolo_teach.models.yolov4 import ANCHORS, SCALE_X_Y, YOLOv4, yolov4_nano
from yolo_teach.registry import detector_names
from yolo_teach.utils import setup

# one change of yolov4_nano's config each
VARIANTS = {
    "v4n-v3layout": {"stage_strides": (1, 2, 2, 2, 2)},  # yolov3_nano's downsampling layout
    "v4n-neck3": {"neck_depth": 3},  # three convs per PAN block instead of one
    "v4n-nospp": {"spp_kernel_sizes": ()},  # no SPP pools
    "v4n-darknet": {"cross_stage_partial": False},  # Darknet-53 stages instead of CSP stages
    # both: YOLOv3-nano's backbone and layout with the PAN neck
    "v4n-darknet-nospp": {"cross_stage_partial": False, "spp_kernel_sizes": (),
                          "stage_strides": (1, 2, 2, 2, 2)},
}
RUNS = ("yolov3-nano", "yolov4-nano", "yolov4-nano-mish", "yolov4-tiny-nano", *VARIANTS)


def register_variant(name: str) -> None:
    """Register ``name`` (a key of :data:`VARIANTS`) as a detector, unless it is registered."""
    if name in detector_names():
        return

    def factory(num_classes: int) -> YOLOv4:
        """yolov4_nano with one config field changed (benchmarks/v4_nano_variants.py)."""
        return YOLOv4(replace(yolov4_nano(num_classes).cfg, **VARIANTS[name]))

    factory.__module__ = f"{__name__}.{name}"  # its own owner in the registry
    register_anchor_models([(name, factory, 128)], ANCHORS, yolov4_rules(SCALE_X_Y),
                           default_rule="multi")


def run(name: str, steps: int, seed: int = 0, threads: int = 1) -> dict:
    """Train ``name`` with the neighbours rule for ``steps`` steps; its JSON summary."""
    if name in VARIANTS:
        register_variant(name)
    setup(seed, threads)
    recipe = short_run("yolov4-nano" if name in VARIANTS else name)
    exp = make_experiment(name, "shapes", assign="neighbours", seed=seed, epochs=10_000,
                          max_steps=steps, val_every=0, progress=False, **recipe)
    last = exp.trainer.fit()[-1]
    return {"model": name, "changes": VARIANTS.get(name, {}), "seed": seed, "steps": steps,
            "threads": threads, "map_50": round(last["map_50"], 4), "map": round(last["map"], 4),
            **{k: round(last[f"train_{k}"], 4) for k in ("box", "obj", "cls")}}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="append the lines to this file")
    args = parser.parse_args(argv)
    results = []
    for name in args.runs:
        result = run(name, args.steps, args.seed, args.threads)
        print(json.dumps(result), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(result) + "\n")
        results.append(result)
    return results


if __name__ == "__main__":
    main()
