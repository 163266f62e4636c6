"""Where a run computes: the device, mixed precision on CUDA, and several GPUs with ``torchrun``.

Three small pieces, each PyTorch's own mechanism with nothing added:

* :func:`select_device`: ``"auto"`` takes CUDA when present, then Apple's MPS, else the CPU;
  asking for an accelerator that is absent is a clear :class:`DeviceError`.
* mixed precision (:func:`use_amp`, :func:`autocast`, :func:`grad_scaler`): ``torch.autocast``
  runs the forward pass in float16 and ``GradScaler`` scales the loss so that small float16
  gradients do not underflow. CUDA only; on the CPU both are switched off, so a CPU run computes
  exactly what it computed before this module existed.
* data parallelism (:func:`distributed`, :func:`init_distributed`): ``torchrun --nproc_per_node
  N`` starts N processes and sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; each process
  joins the process group (NCCL on CUDA, Gloo on the CPU), trains on its shard of every epoch
  (``DistributedSampler``) and ``DistributedDataParallel`` averages the gradients. Only rank 0
  validates, writes checkpoints and prints.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from yolo_teach.data.errors import UserError

DEVICE_NAMES = ("auto", "cpu", "cuda", "mps")


class DeviceError(UserError, ValueError):
    """A device that is not known, or not present on this machine."""


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def select_device(name: str | torch.device | None = "auto") -> torch.device:
    """The ``torch.device`` for ``name``: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or
    ``"mps"`` (or a ``torch.device``, checked the same way).

    ``"auto"`` (and ``None``) picks CUDA when present, then MPS, else the CPU. In a ``torchrun``
    process a bare ``"cuda"`` means ``cuda:LOCAL_RANK``, the GPU of that process.

    Raises:
        DeviceError: an unknown name, or CUDA/MPS requested on a machine without it.
    """
    text = "auto" if name is None else str(name)
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    kind, _, index = text.partition(":")
    if kind not in DEVICE_NAMES or (index and (kind != "cuda" or not index.isdigit())):
        raise DeviceError(f"--device {text!r}: expected auto, cpu, cuda, cuda:N or mps")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {text}: CUDA is not available on this machine "
                              f"(torch {torch.__version__}); use --device cpu or auto")
        if not index:
            index = os.environ.get("LOCAL_RANK", "0")
        if int(index) >= torch.cuda.device_count():
            raise DeviceError(f"--device cuda:{index}: this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", int(index))
    if kind == "mps" and not _mps_available():
        raise DeviceError("--device mps: Apple's MPS is not available on this machine; "
                          "use --device cpu or auto")
    return torch.device(kind)


# ---------------------------------------------------------------------------- mixed precision
def use_amp(device: torch.device, amp: bool | None = None) -> bool:
    """Whether to train in mixed precision: ``amp`` if given, else on for CUDA.

    Raises:
        DeviceError: ``amp=True`` on a device other than CUDA.
    """
    if amp is None:
        return device.type == "cuda"
    if amp and device.type != "cuda":
        raise DeviceError(f"--amp: mixed precision needs CUDA; this run is on {device.type}")
    return amp


def autocast(device: torch.device, enabled: bool):
    """``torch.autocast`` to float16 on ``device`` when ``enabled``, else a no-op context."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.float16)


def grad_scaler(device: torch.device, enabled: bool) -> torch.amp.GradScaler | None:
    """A ``GradScaler`` for float16 training on ``device``, or ``None`` without mixed precision."""
    return torch.amp.GradScaler(device.type) if enabled else None


def as_float32(outputs):
    """A model's outputs (a tensor, or a list/tuple/NamedTuple of them) in float32: the loss runs outside
    ``autocast`` in full precision."""
    if torch.is_tensor(outputs):
        return outputs.float()
    if hasattr(outputs, "_fields"):  # a NamedTuple (RefineDet's RefineOutput) keeps its fields
        return type(outputs)(*(as_float32(o) for o in outputs))
    return type(outputs)(as_float32(o) for o in outputs)


# ---------------------------------------------------------------------------- several processes
@dataclass(frozen=True)
class Distributed:
    """This process's place in a ``torchrun`` launch."""

    rank: int
    local_rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that validates, writes checkpoints and prints."""
        return self.rank == 0


def distributed() -> Distributed | None:
    """The ``torchrun`` environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``), or ``None`` for
    an ordinary single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return None
    return Distributed(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")),
                       world_size)


def init_distributed(device: torch.device) -> Distributed | None:
    """Join the process group of a ``torchrun`` launch (once; NCCL for CUDA, Gloo otherwise);
    ``None`` outside ``torchrun``."""
    ddp = distributed()
    if ddp is not None and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return ddp


def close_distributed() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def any_rank(flag: bool, device: torch.device) -> bool:
    """``True`` on every rank when ``flag`` is true on any rank (an all-reduce of one number),
    so that all processes stop at the same step; ``flag`` itself outside ``torchrun``."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def wait_for_all() -> None:
    """A barrier: every process of a ``torchrun`` launch waits here for the others."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
