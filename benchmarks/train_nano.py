"""Train each nano model on the default shapes data for fixed budgets of seconds or of steps.

Prints one JSON line per run: ``model``, ``assign``, ``seed``, ``params``, ``budget``,
``train_seconds``, ``iterations`` (optimizer steps), ``images_per_second``, ``map_50``, ``map``.
Only training counts towards the budget; validation (200 generated images the model never
trained on) runs after it.

    python benchmarks/train_nano.py                                  # everything (~60 min)
    python benchmarks/train_nano.py --models yolov3-nano --assign neighbours --budgets 120
    python benchmarks/train_nano.py --models yolov3-nano yolov4-nano --assign neighbours \
        --steps 2000 --seeds 0 1 2

Machines differ (one of ours trains the nano YOLOv3 at 125 images/s, another at 195): a budget
of seconds hides that, a budget of steps does not. Compare models at equal steps; the seconds
and images per second say what those steps cost on this machine.
"""

from __future__ import annotations

import argparse
import json

from yolo_teach.leaderboard import train_row

RUNS = {  # model -> assignment rules worth comparing
    "yolov1-nano": ("single",),
    "yolov2-nano": ("single", "neighbours"),
    "yolov3-nano": ("single", "multi", "neighbours"),
    "yolov4-nano": ("multi", "neighbours"),
    "yolov4-nano-mish": ("multi", "neighbours"),
    "yolov4-tiny-nano": ("single", "neighbours"),
    "yolov5n": ("neighbours",),  # the official n widths, at 128 px
    "yolov5-cpu-nano": ("neighbours",),  # no SPPF pooling at 4 x 4, YOLOv3's head
    "yolox-cpu-nano": ("simota",),  # YOLOX-Nano's network, anchor-free
    "yolox-cpu-nano-wide": ("simota",),  # the same at YOLOX-Tiny's widths; meant for --img-size 320
    "yolox-improved-cpu-nano": ("simota",),  # seed 004: CBAM, non-local fusion, CIoU
    "yolov7-tiny-nano": ("neighbours", "ota"),  # yolov7-tiny at half width, one 3x3 SPP window
    "yolov7-tiny-nano-aux": ("coarse-to-fine", "lead-guided", "independent"),  # YOLOv7 Table 6
    "refinedet-lite-nano": ("basic", "advanced"),  # RefineDetLite §5.1 (Table 3: ablate_refinedet)
}


def run(model: str, assign: str, budget: float | None = None, seed: int = 0, threads: int = 2,
        recipe: str = "short", steps: int | None = None, img_size: int = 128, **options):
    """Train one model for ``budget`` seconds or ``steps`` optimizer steps and return its
    JSON-able summary (:func:`yolo_teach.leaderboard.train_row`'s, without ``kind`` and
    ``threads``)."""
    row = train_row(model, assign, budget, seed, threads, recipe, steps, img_size, **options)
    return {k: v for k, v in row.items() if k not in ("kind", "threads")}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--assign", nargs="+", default=None,
                        help="only these rules (default: the ones listed for each model)")
    parser.add_argument("--budgets", nargs="+", type=float, default=[60, 120, 300],
                        help="seconds of training per run")
    parser.add_argument("--steps", nargs="+", type=int, default=None,
                        help="optimizer steps per run, instead of --budgets")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--img-size", type=int, default=128,
                        help="network input side; the shapes scenes are 128 px, so a larger "
                             "input upsamples them (more feature-map cells per object)")
    parser.add_argument("--loss-options", type=json.loads, default=None,
                        help='arguments of the loss to override, as JSON, e.g. \'{"topk": 20}\'')
    parser.add_argument("--options", type=json.loads, default=None,
                        help="make_experiment arguments to override, as JSON, e.g. "
                             "'{\"lr\": 0.01}' (recorded in each row)")
    parser.add_argument("--recipe", default="short", choices=("short", "default"),
                        help="short: yolo_teach.experiment.short_run(model) (light augmentation, "
                             "batch 8, lr 0.005 (YOLOv1: 0.0005), 4x class gain, EMA 0.995); "
                             "default: make_experiment's defaults")
    args = parser.parse_args(argv)
    results = []
    for model in args.models:
        for assign in RUNS[model]:
            if args.assign and assign not in args.assign:
                continue
            budgets = [{"steps": n} for n in args.steps] if args.steps else [
                {"budget": b} for b in args.budgets]
            for budget in budgets:
                for seed in args.seeds:
                    extra = {"loss_options": args.loss_options} if args.loss_options else {}
                    extra.update(args.options or {})
                    result = run(model, assign, seed=seed, threads=args.threads,
                                 recipe=args.recipe, img_size=args.img_size, **budget, **extra)
                    result.update(extra)
                    print(json.dumps(result), flush=True)
                    results.append(result)
    return results


if __name__ == "__main__":
    main()
