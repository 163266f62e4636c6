"""What changes the weights, apart from the gradient: the learning-rate schedule with warm-up,
the optimizer (no weight decay on biases and norms) and the EMA of the weights.

Used by :class:`yolo_teach.train.Trainer` (and importable from :mod:`yolo_teach.train`);
``cfg`` is its :class:`~yolo_teach.train.TrainConfig`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from yolo_teach.train import TrainConfig


def learning_rate(cfg: TrainConfig, iteration: int, total_iters: int,
                  progress: float | None = None) -> float:
    """Learning rate at optimizer step ``iteration`` of ``total_iters``: warm-up, then schedule.

    ``progress`` (fraction of training done) defaults to ``iteration / total_iters``; a run with
    a time budget passes the fraction of its time spent instead, so its schedule ends on time.
    """
    if iteration < cfg.warmup_iters:
        return cfg.lr * ((iteration + 1) / cfg.warmup_iters) ** cfg.warmup_power
    if progress is None:
        progress = iteration / max(total_iters, 1)
    if cfg.schedule == "cosine":
        ratio = cfg.final_lr_ratio
        return cfg.lr * (ratio + (1 - ratio) * (1 + math.cos(math.pi * progress)) / 2)
    if cfg.schedule == "steps":
        return cfg.lr * cfg.step_scale ** sum(progress >= s for s in cfg.steps)
    if cfg.schedule == "constant":
        return cfg.lr
    raise ValueError(f"schedule must be 'cosine', 'steps' or 'constant', got {cfg.schedule!r}")


class ModelEMA:
    """Exponential moving average of a model's weights (and buffers).

    .. math:: \\theta_{EMA} \\leftarrow d\\,\\theta_{EMA} + (1 - d)\\,\\theta,
        \\qquad d = d_0 (1 - e^{-u / τ})

    where ``u`` counts updates: the ramp lets the average follow quickly at the start.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: float = 200.0):
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.warmup, self.updates = decay, warmup, 0
        self._pairs: tuple | None = None  # (model, its tensors, ours), found on the first update

    def _tensors(self, model: nn.Module) -> tuple[list, list, list, list]:
        """The floating-point tensors (ours, the model's) and the integer ones, listed once per
        model: walking a deep nano's modules costs ~10 % of a training step on a CPU. A model
        whose modules are replaced after the first update must use a new ``ModelEMA``."""
        if self._pairs is None or self._pairs[0] is not model:
            mine = [*self.module.parameters(), *self.module.buffers()]
            theirs = [*model.parameters(), *model.buffers()]
            if len(mine) != len(theirs):
                raise ValueError(f"the EMA holds {len(mine)} tensors, the model {len(theirs)}")
            floats = [i for i, t in enumerate(mine) if t.dtype.is_floating_point]
            ints = [i for i, t in enumerate(mine) if not t.dtype.is_floating_point]
            self._pairs = (model, [mine[i] for i in floats], [theirs[i] for i in floats],
                           [mine[i] for i in ints], [theirs[i] for i in ints])
        return self._pairs[1:]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.warmup))
        ema, new, ema_ints, new_ints = self._tensors(model)
        for mine, theirs in zip(ema_ints, new_ints):  # integer buffers (BN's batch count): copied
            mine.copy_(theirs)
        torch._foreach_mul_(ema, d)  # one fused pass over all tensors: ~4x faster than a loop
        torch._foreach_add_(ema, new, alpha=1 - d)


def build_optimizer(model: nn.Module, cfg: TrainConfig,
                    extra: Iterable[nn.Parameter] = ()) -> torch.optim.Optimizer:
    """SGD (Nesterov momentum) or AdamW; no weight decay on biases and normalisation weights.
    ``extra``: parameters outside the network that train with it, without weight decay (a
    loss's own, e.g. RefineDetLite's uncertainty weights, eq. 6)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    no_decay += [p for p in extra if p.requires_grad]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    # fused: one kernel for all parameters, 2-3x faster per step on CPU than the default loop
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                               fused=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999), fused=True)
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {cfg.optimizer!r}")
