"""Measure what a training step costs (wall time per step, the memory kept for backward) and what
one inference call costs (latency).

A training step here is what the trainer repeats: forward, a loss, backward and an optimizer
step, on one batch of random images already in memory (no data loading, no target assignment,
so the numbers isolate the network). The loss is the sum of the means of the outputs: its value
is meaningless, but its backward pass runs through every layer exactly as a detection loss's
does.

- :func:`step_time` - milliseconds per step and images per second of one model.
- :func:`compare_step_times` - the same for several models, with the repeats **interleaved**
  (A, B, A, B, ...), so that a slow moment of a shared machine hits every model alike; the
  ratio of two best-of-N times is the number to trust.
- :func:`saved_tensor_bytes` - the bytes of the tensors a forward pass keeps for its backward
  pass (activations, not weights): deterministic, unlike the times.
- :func:`compare_latency` - milliseconds per call of several inference callables (a PyTorch
  network, an ONNX Runtime session...), one call per round, rounds interleaved; median and
  quartiles (``benchmarks/latency.py``).
- :func:`deploy_latency` - one network, one image, three backends side by side: as trained,
  fused, and fused in ONNX Runtime; one record per backend (notebook 15).
- :func:`cpu_name` - the CPU the numbers were measured on.

Timings depend on the machine, the thread count (left as the caller set it, e.g. by
:func:`yolo_teach.utils.setup`) and whatever else runs; report ratios measured side by side.
"""

from __future__ import annotations

import copy
import platform
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from statistics import median, quantiles

import torch
from torch import nn

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


def _sgd(params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """Darknet's optimizer: SGD with momentum and weight decay (yolov4.cfg's values, rounded)."""
    return torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=5e-4)


def _flatten(outputs) -> list[torch.Tensor]:
    """The tensors of a model's output: a tensor, or a list / tuple / dict of them."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, Mapping):
        outputs = list(outputs.values())
    return [t for item in outputs for t in _flatten(item)]


def _loss(outputs) -> torch.Tensor:
    """A scalar that depends on every output element: the sum of the outputs' means."""
    return sum(t.float().mean() for t in _flatten(outputs))


def _images(img_size: int | tuple[int, int], batch_size: int, seed: int) -> torch.Tensor:
    height, width = (img_size, img_size) if isinstance(img_size, int) else img_size
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch_size, 3, height, width, generator=generator)  # (B, 3, H, W)


def saved_tensor_bytes(model: nn.Module, images: torch.Tensor) -> dict[str, int]:
    """Bytes of the tensors one training-mode forward pass saves for its backward pass.

    Caught with ``torch.autograd.graph.saved_tensors_hooks`` (as
    :func:`~yolo_teach.layers.activations.activation_cost` does for one activation); tensors
    that share storage are counted once, and the model's own parameters and buffers, which live
    anyway, are not counted. All of these tensors stay alive until the backward pass, so their
    sum is the activation memory a training step adds on top of the weights. The model runs in
    training mode (batch norm updates its running statistics); pass a copy to keep yours.

    Returns:
        ``{"saved_bytes": int, "saved_tensors": int}``.
    """
    own = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in own:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        outputs = model(images)
    del outputs  # frees the graph and the saved tensors without a backward pass
    return {"saved_bytes": sum(storages.values()), "saved_tensors": len(storages)}


class _Stepper:
    """One model's copy, its optimizer and the step it times."""

    def __init__(self, model: nn.Module, images: torch.Tensor, optimizer: OptimizerFactory):
        self.model = copy.deepcopy(model).train()  # the caller's weights stay as they are
        self.optimizer = optimizer(self.model.parameters())
        self.images = images

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss = _loss(self.model(self.images))
        loss.backward()
        self.optimizer.step()

    def time(self, steps: int) -> float:
        """Mean milliseconds per step over ``steps`` consecutive steps."""
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        return (time.perf_counter() - start) * 1000 / steps


