"""Cells of notebook 17 (medical transfer learning, seed 000), written out by ``python
scripts/nb17_source.py``; ``scripts/build_notebooks.py 17`` then adds the header, runs and
cleans it. Kept as a script so that the prose and the code are reviewed as text."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_source import NotebookSource  # noqa: E402

NB = NotebookSource("17_medical_transfer.ipynb")
md, code = NB.md, NB.code


md(r"""
# 17 · Medical transfer learning: lesions on CT slices without a GPU

A clinic that reads CT scans may have no GPU and no budget for one, and it will never have the
millions of labelled images a detector is usually trained on. Siddiqui & Wang (*"Evaluating
Lightweight Object Detection Models for Lesion Detection"*, Northeastern University; seed 000
of this course) ask what the smallest YOLOv5 can do there: they start YOLOv5n and YOLOv5x from
weights pretrained on natural images, fine-tune them on a subset of **DeepLesion** (32,735
lesions on 32,120 CT slices from the NIH clinical center, boxes drawn by radiologists), and try
SE blocks and the Mish activation on the large model (their Table 1), with per-class results of
the nano (their Table 2).

We cannot ship DeepLesion (about 220 GB, and patient data). We rebuild the study on CT
**phantoms**: slices drawn in Hounsfield units with lesions of six DeepLesion classes
(`yolo_teach.data.ct_lesions`), and one real slice that ships with pydicom. The question is the
paper's, asked at a scale a laptop answers in minutes: does a start pretrained on other images
help when there are only a few dozen labelled slices?

**Learning goals.** After this notebook you can

1. turn DeepLesion-style `xyxy` boxes on 512 px slices into YOLO labels with the package's
   readers and writers, and check the arithmetic;
2. window Hounsfield units into grey levels, on a real CT slice and on a phantom;
3. start a model from another model's checkpoint with `transfer_weights`, read what it loaded,
   skipped and left new, freeze a stage, and adapt the first convolution to grey images;
4. read a learning curve (mAP50 against the number of training slices, pretrained against
   scratch, three seeds) and say what it shows at the smallest budget;
5. lay out results like the paper's Tables 1 and 2, with bootstrap intervals that say how far a
   number measured on 200 slices can be trusted;
6. say what phantoms cannot tell a clinician.

Runs in about 25 s on two CPU cores.
""")

code(r"""
%matplotlib inline
%config InlineBackend.figure_formats = ["jpeg"]
import inspect
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from yolo_teach import paths
from yolo_teach.boxes import box_iou
from yolo_teach.data.ct_phantom import WINDOWS, load_example_ct, window, window_rgb
from yolo_teach.data.formats import read_coco, write_yolo
from yolo_teach.data.sources import load_dataset
from yolo_teach.detectors import build_detector
from yolo_teach.experiment import make_experiment, short_run
from yolo_teach.metrics import bootstrap_map
from yolo_teach.models.summary import count_flops, count_parameters
from yolo_teach.models.yolov5 import yolov5n
from yolo_teach.results import read_jsonl, summarize
from yolo_teach.transfer import (
    freeze,
    grayscale_first_conv,
    trainable_table,
    transfer_weights,
    unfreeze,
)
from yolo_teach.utils import setup
from yolo_teach.viz.draw import class_color, draw_boxes, draw_canvas

plt.rcParams["figure.dpi"] = 72
setup(0, 2)  # seeds and two threads: the numbers below are reproducible
WEIGHTS = paths.weights("yolov5-cpu-nano-shapes.pt")
ROWS = read_jsonl(paths.results("medical_transfer.jsonl"))  # benchmarks/medical_transfer.py
VARIANTS = ("yolov5-cpu-nano", "yolov5-cpu-nano-se", "yolov5-cpu-nano-se-mish")
""")

md(r"""
## 1 · The clinical setting, in the paper's numbers

The study fine-tunes YOLOv5n (70 epochs, 5,590 training slices of all lesion types, a T4 GPU
on Colab) and YOLOv5x (a subset of 8,078 slices of the "other" type only), then adds SE blocks
and Mish to YOLOv5x. Its results, as printed in its Table 1 (P, R, mAP50 on its own validation
subsets, which differ between the nano and the large models):
""")

code(r"""
# NBVAL_CHECK_OUTPUT
# Siddiqui & Wang, Table 1 (DeepLesion subsets; the large models see only the "other" class)
PAPER_TABLE1 = {"YOLOv5n": (0.12, 0.22, 0.10), "YOLOv5x baseline": (0.45, 0.34, 0.32),
                "YOLOv5x + SEBlock": (0.46, 0.33, 0.315),
                "YOLOv5x + SEBlock + Mish": (0.57, 0.29, 0.29)}
