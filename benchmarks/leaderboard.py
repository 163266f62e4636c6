"""The evolution leaderboard: every nano of the zoo, same shapes data, steps and seeds.

Appends one JSON line per finished run to ``--out`` and skips the runs already there, so an
interrupted leaderboard resumes row by row. Training rows first (they take the time), then the
speed rows (run those on a quiet machine: they time single images), then the table and the
Pareto plot (``--png``). ``yolo_teach.leaderboard`` documents the fields.

    python benchmarks/leaderboard.py                        # everything, ~90 min on 2 cores
    python benchmarks/leaderboard.py --only train --models yolov3-nano --seeds 0
    python benchmarks/leaderboard.py --only table           # redraw from the rows
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from yolo_teach.leaderboard import (
    NANOS,
    append_row,
    leaderboard,
    leaderboard_rule,
    markdown_table,
    plot_leaderboard,
    read_rows,
    row_key,
    speed_row,
    train_row,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "yolo_teach" / "assets" / "results" / "leaderboard.jsonl"
PNG = ROOT / "benchmarks" / "leaderboard.png"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(NANOS), choices=list(NANOS))
    parser.add_argument("--steps", type=int, default=1000, help="optimizer steps of 8 images")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2, help="threads of the training runs")
    parser.add_argument("--only", choices=("train", "speed", "table"), default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--png", type=Path, default=PNG)
    args = parser.parse_args(argv)
    done = {row_key(r) for r in read_rows(args.out)}
    budget = f"{args.steps} steps"
    if args.only in (None, "train"):
        for model in args.models:
            assign = leaderboard_rule(model)
            for seed in args.seeds:
                key = ("train", model, assign, budget, seed, 128)
                if key in done:
                    continue
                started = time.perf_counter()
                row = train_row(model, seed=seed, steps=args.steps, threads=args.threads)
                append_row(args.out, row)
                print(f"{model} seed {seed}: mAP50 {row['map_50']:.3f} "
                      f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    if args.only in (None, "speed"):
        for model in args.models:
            if ("speed", model, 128) in done:
                continue
            row = speed_row(model)
            append_row(args.out, row)
            print(f"{model}: {row['latency_ms_torch']} ms", file=sys.stderr, flush=True)
    table = leaderboard(read_rows(args.out), budget=budget)
    print(markdown_table(table))
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ax = plot_leaderboard(table)
        ax.figure.tight_layout()
        ax.figure.savefig(args.png, dpi=120)
        plt.close(ax.figure)
    return table


if __name__ == "__main__":
    main()
