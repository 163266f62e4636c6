"""One training loop for every YOLO in the course: the model, loss and predictor are plugged in.

What a detector's training needs beyond ``loss.backward()``, each from the papers or Darknet:

* **warm-up** ("burn-in" in Darknet cfgs: ``burn_in=1000`` with ``power=4``, as in the face-mask
  study, seed 001): the learning rate rises as ``lr0 (i / n_warmup)^power`` over the first steps;
* **schedules**: Darknet's ``policy=steps`` (×0.1 at 80 % and 90 % of training) or cosine
  annealing (YOLOv4 §3.4, "cosine annealing scheduler");
* **gradient accumulation**: Darknet's ``batch=64, subdivisions=16`` runs mini-batches of 4 and
  updates the weights once every 16 of them; here ``batch_size`` and ``accumulate``;
* **EMA** of the weights (YOLOv7 §4 uses it; Polyak averaging), evaluated instead of the raw ones;
* per-epoch **validation** with our COCO mAP and "keep the weights with the highest mAP"
  (seed 001) in ``best.pt``; the history goes to ``history.csv`` and ``history.json``;
* **checkpoint and resume**: ``last.pt`` after every epoch, written atomically; it holds model,
  optimizer, EMA, RNG state and counters, so a resumed run continues exactly where it stopped;
* **devices** (:mod:`yolo_teach.devices`): CPU, CUDA (mixed precision by default) or MPS, and
  several processes with ``torchrun`` (``DistributedDataParallel``; rank 0 validates and saves).

The per-iteration learning rate is a pure function of the progress (:func:`learning_rate`), so
there is no scheduler state to lose. Data order and augmentation depend only on (seed, epoch).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from yolo_teach.checkpoint import atomic_save, load_checkpoint
from yolo_teach.data.errors import UserError
from yolo_teach.data.loader import (
    DetectionDataset,
    collate_detections,
    epoch_order,
)
from yolo_teach.devices import (
    any_rank,
    as_float32,
    autocast,
    grad_scaler,
    init_distributed,
    select_device,
    use_amp,
    wait_for_all,
)
from yolo_teach.history import (  # noqa: F401  (re-exported)
    Predictor,
    history_columns,
    load_history,
    predict_dataset,
    write_history,
)
from yolo_teach.metrics import mean_average_precision
from yolo_teach.optim import ModelEMA, build_optimizer, learning_rate  # noqa: F401  (re-exported)

Criterion = Callable[[object, torch.Tensor], tuple[torch.Tensor, dict]]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one run (defaults: a short CPU run of a nano model)."""

    epochs: int = 10
    batch_size: int = 16
    accumulate: int = 1  # Darknet "subdivisions": optimizer step every `accumulate` batches
    optimizer: str = "adamw"  # "adamw", or "sgd" (momentum, Nesterov; Darknet and YOLOv5)
    lr: float = 0.002  # AdamW; measured here, it beats SGD in short CPU runs of the nano models
    momentum: float = 0.937
    weight_decay: float = 5e-4
    warmup_iters: int = 50  # Darknet burn_in (1000 in its cfgs; short CPU runs need less)
    warmup_power: float = 4.0  # Darknet's burn-in curve (lr0 * (i/n)^4)
    schedule: str = "cosine"  # "cosine", "steps" or "constant"
    steps: tuple[float, ...] = (0.8, 0.9)  # fractions of training, for "steps"
    step_scale: float = 0.1
    final_lr_ratio: float = 0.05  # cosine ends at lr * final_lr_ratio
    ema: bool = True
    ema_decay: float = 0.999
    ema_warmup: float = 200.0  # EMA decay ramps as decay * (1 - exp(-updates / ema_warmup))
    grad_clip: float = 10.0
    seed: int = 0
    val_every: int = 1  # epochs; 0 = only at the end
    conf_threshold: float = 0.001  # for validation mAP (COCO practice: keep low scores)
    iou_threshold: float = 0.6
    time_limit: float | None = None  # seconds of training; stops early when reached
    max_steps: int | None = None  # optimizer steps; stops (and the schedule ends) there
    channels_last: bool = True  # 15-45 % faster convolutions on CPU, measured here
    num_workers: int = 0  # data-loader processes; results do not depend on it (loader.py)
    amp: bool | None = None  # mixed precision (float16 autocast + GradScaler); None: on for CUDA
    # YOLOX §2.1 / official `no_aug_epochs` (15 of 300): the last fraction of the steps trains
    # without Mosaic and MixUp and, for a loss that has one, with its final-phase terms (YOLOX's
    # L1). It starts with the first epoch that begins inside that fraction (see `final_phase_at`).
    final_phase: float = 0.0
    progress: bool = True