print(f"{'model (paper, real DeepLesion)':30s} {'P':>5s} {'R':>5s} {'mAP50':>6s}")
for name, (p, r, m) in PAPER_TABLE1.items():
    print(f"{name:30s} {p:5.2f} {r:5.2f} {m:6.3f}")
""")

md(r"""
A mAP50 of 0.10 for the nano is low, and the authors say why they think so: few epochs, and a
training subset where three quarters of the slices are of one class. The large model's SE and
Mish variants trade recall for precision, and neither raises mAP50. Two things the table does not
give are how much these numbers would move with another validation subset, and whether the
pretrained start mattered at all. We measure both below, on phantoms.

## 2 · DeepLesion boxes to YOLO labels at 512 px

DeepLesion gives each lesion as corners `x1, y1, x2, y2` in pixels of a 512 × 512 slice; YOLO
reads one line per box, `class cx cy w h`, each divided by the slice's side. The package's
sample `ct_lesions_coco` holds two phantom slices in COCO's format (`bbox` = `x, y, w, h`):
`read_coco` turns them into `xyxy` pixels, `write_yolo` into YOLO labels.
""")

code(r"""
# NBVAL_CHECK_OUTPUT
sample = read_coco(paths.samples("ct_lesions_coco"))
print("classes:", sample.class_names)
for name, image, boxes, labels in zip(sample.names, sample.images, sample.boxes, sample.labels):
    print(f"{name}: {image.shape[1]}x{image.shape[0]} px, xyxy {boxes.tolist()}, "
          f"class {sample.class_names[labels[0]]}")
with tempfile.TemporaryDirectory() as tmp:
    write_yolo(sample, tmp)
    lines = {p.stem: p.read_text().strip() for p in sorted(Path(tmp, "labels").glob("*.txt"))}
print(lines)
# by hand: x1, y1, x2, y2 = 241, 301, 250, 310 (a bone lesion, class 3)
# cx = (241 + 250) / 2 / 512 = 0.4794921875, cy = (301 + 310) / 2 / 512 = 0.5966796875,
# w = h = 9 / 512 = 0.017578125
k, cx, cy, w, h = (float(v) for v in lines["0000"].split())
assert k == 3 and np.allclose([cx, cy, w, h], [245.5 / 512, 305.5 / 512, 9 / 512, 9 / 512])
""")

md(r"""
A 9-pixel lesion is 1.8 % of the slice's side. That is the hard part of DeepLesion for a YOLO:
the lesions' short sides have a median of about 16 px at 512 px, smaller than most objects of
COCO. Our phantoms copy that distribution; below we train at 256 px, where the median lesion is
8 px, one cell of the finest (stride-8) grid.

## 3 · Hounsfield units and windows

A CT slice does not store grey levels but Hounsfield units (HU): air is -1000, water 0, fat about
-100, soft tissue 40-60, bone several hundred. A radiologist reads it through a *window*, a level
and a width in HU mapped linearly onto black to white; everything below is black, above white.
`window` is DICOM's linear VOI function:
""")

code(r"""
source = inspect.getsource(window).split(chr(34) * 3)  # signature, docstring, body
print(source[0].rstrip().removesuffix("r") + "(the docstring: the equation above)")
print(source[2].strip("\n"))
""")

code(r"""
# NBVAL_CHECK_OUTPUT
real = load_example_ct()  # pydicom's CT_small.dcm: a real 128 x 128 slice, in HU
phantom = load_dataset("ct_lesions", "val", n=1, size=512, seed=0)
phantom_hu = phantom.meta["hu"][0]  # the phantom's HU before windowing, (512, 512) int16
print(f"real slice: {real.shape}, HU {real.min()} .. {real.max()}")
print({name: WINDOWS[name] for name in ("lung", "soft_tissue", "bone")})
# soft-tissue window, level 40, width 400: 40 HU is mid-grey, -160 and below black, 240 white
print(window(np.array([-1000, -160, 40, 240, 1000]), *WINDOWS["soft_tissue"]))
assert window(np.array([40]), 40, 400)[0] in (127, 128)
""")

code(r"""
fig, axes = plt.subplots(2, 3, figsize=(10, 7))
for row, (hu, title) in enumerate(((real, "pydicom CT_small (real)"), (phantom_hu, "phantom"))):
    for ax, name in zip(axes[row], ("lung", "soft_tissue", "bone")):
        draw_canvas(ax, image=window(hu, *WINDOWS[name]))
        ax.set_title(f"{title}\n{name} window {WINDOWS[name]}", fontsize=8)
