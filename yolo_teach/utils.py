"""Reproducibility helpers: one call fixes seeds and the CPU thread count.

Notebooks start with ``setup()`` so that every number they print is the same on every run of the
same machine (CPU kernels may still round differently on another machine; training results are
checked with assertions, not exact comparisons).
"""

from __future__ import annotations

import math
import os
import random

import numpy as np
import torch


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's and PyTorch's random number generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_threads(threads: int = 2) -> None:
    """Fix the number of CPU threads torch and OpenCV use (results depend on it)."""
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:  # pragma: no cover - opencv is a dependency, but keep utils importable
        pass


def setup(seed: int = 0, threads: int = 2) -> dict:
    """Seed everything, fix the thread count and make torch deterministic; return the settings."""
    seed_everything(seed)
    set_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    # Deterministic mode also fills every new tensor with NaN to expose reads of uninitialised
    # memory; measured here that filling took ~45 % of a CPU training step. Our kernels never
    # read uninitialised memory, so keep determinism and skip the filling.
    torch.utils.deterministic.fill_uninitialized_memory = False
    return {"seed": seed, "threads": threads, "torch": torch.__version__}


def as_numpy(x, dtype=np.float64, shape_tail: tuple[int, ...] | None = None) -> np.ndarray:
    """A torch tensor (detached, on the CPU), NumPy array or nested sequence as a NumPy array.

    With ``shape_tail`` the result is reshaped to ``(rows, *shape_tail)``: ``(4,)`` makes a flat
    ``(4,)`` box one row and an empty ``(0,)`` no row; ``()`` flattens.
    """
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=dtype)
    if shape_tail is None:
        return x
    rows = x.size // math.prod(shape_tail)
    return x.reshape((rows, *shape_tail))