@dataclass
class Trainer:
    """Train ``model`` with ``criterion`` on ``train_data``; validate ``predict`` on ``val_data``.

    Args:
        model: the detector network (raw outputs in train and eval mode).
        criterion: ``(outputs, targets (M, 6)) -> (loss, {name: value})``.
        predict: ``(model, images (B, 3, S, S)) -> [{"boxes", "scores", "labels"}]`` in
            network-input pixels (the trainer maps them back to each original image).
        train_data, val_data: :class:`~yolo_teach.data.loader.DetectionDataset` s (validation
            without augmentation); mAP is computed against ``val_data.source``'s boxes.
        cfg: :class:`TrainConfig`.
        out_dir: where ``last.pt``, ``best.pt`` and the history go (``None``: keep in memory).
        meta: saved with every checkpoint (model name, classes, anchors...) so that a checkpoint
            alone can rebuild its detector.
        device: ``"cpu"`` (default), ``"cuda"``, ``"mps"`` or ``"auto"``
            (:func:`~yolo_teach.devices.select_device`); the model is moved there. Started by
            ``torchrun``, the trainer joins the process group and trains with
            ``DistributedDataParallel``: ``cfg.batch_size`` is the total over all processes.
    """

    model: nn.Module
    criterion: Criterion
    predict: Predictor
    train_data: DetectionDataset
    val_data: DetectionDataset | None
    cfg: TrainConfig = field(default_factory=TrainConfig)
    out_dir: str | Path | None = None
    meta: dict = field(default_factory=dict)
    device: str | torch.device = "cpu"

    def __post_init__(self) -> None:
        self.device = select_device(self.device)
        self.ddp = init_distributed(self.device)  # None unless started by torchrun
        torch.manual_seed(self.cfg.seed)
        self.model = self.model.to(self.device)
        if self.cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.amp = use_amp(self.device, self.cfg.amp)
        self.scaler = grad_scaler(self.device, self.amp)
        # the module that trains: DDP averages gradients over processes (and broadcasts rank 0's
        # initial weights); self.model stays the plain module that is evaluated and saved
        self.train_model = self.model
        if self.ddp is not None:
            if self.cfg.batch_size % self.ddp.world_size:
                raise UserError(f"--batch {self.cfg.batch_size} is not a multiple of the "
                                f"{self.ddp.world_size} processes")
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=ids)
        # a loss with parameters of its own (RefineDetLite's eq. 6) trains them with the model
        loss_params = []
        if isinstance(self.criterion, nn.Module):
            self.criterion.to(self.device)
            loss_params = list(self.criterion.parameters())
        self.optimizer = build_optimizer(self.model, self.cfg, loss_params)
        self.ema = ModelEMA(self.model, self.cfg.ema_decay, self.cfg.ema_warmup) \
            if self.cfg.ema else None
        self.epoch, self.iteration, self.best_fitness = 0, 0, -1.0
        self.in_final_phase = False
        self.history: list[dict] = []
        self.train_seconds = 0.0
        self.out_dir = Path(self.out_dir) if self.out_dir is not None else None

    @property
    def is_main(self) -> bool:
        """Whether this process validates, saves and prints (always, outside ``torchrun``)."""
        return self.ddp is None or self.ddp.is_main

    # ------------------------------------------------------------------ the loop
    def _sampler(self, epoch: int) -> DistributedSampler:
        """This process's shard of epoch ``epoch`` (``torchrun``): a seeded shuffle of all
        images, every ``world_size``-th one from position ``rank``."""
        sampler = DistributedSampler(self.train_data, self.ddp.world_size, self.ddp.rank,
                                     shuffle=True, seed=self.cfg.seed, drop_last=True)
        sampler.set_epoch(epoch)
        return sampler

    def _loader(self, epoch: int) -> DataLoader:
        """Epoch ``epoch``'s batches: a shuffle that depends only on (seed, epoch), whatever the
        number of workers; under ``torchrun`` this process's shard of it."""
        self.train_data.set_epoch(epoch)
        seed = self.cfg.seed * 100_003 + epoch
        common = {"collate_fn": collate_detections, "drop_last": True,
                  "num_workers": self.cfg.num_workers,
                  "pin_memory": self.device.type == "cuda",
                  # the workers' base seed, drawn here rather than from the global RNG
                  "generator": torch.Generator().manual_seed(seed)}
        if self.ddp is not None:
            return DataLoader(self.train_data, self.cfg.batch_size // self.ddp.world_size,
                              sampler=self._sampler(epoch), **common)
        return DataLoader(self.train_data, batch_size=self.cfg.batch_size,
                          sampler=epoch_order(len(self.train_data), seed), **common)

    @property
    def total_iters(self) -> int:
        if self.ddp is None:
            batches = len(self.train_data) // self.cfg.batch_size
        else:
            batches = len(self._sampler(0)) // (self.cfg.batch_size // self.ddp.world_size)
        by_epochs = self.cfg.epochs * max(math.ceil(batches / self.cfg.accumulate), 1)
        return min(by_epochs, self.cfg.max_steps or by_epochs)

    def fit(self, stop_after_epoch: int | None = None) -> list[dict]:
        """Train until ``cfg.epochs`` (or ``stop_after_epoch``, the time limit or ``max_steps``);
        returns the history."""
        cfg, started = self.cfg, time.perf_counter() - self.train_seconds
        out_of_time = cfg.max_steps is not None and self.iteration >= cfg.max_steps
        while self.epoch < cfg.epochs and not out_of_time:
            if stop_after_epoch is not None and self.epoch >= stop_after_epoch:
                break
            if not self.in_final_phase and self.iteration >= self.final_phase_at:
                self._enter_final_phase()
            self.train_model.train()
            sums, batches, images_seen = {}, 0, 0
            epoch_start = time.perf_counter()
            loader = self._loader(self.epoch)
            bar = tqdm(iter(loader), total=len(loader), leave=False,  # one iterator, one
                       desc=f"epoch {self.epoch + 1}/{cfg.epochs}",  # set of workers
                       disable=not (cfg.progress and self.is_main))
            for i, (images, targets) in enumerate(bar):
                images = images.to(self.device, non_blocking=True)  # the same tensor on the CPU
                if cfg.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                with autocast(self.device, self.amp):  # float16 forward on CUDA only
                    outputs = self.train_model(images)
                if self.amp:
                    outputs = as_float32(outputs)  # the loss in full precision
                loss, parts = self.criterion(outputs, targets)
                scaled = loss / cfg.accumulate
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
                if (i + 1) % cfg.accumulate == 0:
                    self._step()
                for name, value in {"loss": loss.detach(), **parts}.items():
                    sums[name] = sums.get(name, 0.0) + float(value)
                batches, images_seen = batches + 1, images_seen + len(images)
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
                self.train_seconds = time.perf_counter() - started
                spent = (cfg.time_limit is not None and self.train_seconds >= cfg.time_limit) or (
                    cfg.max_steps is not None and self.iteration >= cfg.max_steps)
                if self.ddp is not None and cfg.time_limit is not None:
                    spent = any_rank(spent, self.device)  # all processes stop at the same step
                if spent:
                    out_of_time = True  # the budget of seconds or steps is spent
                    break
            if batches % cfg.accumulate:  # gradients left over from an incomplete accumulation
                self._step()
            self.epoch += 1
            row = {"epoch": self.epoch, "iteration": self.iteration,
                   "lr": self.optimizer.param_groups[0]["lr"],
                   "final_phase": self.in_final_phase,
                   "train_seconds": round(self.train_seconds, 2),
                   "images_per_second": images_seen / max(time.perf_counter() - epoch_start, 1e-9),
                   **{f"train_{k}": v / max(batches, 1) for k, v in sums.items()}}
            last = self.epoch >= cfg.epochs or out_of_time or self.epoch == stop_after_epoch
            improved = False
            if self.val_data is not None and self.is_main and (
                    last or (cfg.val_every and self.epoch % cfg.val_every == 0)):
                metrics = self.evaluate()
                row.update({k: metrics[k] for k in ("map", "map_50", "map_75")})
                improved = metrics["map_50"] > self.best_fitness
                if improved:  # seed 001: keep the weights with the highest mAP
                    self.best_fitness = metrics["map_50"]
            self.history.append(row)  # before saving, so that best.pt holds its own epoch
            if improved:
                self._save("best.pt")
            self._save("last.pt")
            self._write_history()
        wait_for_all()  # under torchrun, the others wait while rank 0 validates and saves
        return self.history

    @property
    def final_phase_at(self) -> float:
        """The step from which an epoch starting there trains in the final phase (infinite
        when ``cfg.final_phase`` is 0). Epoch-aligned, so that the augmentation of a batch does
        not depend on the number of loader workers."""
        if not self.cfg.final_phase:
            return math.inf
        return (1.0 - self.cfg.final_phase) * self.total_iters

    def _enter_final_phase(self) -> None:
        """YOLOX's last epochs (§2.1 "Strong data augmentation"; official ``no_aug_epochs``):
        Mosaic and MixUp off, and the criterion's ``final_phase()`` (YOLOX: the L1 loss on)."""
        self.in_final_phase = True
        augment = self.train_data.augment
        if augment is not None:
            self.train_data.augment = replace(augment, mosaic=0.0, mixup=0.0)
        start = getattr(self.criterion, "final_phase", None)
        if callable(start):
            start()

    def _progress(self) -> float:
        """Fraction of training done: by steps, or by time when the run has a time budget.

        NOTE: a time-budgeted schedule depends on the machine's speed, so such a run is
        reproducible only up to timing; runs without ``time_limit`` are exact.
        """
        by_steps = self.iteration / max(self.total_iters, 1)
        if self.cfg.time_limit is None:
            return by_steps
        return max(by_steps, self.train_seconds / self.cfg.time_limit)

    def _step(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.cfg, self.iteration, self.total_iters,
                                        self._progress())
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
        if self.cfg.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skips the step if a gradient overflowed
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        self.iteration += 1

    # ------------------------------------------------------------------ evaluation
    @property
    def eval_model(self) -> nn.Module:
        """The EMA weights when EMA is on (what gets evaluated and kept), else the model."""
        return self.ema.module if self.ema is not None else self.model

    def predictions(self, data: DetectionDataset | None = None) -> list[dict]:
        """Predictions of :attr:`eval_model` on ``data`` in each original image's pixels."""
        return predict_dataset(self.predict, self.eval_model, data or self.val_data,
                               self.cfg.batch_size, self.cfg.channels_last)

    def evaluate(self, data: DetectionDataset | None = None) -> dict:
        """COCO mAP of :attr:`eval_model` on ``data`` (default: the validation set)."""
        data = data if data is not None else self.val_data
        targets = [{"boxes": data.source[i][1], "labels": data.source[i][2]}
                   for i in range(len(data))]
        return mean_average_precision(self.predictions(data), targets)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Everything needed to continue exactly: weights, optimizer, EMA, RNG, counters."""
        return {
            "model": self.model.state_dict(),
            "criterion": self.criterion.state_dict()
            if isinstance(self.criterion, nn.Module) else None,
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "ema_updates": self.ema.updates if self.ema is not None else 0,
            "epoch": self.epoch, "iteration": self.iteration,
            "best_fitness": self.best_fitness, "train_seconds": self.train_seconds,
            "history": self.history, "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device)
            if self.device.type == "cuda" else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "config": asdict(self.cfg), "meta": self.meta,
            "world_size": self.ddp.world_size if self.ddp is not None else 1,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        if isinstance(self.criterion, nn.Module) and state.get("criterion") is not None:
            self.criterion.load_state_dict(state["criterion"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.module.load_state_dict(state["ema"])
            self.ema.updates = state["ema_updates"]
        self.epoch, self.iteration = state["epoch"], state["iteration"]
        self.best_fitness, self.train_seconds = state["best_fitness"], state["train_seconds"]
        self.history = list(state["history"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    def resume(self, path: str | Path | None = None) -> Trainer:
        """Continue from ``path`` (default ``out_dir/last.pt``); returns ``self``."""
        path = Path(path) if path is not None else self.out_dir / "last.pt"
        self.load_state_dict(load_checkpoint(path))
        return self

    def _save(self, name: str) -> None:
        if self.out_dir is not None and self.is_main:
            atomic_save(self.state_dict(), self.out_dir / name)

    def _write_history(self) -> None:
        if self.out_dir is not None and self.history and self.is_main:
            write_history(self.out_dir, self.history)