draw_boxes(axes[1, 1], phantom.boxes[0], phantom.labels[0], class_names=phantom.class_names,
           color="yellow")
fig.tight_layout()
plt.show()
print(f"phantom: HU {phantom_hu.min()} .. {phantom_hu.max()}, lesions "
      f"{[phantom.class_names[k] for k in phantom.labels[0]]}")
""")

md(r"""
The lung window shows the airways and vessels and leaves every soft tissue one grey; the
soft-tissue window separates liver, muscle and fat and burns the lungs black; the bone window
keeps only the skeleton. Our detector sees the phantoms through the soft-tissue window in all
three channels (`window_rgb(hu, ("soft_tissue",))`); `window_rgb(hu, ("lung", "soft_tissue",
"bone"))` would give one window per channel, a common trick to feed three readings to a network
pretrained on RGB.

## 4 · The models: YOLOv5n with SE blocks and Mish

The study adds "SEBlocks" to YOLOv5x without saying where; the package puts one after each C3 of
the backbone (`yolo_teach/models/yolov5.py`, `YOLOv5Config.se`), and `activation=Mish` swaps
every SiLU (`yolov5n(se=True, activation=Mish)`). The registered names are `yolov5n-se-mish`
and, for our CPU, the same two steps on the CPU nano (`yolov5-cpu-nano-se`,
`yolov5-cpu-nano-se-mish`). What the changes cost, counted from the factories on the meta
device (no memory):
""")

code(r"""
# NBVAL_CHECK_OUTPUT
COST = {}
with torch.device("meta"):
    for name, model in (("yolov5n", yolov5n(80)), ("yolov5n + SE", yolov5n(80, se=True)),
                        ("yolov5n-se-mish", build_detector("yolov5n-se-mish", 80).model)):
        COST[name] = (count_parameters(model), count_flops(model, 640) / 1e9)
    for name in ("yolov5-cpu-nano", "yolov5-cpu-nano-se", "yolov5-cpu-nano-se-mish"):
        model = build_detector(name, 6, 256).model
        COST[name] = (count_parameters(model), count_flops(model, 256) / 1e9)
for name, (params, gflops) in COST.items():
    size = 640 if name.startswith("yolov5n") else 256
    print(f"{name:25s} {params:>10,d} params  {gflops:6.3f} GFLOPs at {size} px")
se_cost = COST["yolov5n + SE"][0] - COST["yolov5n"][0]
# four SE blocks, C = 32, 64, 128, 256: 2 C (C/16) + C/16 + C each = 162 + 580 + 2,184 + 8,464
assert se_cost == 11_390 and COST["yolov5n-se-mish"][0] == COST["yolov5n + SE"][0]
""")

md(r"""
Four SE blocks add 11,390 parameters to YOLOv5n's 1.87 M (0.6 %) and almost no FLOPs: they work
on one number per channel. Mish adds no weights at all; it costs time (an exponential, a log and a
tanh per activation), which parameter and FLOP counts do not see.

## 5 · Starting from a checkpoint: `transfer_weights`, `freeze`, a grey first convolution

Our pretrained start is the CPU nano trained on the shapes scenes at the input size we use for
CT, 256 px (`yolo_teach/assets/weights/yolov5-cpu-nano-shapes.pt`, made by
`python scripts/train_checkpoints.py --runs yolov5-cpu-nano:neighbours`, about 15 minutes on
one thread): coloured shapes on cluttered backgrounds, nothing medical. Its own record:
""")

code(r"""
# NBVAL_CHECK_OUTPUT
start = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
best = max(start["history"], key=lambda row: row.get("map_50", -1.0))
print(f"{start['meta']['model']} at {start['meta']['img_size']} px, "
      f"{len(start['meta']['class_names'])} shape classes, made by {start['meta']['made_by']}")