def compare_step_times(
    models: Mapping[str, nn.Module],
    img_size: int | tuple[int, int] = 128,
    batch_size: int = 8,
    steps: int = 5,
    warmup: int = 2,
    repeats: int = 3,
    seed: int = 0,
    optimizer: OptimizerFactory = _sgd,
) -> dict[str, dict]:
    """Time a training step of several models side by side, repeats interleaved.

    Each model is copied (the originals are not trained) and warmed up for ``warmup`` steps;
    then ``repeats`` rounds each time ``steps`` steps of every model in turn. The best round
    (the least disturbed by the rest of the machine) gives ``ms_per_step``; the median is kept
    too. All models see the same random batch of ``batch_size`` images.

    Args:
        models: ``{name: model}``; any module whose forward takes (B, 3, H, W) images and
            returns a tensor or a list / tuple / dict of tensors.
        img_size: input size, an int or (H, W).
        batch_size: images per step B.
        steps: steps per timed round.
        warmup: untimed steps per model before the first round.
        repeats: timed rounds N (best of N).
        seed: seed of the random images.
        optimizer: ``params -> Optimizer``; default SGD with momentum 0.9, Darknet's.

    Returns:
        ``{name: result}``, each result a dict with ``ms_per_step`` (best round),
        ``ms_per_step_median``, ``images_per_second`` (from the best round), ``rounds_ms``
        (every round), ``saved_bytes`` and ``saved_tensors`` (see :func:`saved_tensor_bytes`),
        and the settings ``img_size``, ``batch_size``, ``steps``, ``repeats``, ``threads``.
    """
    if steps < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"need steps >= 1, repeats >= 1, warmup >= 0; got {steps}, {repeats}, "
                         f"{warmup}")
    images = _images(img_size, batch_size, seed)  # (B, 3, H, W)
    steppers = {name: _Stepper(model, images, optimizer) for name, model in models.items()}
    memory = {name: saved_tensor_bytes(s.model, images) for name, s in steppers.items()}
    for stepper in steppers.values():
        for _ in range(warmup):
            stepper.step()
    rounds: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(repeats):
        for name, stepper in steppers.items():  # interleaved: A, B, ..., A, B, ...
            rounds[name].append(stepper.time(steps))
    results = {}
    for name, times in rounds.items():
        best = min(times)
        results[name] = {
            "ms_per_step": best,
            "ms_per_step_median": median(times),
            "images_per_second": batch_size * 1000 / best,
            "rounds_ms": times,
            **memory[name],
            "img_size": img_size,
            "batch_size": batch_size,
            "steps": steps,
            "repeats": repeats,
            "threads": torch.get_num_threads(),
        }
    return results


def step_time(
    model: nn.Module,
    img_size: int | tuple[int, int] = 128,
    batch_size: int = 8,
    steps: int = 5,
    warmup: int = 2,
    repeats: int = 3,
    seed: int = 0,
    optimizer: OptimizerFactory = _sgd,
) -> dict:
    """Time one model's training step (forward, backward, optimizer step) on random images.

    The model is copied, not trained. Same arguments and result as one entry of
    :func:`compare_step_times`; to compare models, use that instead, which interleaves them.
    """
    return compare_step_times(
        {"model": model}, img_size, batch_size, steps, warmup, repeats, seed, optimizer
    )["model"]


def compare_latency(
    runs: Mapping[str, Callable[[], object]], warmup: int = 3, repeats: int = 20
) -> dict[str, dict]:
    """Latency of several zero-argument callables (e.g. one network on one batch), side by side.

    Each callable is called ``warmup`` times untimed, then ``repeats`` rounds call each once in
    turn (A, B, ..., A, B, ...), so that a slow moment of a shared machine hits all of them.
    A single call's time is skewed by the rest of the machine, only upwards: report the median
    and the quartiles, not the mean. The callables run as given: wrap a PyTorch network in
    ``torch.inference_mode()`` yourself.

    Args:
        runs: ``{name: callable}``; each call is one measured inference.
        warmup: untimed calls per callable before the first round (caches, allocations,
            ONNX Runtime's first-run work).
        repeats: timed rounds N.

    Returns:
        ``{name: result}``, each result a dict with ``median_ms``, ``q1_ms`` and ``q3_ms`` (the
        quartiles; their difference is the IQR), ``min_ms``, ``max_ms``, ``times_ms`` (every
        round, in order), ``repeats`` and ``warmup``.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0; got {repeats}, {warmup}")
    for run in runs.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():  # interleaved: A, B, ..., A, B, ...
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) * 1000)
    results = {}
    for name, ms in times.items():
        q1, _, q3 = quantiles(ms, n=4, method="inclusive") if len(ms) > 1 else ms * 3
        results[name] = {"median_ms": median(ms), "q1_ms": q1, "q3_ms": q3, "min_ms": min(ms),
                         "max_ms": max(ms), "times_ms": ms, "repeats": repeats, "warmup": warmup}
    return results


def cpu_name() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@torch.inference_mode()
def _infer(model: nn.Module, images: torch.Tensor):
    """One forward pass without autograd's bookkeeping, as a deployed model runs."""
    return model(images)


