"""One training run, wired up: detector + data + anchors + trainer, and back from a checkpoint.

The command line, the benchmarks and the notebooks all start runs here, so a run started in a
notebook is the same run as ``yolo-teach train`` with the same arguments::

    exp = make_experiment("yolov3-nano", data="shapes", assign="neighbours", time_limit=120)
    exp.trainer.fit()
    detector, meta = load_detector(exp.trainer.out_dir / "best.pt")

A run may start from another run's weights (``weights=``, "fine-tuning"), of the same model or
of a related one: every tensor whose name and shape match is loaded
(:func:`yolo_teach.transfer.transfer_weights`); when the class count differs, the head's output
layer keeps its fresh initialisation ("re-headed"); ``freeze=`` stops the gradients of some
stages; the optimizer always starts fresh.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from yolo_teach.anchors import autoanchor, kmeans_anchors
from yolo_teach.checkpoint import CheckpointError, atomic_save, load_checkpoint
from yolo_teach.data.augment import Augment
from yolo_teach.data.core import BoxDataset
from yolo_teach.data.loader import DetectionDataset
from yolo_teach.data.sources import load_dataset
from yolo_teach.detectors import Detector, build_detector
from yolo_teach.devices import select_device
from yolo_teach.registry import detector_names, get_spec
from yolo_teach.train import TrainConfig, Trainer
from yolo_teach.transfer import TransferReport, transfer_weights
from yolo_teach.transfer import freeze as freeze_stages

ANCHOR_CHOICES = ("kmeans", "official", "weights", "auto")

# YOLOv5's AutoAnchor (utils/autoanchor.py ``check_anchors``): the anchor-to-box side ratio the
# loss accepts (hyp ``anchor_t``) and the best possible recall below which anchors are re-fitted.
AUTOANCHOR_T = 4.0
AUTOANCHOR_THRESHOLD = 0.98

# Named training augmentations. "full" is YOLOv5's recipe (Mosaic, scale/translate, HSV, flips);
# "light" keeps only the photometric jitter and flips. Measured on the shapes data with a nano
# YOLOv3 (benchmarks/README.md), Mosaic and the affine jitter slow a run of a few epochs down
# (the network cannot fit the harder images yet); they pay off in long runs.
AUGMENT_PRESETS = ("full", "light", "none")


# The recipe for runs of a few CPU minutes, measured on the shapes data with the nano YOLOv3 and
# the neighbours rule (benchmarks/README.md, 1,500 steps): light augmentation, batch 8, AdamW at
# 0.005 and 4x YOLOv5's class gain took mAP50 from 0.29 (batch 8, lr 0.002, YOLOv5's gains) to
# 0.53; each change alone gave 0.37-0.40. An EMA decay of 0.995 instead of 0.999 follows the
# weights closely enough for a run of ~2,500 steps (0.621 vs 0.597 after 2,500 steps; the
# 0.999 average still remembers the high-lr phase). Use it through :func:`short_run`:
# ``make_experiment(model, ..., **short_run(model))``; a model that needs something else says
# so in its registration (``DetectorSpec.short_run``, e.g. YOLOv1's smaller learning rate).
SHORT_RUN = {"augment": "light", "batch_size": 8, "lr": 0.005, "class_gain_scale": 4.0,
             "ema_decay": 0.995}


def short_run(model: str) -> dict:
    """The short-run recipe for ``model``: :data:`SHORT_RUN` with its own overrides."""
    return {**SHORT_RUN, **get_spec(model).short_run}


def augmentation(preset: str | bool | Augment) -> Augment | bool:
    """The training augmentation for ``preset``: a name of :data:`AUGMENT_PRESETS`, a bool
    (``True`` = ``"full"``, ``False`` = ``"none"``) or an :class:`Augment`, returned as is."""
    if isinstance(preset, (bool, Augment)):
        return preset
    if preset == "full":
        return True
    if preset == "light":
        return Augment(mosaic=0.0, translate=0.0, scale=0.0)
    if preset == "none":
        return False
    raise ValueError(f"augment must be one of {AUGMENT_PRESETS}, a bool or an Augment, "
                     f"got {preset!r}")


def letterboxed_wh(dataset: BoxDataset, img_size: int) -> np.ndarray:
    """``(N, 2)`` widths and heights of every box, in pixels of the ``img_size`` network input."""
    sizes = []
    for image, boxes in zip(dataset.images, dataset.boxes):
        r = img_size / max(image.shape[:2])
        sizes.append((boxes[:, 2:] - boxes[:, :2]) * r)
    return np.concatenate(sizes) if sizes else np.zeros((0, 2))


def dataset_anchors(model: str, dataset: BoxDataset, img_size: int, seed: int = 0):
    """k-means anchors (YOLOv2 "Dimension Clusters") for ``model`` on ``dataset``, as many as
    its official ones; ``None`` for a model without anchors."""
    anchors = get_spec(model).anchors
    if anchors is None:
        return None
    return kmeans_anchors(letterboxed_wh(dataset, img_size), anchors.num_anchors, seed=seed)


def check_anchors(model: str, dataset: BoxDataset, img_size: int, seed: int = 0,
                  anchor_t: float = AUTOANCHOR_T,
                  threshold: float = AUTOANCHOR_THRESHOLD) -> tuple[np.ndarray | None, dict | None]:
    """YOLOv5's AutoAnchor for ``model`` on ``dataset``: keep its official anchors (rescaled to
    ``img_size``) when their best possible recall (:func:`~yolo_teach.anchors.ratio_recall`,
    ``anchor_t``) on the training boxes reaches ``threshold``, else re-fit them with k-means
    (:func:`~yolo_teach.anchors.autoanchor`).

    Returns ``(anchors, decision)``: ``anchors`` is ``None`` when the official ones are kept (or
    the model has none), else the ``(A, 2)`` re-fitted pixels; ``decision`` is plain data, saved
    in the run's ``meta``: ``{"anchor_t", "threshold", "recall_before", "recall_after",
    "refit", "anchors": "official" | "kmeans"}`` (``None`` for a model without anchors).
    """
    spec = get_spec(model).anchors
    if spec is None:
        return None, None
    official = torch.cat(spec.pixels(img_size)).double().numpy()  # (A, 2), finest scale first
    result = autoanchor(letterboxed_wh(dataset, img_size), official, anchor_t=anchor_t,
                        threshold=threshold, seed=seed)
    decision = {"anchor_t": anchor_t, "threshold": threshold,
                "recall_before": result["recall_before"], "recall_after": result["recall_after"],
                "refit": result["refit"], "anchors": "kmeans" if result["refit"] else "official"}
    return (result["anchors"] if result["refit"] else None), decision


def options_to_meta(options: dict) -> dict:
    """Loss options as plain data for a checkpoint's ``meta`` (``torch.load(weights_only=True)``
    reads only plain data): numbers and strings as they are; functions and objects of
    ``yolo_teach`` by their import path (objects with the arguments that rebuild them)."""
    return {k: _to_plain(v, k) for k, v in options.items()}


def options_from_meta(plain: dict) -> dict:
    """Inverse of :func:`options_to_meta`."""
    return {k: _from_plain(v) for k, v in plain.items()}


def _to_plain(value, key: str):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_to_plain(v, key) for v in value]
    is_function = isinstance(value, types.FunctionType)
    owner = value if is_function else type(value)
    path = f"{owner.__module__}:{owner.__qualname__}"
    if not path.startswith("yolo_teach.") or "<" in path:
        raise ValueError(f"loss option {key}={value!r} cannot be saved with the weights: use "
                         f"a function or class of yolo_teach")
    if is_function:
        return {"function": path}
    args = ({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
            if dataclasses.is_dataclass(value) else vars(value))
    return {"object": path, "args": {k: _to_plain(v, key) for k, v in args.items()}}


def _from_plain(value):
    if isinstance(value, list):
        return [_from_plain(v) for v in value]
    if not isinstance(value, dict):
        return value
    path = value.get("function") or value["object"]
    module, _, name = path.partition(":")
    if not module.startswith("yolo_teach."):
        raise ValueError(f"refusing to import {path!r} from a checkpoint")
    target = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    if "function" in value:
        return target
    args = {k: _from_plain(v) for k, v in value["args"].items()}
    return target(**{k: tuple(v) if isinstance(v, list) else v for k, v in args.items()})


def read_run(path: str | Path) -> dict:
    """A checkpoint of a run (``last.pt``, ``best.pt`` or :func:`export_weights`' file),
    checked to hold ``model`` weights and the ``meta`` that rebuilds its detector.

    Raises:
        CheckpointError: not a checkpoint, one holding pickled code, or a torch file that is
            not a yolo_teach run (a bare ``state_dict``, another project's checkpoint).
    """
    state = load_checkpoint(path)
    meta = state.get("meta") if isinstance(state, dict) else None
    if not isinstance(meta, dict) or "model" not in meta or not isinstance(state.get("model"),
                                                                            dict):
        raise CheckpointError("not a yolo_teach checkpoint: expected 'model' weights and the "
                              "'meta' of a run (written by yolo-teach train)", path)
    if meta["model"] not in detector_names():
        raise CheckpointError(f"holds the unknown model {meta['model']!r}; expected one of "
                              f"{detector_names()}", path)
    return state


def run_weights(state: dict, use_ema: bool = True) -> dict:
    """The weights of a run's checkpoint: the EMA ones when it kept them and ``use_ema``."""
    return state["ema"] if use_ema and state.get("ema") is not None else state["model"]


def _checkpoint_anchors(meta: dict, img_size: int):
    """A run's anchors (pixels at its ``img_size``) rescaled to ``img_size``; ``None`` without."""
    if meta.get("anchors") is None:
        return None
    scale = img_size / meta["img_size"]
    return [(np.asarray(a, np.float64) * scale).tolist() for a in meta["anchors"]]


@dataclass
class Experiment:
    """What :func:`make_experiment` builds: call ``trainer.fit()`` to train.

    ``skipped_weights`` lists the model's tensors that ``weights=`` did not provide (their
    shapes differ, e.g. the head for another class count, or the source has no such tensor);
    ``transfer`` is the full :class:`~yolo_teach.transfer.TransferReport`; both ``None``
    without ``weights``. ``frozen`` is the number of parameters ``freeze=`` froze.
    ``autoanchor`` is the decision of ``anchors="auto"`` (:func:`check_anchors`: best possible
    recall before and after, ``"official"`` or ``"kmeans"`` anchors), also in the run's ``meta``;
    ``None`` for the other choices and for models without anchors.
    """

    detector: Detector
    trainer: Trainer
    train_set: BoxDataset
    val_set: BoxDataset
    skipped_weights: list[str] | None = None
    autoanchor: dict | None = None
    transfer: TransferReport | None = None
    frozen: int = 0

    @property
    def class_names(self) -> list[str]:
        return self.train_set.class_names


def make_experiment(model: str = "yolov3-nano", data: str | Path = "shapes",
                    assign: str | None = None, img_size: int = 128, n_train: int | None = None,
                    n_val: int | None = None, data_size: int | None = None,
                    data_options: dict | None = None, anchors: str = "kmeans",
                    augment: str | bool | Augment = True, seed: int = 0,
                    out_dir: str | Path | None = None, cfg: TrainConfig | None = None,
                    loss_options: dict | None = None, class_gain_scale: float = 1.0,
                    weights: str | Path | None = None, freeze: str | list[str] | None = None,
                    device: str | torch.device = "cpu", **cfg_overrides) -> Experiment:
    """Build the detector, the datasets and the trainer of one run.

    Args:
        model: a registered name (:func:`yolo_teach.registry.detector_names`), e.g.
            ``"yolov3-nano"``.
        data: ``"shapes"``, ``"face_masks"``, ``"ct_lesions"`` or a ``data.yaml`` path.
        assign: an assignment rule of the model, e.g. ``"single"`` (faithful), ``"multi"`` or
            ``"neighbours"``; ``None`` for the rule of ``weights``' run, else its paper's rule.
        img_size: side of the square network input.
        n_train, n_val: how many images to generate (``None``: 2000 and 200), or the first
            images of a ``data.yaml`` dataset to keep (``None``: all of them).
        data_size: side of generated images (default: the generator's own).
        data_options: keyword arguments of the generator (e.g. ``{"max_objects": 3}``).
        anchors: ``"kmeans"`` (on the training boxes), ``"official"`` (rescaled),
            ``"weights"`` (those of the ``weights`` run, rescaled to ``img_size``) or
            ``"auto"`` (YOLOv5's AutoAnchor, :func:`check_anchors`: the official ones unless
            their best possible recall is below 0.98, then k-means; the decision is
            :attr:`Experiment.autoanchor` and ``meta["autoanchor"]``).
        augment: the training augmentation, an :class:`~yolo_teach.data.augment.Augment` (``True``:
            its defaults, Mosaic included; ``False``: letterbox only) or a preset name
            (:func:`augmentation`).
        seed: seeds the data, the weights' initialisation and the trainer.
        out_dir: where checkpoints and history go.
        cfg, **cfg_overrides: a :class:`~yolo_teach.train.TrainConfig` and fields to replace.
        loss_options: arguments of the loss to override (e.g. ``{"cls_gain": 0.5}`` or
            ``{"box_loss": IoUBoxLoss(generalized_box_iou_loss)}``); saved in the run's ``meta``
            (objects of the package by their import path) so that :func:`load_detector`
            rebuilds the same loss.
        class_gain_scale: multiplies the loss's class gain (the argument its
            ``class_gain_option`` names: ``cls_gain``, YOLOv1's ``lambda_class``) after
            ``loss_options``.
        weights: a run's checkpoint to start from (model weights only, a fresh optimizer), of
            ``model`` or of a related model (e.g. ``yolov5n`` weights for ``yolov5n-se-mish``):
            tensors are matched by name and shape; the others (the head, for another class
            count; layers the source lacks) keep their initialisation and are listed in
            :attr:`Experiment.skipped_weights` and :attr:`Experiment.transfer`.
        freeze: stages of the model (top-level names such as ``"backbone"``, or dotted paths)
            that get no gradients (:func:`yolo_teach.transfer.freeze`); saved in ``meta``.
        device: where to train, ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"auto"``
            (:func:`~yolo_teach.devices.select_device`).
    """
    if anchors not in ANCHOR_CHOICES:
        raise ValueError(f"anchors must be one of {ANCHOR_CHOICES}, got {anchors!r}")
    start = read_run(weights) if weights is not None else None
    if start is not None:
        if assign is None and start["meta"].get("assign") in get_spec(model).rules:
            assign = start["meta"]["assign"]  # the rule of the run it continues
    elif anchors == "weights":
        raise ValueError("anchors='weights' needs weights= (a checkpoint to take them from)")
    cfg = replace(cfg or TrainConfig(), seed=seed, **cfg_overrides)
    train_set = load_dataset(data, "train", n=n_train, size=data_size, seed=seed,
                             options=data_options)
    val_set = load_dataset(data, "val", n=n_val, size=data_size, seed=seed, options=data_options)
    chosen = dataset_anchors(model, train_set, img_size, seed) if anchors == "kmeans" else None
    if anchors == "weights":
        chosen = _checkpoint_anchors(start["meta"], img_size)
        official = get_spec(model).anchors
        chosen = None if official is None else chosen  # a model without anchors
        if chosen is not None and \
                [len(a) for a in chosen] != [len(m) for m in official.masks]:
            raise CheckpointError(f"its anchors ({[len(a) for a in chosen]} per scale) do not "
                                  f"fit {model}: use anchors='kmeans' or 'official'", weights)
    decision = None
    if anchors == "auto":
        chosen, decision = check_anchors(model, train_set, img_size, seed)
    torch.manual_seed(seed)
    loss_options = dict(loss_options or {})
    detector = build_detector(model, train_set.num_classes, img_size, assign=assign,
                              anchors=chosen, **loss_options)
    transfer = None
    if start is not None:
        transfer = transfer_weights(detector.model, weights, name=model)
    frozen = freeze_stages(detector.model, freeze) if freeze else 0
    if class_gain_scale != 1.0:
        name = detector.criterion.class_gain_option
        loss_options[name] = getattr(detector.criterion, name) * class_gain_scale
        setattr(detector.criterion, name, loss_options[name])
    meta = {"model": model, "assign": detector.rule, "img_size": img_size,
            "class_names": list(train_set.class_names),
            "anchors": [a.tolist() for a in detector.anchors] if detector.anchors else None,
            "loss_options": options_to_meta(loss_options)}
    if weights is not None:
        meta["weights"] = str(weights)  # where the run started from
    if freeze:
        meta["freeze"] = [freeze] if isinstance(freeze, str) else list(freeze)
    if decision is not None:
        meta["autoanchor"] = dict(decision)
    trainer = Trainer(
        model=detector.model,
        criterion=detector.criterion,
        predict=detector.predictor(cfg.conf_threshold, cfg.iou_threshold),
        train_data=DetectionDataset(train_set, img_size, augment=augmentation(augment), cache=True,
                                      seed=seed),
        val_data=DetectionDataset(val_set, img_size, cache=True),
        cfg=cfg, out_dir=out_dir, meta=meta, device=device,
    )
    detector.model = trainer.model  # the trainer may have moved it or changed its memory format
    return Experiment(detector, trainer, train_set, val_set,
                      transfer.fresh if transfer else None, decision, transfer, frozen)


def export_weights(checkpoint: str | Path, path: str | Path, use_ema: bool = True,
                   half: bool = True, **extra_meta) -> Path:
    """Write the weights of a trainer checkpoint as a small file that :func:`load_detector` reads.

    Keeps the (EMA) weights, in float16 unless ``half=False``, the run's ``meta`` and its
    ``history``, and drops the optimizer state: a nano model's file shrinks about six times.
    ``extra_meta`` is merged into ``meta`` (e.g. how the file was made). Written atomically.
    """
    state = read_run(checkpoint)
    weights = run_weights(state, use_ema)
    if half:
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    meta = {**state["meta"], **extra_meta}
    return atomic_save({"model": weights, "meta": meta, "history": state.get("history", [])},
                       path)


def load_detector(path: str | Path, use_ema: bool = True,
                  device: str | torch.device = "cpu") -> tuple[Detector, dict]:
    """Rebuild the detector saved in a trainer checkpoint (``best.pt``/``last.pt``) or in a file
    written by :func:`export_weights`, on ``device`` (:func:`~yolo_teach.devices.select_device`).

    Returns ``(detector, meta)``; the EMA weights are loaded when the run kept them. Float16
    weights are loaded into the float32 model. A file that is not such a checkpoint is a
    :class:`~yolo_teach.checkpoint.CheckpointError` (:func:`read_run`).
    """
    state = read_run(path)
    meta = state["meta"]
    detector = build_detector(meta["model"], len(meta["class_names"]), meta["img_size"],
                              assign=meta["assign"], anchors=meta["anchors"],
                              **options_from_meta(meta.get("loss_options", {})))
    detector.model.load_state_dict(run_weights(state, use_ema))
    detector.model.to(select_device(device)).eval()
    return detector, meta