print(f"{start['history'][-1]['iteration']:,d} steps of 8 images; best validation mAP50 on the "
      f"shapes {best['map_50']:.3f} (mAP50-95 {best['map']:.3f}) after {best['iteration']:,d}")
""")

md(r"""
`transfer_weights` copies every tensor whose name *and* shape match. Into the SE variant for six
lesion classes:
""")

code(r"""
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
target = build_detector("yolov5-cpu-nano-se", 6, 256).model
report = transfer_weights(target, WEIGHTS, name="yolov5-cpu-nano-se")
print(str(report).replace(str(WEIGHTS), WEIGHTS.name))
assert not report.unused and len(report.new) == 16  # 4 SE blocks x 2 convs x (weight, bias)
assert len(report.skipped) == 6 and all(k.startswith("head.") for k in report.skipped)
""")

md(r"""
Three groups, each for a reason. *Loaded*: the backbone, the neck and the head's 3 × 3 convs,
which do not depend on the classes. *Skipped*: the head's three output convs (weight and bias),
whose channels are A × (5 + K) = 3 × 12 = 36 for the seven shapes and 3 × 11 = 33 for the six
lesion classes; they keep their fresh initialisation. *New*: the SE blocks, which the source
never had; they start from their initialisation, a gate near 0.5 on every channel, so the
loaded features arrive at about half their trained size until the gates learn.

`freeze` stops the gradients of a stage, the usual move when the new data set is tiny; the
optimizer built afterwards leaves the frozen parameters out:
""")

code(r"""
# NBVAL_CHECK_OUTPUT
frozen = freeze(target, "backbone")
for row in trainable_table(target):
    print(f"{row['stage']:9s} {row['params']:>9,d} params, {row['trainable']:>9,d} trainable")
assert frozen == trainable_table(target)[0]["params"]
_ = unfreeze(target)
""")

md(r"""
A CT slice is one channel; our detector, like ImageNet's, takes three. Repeating the grey slice
three times works, and so does summing the first convolution's kernels over R, G and B into one
kernel: for a grey image `g`, `conv_rgb(g, g, g) = conv_gray(g)` exactly, and the first layer
does a third of the work. `grayscale_first_conv` does it in place:
""")

code(r"""
target.eval()
slice_gray = torch.from_numpy(phantom.images[0][..., :1]).permute(2, 0, 1).float().div(255)
slice_gray = torch.nn.functional.interpolate(slice_gray[None], size=256)  # (1, 1, 256, 256)
with torch.inference_mode():
    rgb_out = target(slice_gray.expand(-1, 3, -1, -1))
    name = grayscale_first_conv(target)
    gray_out = target(slice_gray)
print(f"{name}: {tuple(target.get_submodule(name).weight.shape)} (was (16, 3, 6, 6))")
diff = max(float((a - b).abs().max()) for a, b in zip(rgb_out, gray_out))
print(f"largest difference over the three output maps: {diff:.1e}")
assert diff < 1e-4
""")

md(r"""
## 6 · Fine-tuning against scratch, live

The smallest budget of the benchmark below: 32 training slices at 256 px. Two runs of 24 steps
(batch 8), one from the shapes checkpoint, one from a random initialisation, with the same seed,
data and recipe (`short_run`), measured on 40 validation slices. Twenty-four steps are far too
few to train a detector; what we look at is how each start begins: the training loss after
every epoch of 4 steps.
""")

code(r"""
LIVE = {}
for start in ("pretrained", "scratch"):
    setup(0, 2)
    exp = make_experiment("yolov5-cpu-nano", "ct_lesions", img_size=256, data_size=256,
                          n_train=32, n_val=40, seed=0, epochs=1000, max_steps=24, val_every=0,
                          progress=False, weights=WEIGHTS if start == "pretrained" else None,
                          **short_run("yolov5-cpu-nano"))
    LIVE[start] = exp, exp.trainer.fit()
    last = LIVE[start][1][-1]
    print(f"{start:10s} loss {last['train_loss']:.3f}  mAP50 {last['map_50']:.3f}  "
          f"({last['train_seconds']:.0f} s, {last['images_per_second']:.0f} images/s)")
""")

code(r"""
fig, ax = plt.subplots(figsize=(5, 3))
for start, (exp, history) in LIVE.items():
    ax.plot([row["iteration"] for row in history], [row["train_loss"] for row in history],
            marker="o", label=start)