DEPLOY_BACKENDS = ("torch", "torch-fused", "onnxruntime")


def deploy_latency(network: nn.Module, img_size: int, threads: int = 1, warmup: int = 3,
                   repeats: int = 10, name: str = "model", seed: int = 0) -> list[dict]:
    """Latency of one image (batch 1) through ``network`` on three CPU backends, side by side.

    - ``torch``: the network as given, in eval mode (every BatchNorm a separate layer);
    - ``torch-fused``: :func:`yolo_teach.deploy.fuse`'s copy (Conv+BN folded, RepConv
      collapsed);
    - ``onnxruntime``: the fused copy exported (:func:`yolo_teach.export.export_onnx`, to a
      temporary folder) and run by an ONNX Runtime CPU session.

    Every backend gets ``threads`` threads (``torch.set_num_threads`` for the two PyTorch ones,
    ``intra_op_num_threads`` for ONNX Runtime); the caller's torch thread count is restored
    afterwards. The calls are timed by :func:`compare_latency` (warm-up, then rounds
    interleaved). ``network`` is left as it was (its training flag included). Needs ``onnx``
    and ``onnxruntime`` (``pip install "yolo-teach[export]"``).

    Args:
        network: a module taking ``(1, 3, S, S)`` images.
        img_size: side S of the random input image.
        threads: CPU threads of every backend.
        warmup: untimed calls per backend first.
        repeats: timed rounds.
        name: the ``model`` field of the records.
        seed: seed of the random image.

    Returns:
        one record per backend, in the order of :data:`DEPLOY_BACKENDS`, with the fields of
        ``benchmarks/latency.py``'s lines: ``model``, ``backend``, ``threads``, ``img_size``,
        ``batch`` (1), ``params`` (of the network that backend runs), ``median_ms``, ``q1_ms``,
        ``q3_ms``, ``min_ms``, ``max_ms``, ``times_ms``, ``repeats``, ``warmup``.
    """
    from yolo_teach.deploy import fuse  # deploy and export sit above the models
    from yolo_teach.export import export_onnx, require
    from yolo_teach.models.summary import count_parameters

    _, ort = require("onnx", "onnxruntime")
    was_training = network.training
    network.eval()
    threads_before = torch.get_num_threads()
    try:
        fused = fuse(network)
        with tempfile.TemporaryDirectory() as folder:
            path = export_onnx(fused, Path(folder) / "model.onnx", img_size=img_size)
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            session = ort.InferenceSession(str(path), options,
                                           providers=["CPUExecutionProvider"])
        images = _images(img_size, 1, seed)  # (1, 3, S, S)
        runs = {"torch": partial(_infer, network, images),
                "torch-fused": partial(_infer, fused, images),
                "onnxruntime": partial(session.run, None, {"images": images.numpy()})}
        params = {"torch": count_parameters(network), "torch-fused": count_parameters(fused),
                  "onnxruntime": count_parameters(fused)}
        torch.set_num_threads(threads)
        timed = compare_latency(runs, warmup=warmup, repeats=repeats)
    finally:
        torch.set_num_threads(threads_before)
        network.train(was_training)
    return [{"model": name, "backend": backend, "threads": threads, "img_size": img_size,
             "batch": 1, "params": params[backend],
             **{key: result[key] for key in ("median_ms", "q1_ms", "q3_ms", "min_ms", "max_ms",
                                             "times_ms", "repeats", "warmup")}}
            for backend, result in timed.items()]