ax.set(xlabel="optimizer step", ylabel="training loss (mean over the epoch)",
       title="the first 24 steps on 32 CT slices")
ax.legend()
plt.show()
""")

md(r"""
The pretrained start begins with a lower loss and keeps it, and neither finds a lesion yet
(mAP50 0 for both). A lower loss after a few steps is the first, cheap sign that the features
transfer; whether it turns into detection is what the longer runs below measure.
"""),

md(r"""
## 7 · The learning curve: how many slices does pretraining save?

`benchmarks/medical_transfer.py` trains the same pair for **600 steps** of 8 slices at 32, 128
and 512 training slices (the same number of optimizer steps for every run: a larger set is
seen fewer times, not for longer), seeds 0, 1 and 2, and measures each on 200 validation slices
that no run trained on. That is 18 runs of about four minutes on one thread, too long for a
notebook; their rows are in `yolo_teach/assets/results/medical_transfer.jsonl`:
""")

code(r"""
# NBVAL_CHECK_OUTPUT
curve = [r for r in ROWS if r["experiment"] == "curve"]
CURVE = {(s["start"], s["n_train"]): s for s in
         summarize(curve, by=("start", "n_train"), metrics=("map_50", "map", "P", "R"))}
SIZES = sorted({r["n_train"] for r in curve})
print(f"{curve[0]['steps']} steps of 8 at {curve[0]['img_size']} px, {curve[0]['n_val']} "
      f"validation slices; mAP50 mean (min-max over seeds)")
for n in SIZES:
    cells = [f"{start} {CURVE[start, n]['map_50']:.3f} ({CURVE[start, n]['map_50_min']:.3f}-"
             f"{CURVE[start, n]['map_50_max']:.3f}, n={CURVE[start, n]['n']})"
             for start in ("pretrained", "scratch")]
    print(f"{n:4d} slices: " + ";  ".join(cells))
""")

code(r"""
fig, ax = plt.subplots(figsize=(6, 3.8))
for start, color in (("pretrained", "tab:blue"), ("scratch", "tab:orange")):
    mean = np.array([CURVE[start, n]["map_50"] for n in SIZES])
    low = mean - np.array([CURVE[start, n]["map_50_min"] for n in SIZES])
    high = np.array([CURVE[start, n]["map_50_max"] for n in SIZES]) - mean
    ax.errorbar(SIZES, mean, yerr=[low, high], marker="o", capsize=4, color=color,
                label=f"{start} (mean, min-max of 3 seeds)")
    for r in curve:
        if r["start"] == start:
            ax.plot(r["n_train"], r["map_50"], ".", color=color, alpha=0.4)
ax.set_xscale("log")
ax.minorticks_off()
ax.set_xticks(SIZES, [str(n) for n in SIZES])
ax.set_xlabel("training slices (same optimizer steps for all)")
ax.set_ylabel("validation mAP50 (200 slices)")
ax.legend(fontsize=8)
ax.set_title("CT phantoms, yolov5-cpu-nano at 256 px", fontsize=9)
plt.show()
""")

code(r"""
# NBVAL_CHECK_OUTPUT
by_seed = {(r["start"], r["n_train"], r["seed"]): r["map_50"] for r in curve}
GAIN = {}
for n in SIZES:
    seeds = sorted(s for start, m, s in by_seed if start == "scratch" and m == n)
    GAIN[n] = [by_seed["pretrained", n, s] - by_seed["scratch", n, s] for s in seeds]
    print(f"{n:4d} slices: pretrained minus scratch, mAP50 per seed "
          f"{' '.join(f'{g:+.3f}' for g in GAIN[n])}; ahead on {sum(g > 0 for g in GAIN[n])} "
          f"of {len(GAIN[n])} seeds")
small = SIZES[0]
assert len(GAIN[small]) >= 3 and all(g > 0 for g in GAIN[small])  # the verdict below
assert all(CURVE["pretrained", n]["map_50"] > CURVE["scratch", n]["map_50"] for n in SIZES)
assert CURVE["pretrained", small]["map_50"] < 0.05  # ... and how little it is worth there
assert all(CURVE["pretrained", n]["map_50"] > 1.5 * CURVE["scratch", n]["map_50"]
           for n in SIZES[1:])  # "1.5 to 2 times" with more data
""")

md(r"""
**The verdict, measured.** At the smallest budget, 32 slices, the shapes start is ahead of
scratch on every seed, and on average at every size. But look at the scale before you celebrate:
at 32 slices both starts are close to zero (neither finds more than a few lesions), and the gap
is a few thousandths of mAP50, smaller than the spread between seeds: "ahead on 3 of 3" is all
three seeds can say. Pretraining pays where there is data to build on: with 128 and 512 slices
the pretrained runs reach 1.5 to 2 times the mAP50 of scratch within the same 600 steps, a
gap of two or more spreads. The shapes taught the network edges, blobs and the habit of predicting boxes with
confident scores (compare P and R: a scratch run may not score a single box above 0.25 yet),
not what a lesion looks like.

Two cautions a careful reader adds. Three seeds give a direction, not a size: the spread
between seeds is as large as some of the gaps. And "the same 600 steps" is one choice: with a long enough
schedule and enough data, training from scratch catches up (He, Girshick and Dollár,
*Rethinking ImageNet Pre-training*, 2019, on COCO). A head start is worth most to whoever has
little data *and* little compute, a clinic without a GPU for example.

## 8 · Table 1, shaped: baseline, + SE, + SE + Mish

The paper's Table 1 puts the nano beside YOLOv5x and its SE and Mish variants. Our rows are the
CPU nano and its two variants, each fine-tuned from the same shapes checkpoint at the largest
budget (the SE tensors start new, section 5), seed 0; costs from the factories (section 4, the
FLOPs at 256 px). The CPU nano is YOLOv5n's backbone and neck with a head that learns within a
CPU budget (notebook 11); YOLOv5n itself reaches less than a third of its mAP50 after the same
steps on the leaderboard of notebook 19, too little to compare variants on. The
paper's numbers are beside them for their shape only: another data set, other models, other
budgets.
""")

code(r"""
# NBVAL_CHECK_OUTPUT
big = max(SIZES)
table1 = {r["model"]: r for r in ROWS if r["start"] == "pretrained" and r["n_train"] == big
          and r["seed"] == 0}
print(f"{'ours: CT phantoms, ' + str(big) + ' slices, seed 0':40s} {'params':>10s} "
      f"{'GFLOPs':>7s} {'P':>6s} {'R':>6s} {'mAP50':>6s} {'mAP50-95':>8s}")
for model in VARIANTS:
    r = table1[model]
    print(f"{model:40s} {r['params']:>10,d} {COST[model][1]:7.3f} {r['P']:6.3f} {r['R']:6.3f} "
          f"{r['map_50']:6.3f} {r['map']:8.3f}")
print(f"\n{'full-size YOLOv5n family (640 px)':40s} {'params':>10s} {'GFLOPs':>7s}")
for name in ("yolov5n", "yolov5n + SE", "yolov5n-se-mish"):
    print(f"{name:40s} {COST[name][0]:>10,d} {COST[name][1]:7.2f}")
print(f"\n{'the paper (real DeepLesion)':40s} {'P':>6s} {'R':>6s} {'mAP50':>6s}")
for name, (p, r, m) in PAPER_TABLE1.items():
    print(f"{name:40s} {p:6.2f} {r:6.2f} {m:6.3f}")
spread = CURVE["pretrained", big]["map_50_std"]
print(f"\nthe baseline's mAP50 over {CURVE['pretrained', big]['n']} seeds at {big} slices "
      f"(section 7): {CURVE['pretrained', big]['map_50']:.3f} ± {spread:.3f}")
print("training seconds (one thread, two runs sharing the 2 cores): "
      + ", ".join(f"{m} {r['train_seconds']:.0f}" for m, r in table1.items() if m in VARIANTS))
""")

md(r"""
Read the three rows against the last line but one: the baseline alone moves by about that
much between seeds, and each variant here is one run (as each row of the paper is). SE blocks
ahead of the baseline on this seed is a hint worth three more seeds, not a result. What the
rows do show beyond doubt is the cost: SE adds 11,390 parameters (0.3 % of the CPU nano) and
almost no FLOPs, Mish adds nothing to either, and yet the Mish run took longer to train: its
exponential, logarithm and tanh per activation are time that parameter and FLOP counts do not
see. The paper's SE and Mish rows moved P and R by 0.01-0.12 in opposite directions, each from
one run: the same caution applies to them.

## 9 · Table 2, shaped: per class, with bootstrap intervals

The paper's Table 2 lists, per lesion class, the validation images and instances, P, R, mAP50
and mAP50-95 of the nano. A class with 2 validation images (their "bone") has an mAP50 that the
next two images could change completely, and the table does not say so. A **bootstrap** does:
draw 200 slices from the 200 validation slices *with replacement*, measure again, 1,000 times;
the 2.5th and 97.5th percentiles bracket the numbers another validation sample of the same size
would likely give (`yolo_teach/metrics/bootstrap.py`; slices, not lesions, are resampled: the
lesions of one slice are not independent). The benchmark stored the table of the fine-tuned
baseline (largest budget, seed 0):
""")

code(r"""
print(inspect.getsource(bootstrap_map).split(chr(34) * 3)[0] + "...")
""")

code(r"""
# NBVAL_CHECK_OUTPUT
table2 = table1["yolov5-cpu-nano"]["class_table"]
print(f"{'class':12s} {'images':>6s} {'inst.':>5s} {'P':>6s} {'R':>6s} "
      f"{'mAP50 [95 % interval]':>23s} {'mAP50-95 [95 % interval]':>25s}")
for row in table2[-1:] + table2[:-1]:
    print(f"{row['class']:12s} {row['images']:6d} {row['instances']:5d} {row['P']:6.3f} "
          f"{row['R']:6.3f} {row['mAP50']:7.3f} [{row['mAP50_low']:.3f}, {row['mAP50_high']:.3f}]"
          f" {row['mAP50-95']:9.3f} [{row['mAP50-95_low']:.3f}, {row['mAP50-95_high']:.3f}]")
widths = {row["class"]: row["mAP50_high"] - row["mAP50_low"] for row in table2}
print(f"\nwidest interval: {max(widths, key=widths.get)} "
      f"({max(widths.values()):.3f}); the whole set: {widths['all']:.3f}")
ap50 = {row["class"]: row["mAP50"] for row in table2}
top = sorted((k for k in ap50 if k != "all"), key=ap50.get)[-2:]
assert set(top) == {"lung", "soft_tissue"}  # the two classes the model finds
assert max(ap50[k] for k in ("liver", "kidney", "bone")) < 0.05
assert all(widths[k] > widths["all"] for k in ("lung", "soft_tissue"))
""")

md(r"""
Two classes carry most of the score: lung nodules (bright on the black lung) and body-wall
masses. Liver and kidney lesions, drawn a few tens of HU away from the organ around them, and
the bone lesions are almost never found after 600 steps: the paper's pattern of good and bad
classes, in miniature. The intervals say how far to trust each line: those of the two classes
the model finds are several times wider than the whole set's, because each rests on a few
dozen lesions instead of almost three hundred (the classes it never finds get narrow intervals
near zero: finding nothing is consistent). The paper's "bone" row (2 images, 2 instances,
mAP50 0.049) would span most of [0, 1].""")

md(r"""
## 10 · Ground truth against predictions

The paper's Figure 2 shows two mosaics, true boxes on the left, predictions on the right. Ours, for
the first eight validation slices of seed 0 with the detections (score ≥ 0.25) that the benchmark
stored for the fine-tuned baseline: dashed white boxes are the radiologist's (here: the
generator's), coloured ones the model's.
""")

code(r"""
examples = table1["yolov5-cpu-nano"]["examples"]
val = load_dataset("ct_lesions", "val", n=len(examples), size=256, seed=0)
fig, axes = plt.subplots(2, 4, figsize=(11, 6))
for ax, image, boxes, labels, pred in zip(axes.flat, val.images, val.boxes, val.labels, examples):
    draw_canvas(ax, image=image)
    draw_boxes(ax, boxes, labels, class_names=val.class_names, color="white", linestyle="--",
               text=False)
    if pred["labels"]:
        draw_boxes(ax, pred["boxes"], pred["labels"], pred["scores"],
                   class_names=val.class_names, fontsize=6)
    ax.set_title(", ".join(val.class_names[k] for k in labels), fontsize=7)
fig.tight_layout()
plt.show()
hits = found = 0
for boxes, labels, pred in zip(val.boxes, val.labels, examples):
    for box, label in zip(pred["boxes"], pred["labels"]):
        iou = box_iou(torch.tensor([box]), torch.from_numpy(boxes))[0]
        hits += bool(((iou >= 0.5) & torch.from_numpy(labels == label)).any())
        found += 1
sides = np.concatenate([np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) for b in val.boxes])
print(f"{len(sides)} lesions (short side {sides.min():.0f}-{sides.max():.0f} px, median "
      f"{np.median(sides):.0f} px); {found} detections with score >= 0.25, {hits} of them on a "
      f"lesion of their class (IoU >= 0.5)")
assert sum(not p["labels"] for p in examples) >= 5 and 0 < hits < found  # the reading below
""")

md(r"""
The right half of the paper's Figure 2 is empty for eight of its sixteen slices; ours is empty
for most of the eight: at a score of 0.25 the fine-tuned nano keeps only its surest boxes, and
even those are not all on a lesion (counted above). The
dashed boxes show what it has to find: lesions of a few pixels on a 256 px slice (sizes printed
above), often against tissue of almost the same grey. Lower the threshold and it finds more,
with more false alarms; where to set it is a clinical decision (section 11), not a
property of the model.
""")

md(r"""
## 11 · What phantoms cannot tell a clinician

Everything measured here is about the *method*: how a pretrained start, a small data set, SE
blocks and Mish behave when the compute is fixed, and how uncertain a number on 200 slices is.
None of it says how this detector would do on patients:

* **The lesions are drawn by us.** Their shapes, contrasts and places follow a few rules; real
  lesions are defined by pathology, and the hard ones (a small nodule against a vessel, a
  liver metastasis with the contrast of the liver around it) are exactly the ones rules miss.
* **The labels are perfect.** DeepLesion's boxes come from radiologists' bookmarks, drawn on one
  slice, and many lesions on a slice are not marked at all: a "false positive" may be a true
  lesion nobody boxed. Precision on real data is a lower bound of an unknown size.
* **One scanner, one window, one slice.** Real scans differ in dose, kernel, slice thickness
  and contrast phase; DeepLesion's leaders (MULAN, AlignShift in the paper's Table 1) read the
  neighbouring slices too, in 3-D, which a 2-D YOLO cannot.
* **mAP is not a clinical outcome.** A clinic needs the sensitivity at a false-positive rate it
  can afford (DeepLesion's papers report recall at 0.5-8 false positives per image), measured per
  patient on a population like its own, and a reader study before anything changes a diagnosis.

What transfers to a real project: the pipeline (HU → window → boxes in YOLO format), the habit of
a learning curve over several seeds before choosing a model, and intervals beside every number.

## Exercises

1. Window the phantoms with three windows, one per channel (`make_ct_lesions(...,
   windows=("lung", "soft_tissue", "bone"))` through `data_options`), and fine-tune for 600
   steps at 128 slices (section 6's cell with `n_train=128, max_steps=600`, about four
   minutes). Which classes should gain, and do they, against the benchmark's rows?
2. Fine-tune with the backbone frozen (`make_experiment(..., freeze="backbone")`) at 32 slices.
   Is it faster per step, and is its loss after 24 steps lower or higher than the full
   fine-tune's in section 6?
3. Run `python benchmarks/medical_transfer.py --only curve --sizes 32 --seeds 3 4 --out
   /tmp/more.jsonl` (about 20 minutes). Does the verdict at 32 slices hold with five seeds?
4. In section 9, bootstrap with 100 and with 4,000 resamples. What changes, the interval or only
   its noise? Then halve the validation set: how does the width scale?
5. Count the parameters and FLOPs of `yolov5x` with `se=True, activation=Mish` (the paper's
   largest model) at 640 px, and estimate its one-thread CPU time per slice from our nano's
   images per second. Would a clinic without a GPU read a 300-slice scan in a minute?

## Reading the source

* `yolo_teach/transfer.py`: `transfer_weights`, `rehead`, `freeze`, `trainable_table`,
  `grayscale_first_conv`; `yolo_teach/experiment.py` (`weights=`, `freeze=`).
* `yolo_teach/models/yolov5.py`: `YOLOv5Config.se` and `activation`, the registered variants.
* `yolo_teach/data/ct_phantom.py` (HU, windows, the phantom) and `yolo_teach/data/ct_lesions.py`.
* `yolo_teach/metrics/bootstrap.py`: `bootstrap_map`, `class_table`.
* `benchmarks/medical_transfer.py` and `scripts/train_checkpoints.py` (the shapes checkpoint).
""")



if __name__ == "__main__":
    NB.main()
