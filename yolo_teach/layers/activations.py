r"""Activations of the YOLOv4 era, and a way to measure what an activation costs.

- :class:`Mish` - :math:`x \tanh(\operatorname{softplus}(x))` (Misra 2019), YOLOv4's backbone
  activation (YOLOv4 §3.4, "Bag of Specials (BoS) for backbone: Mish activation"), written as
  its equation and differentiated by autograd.
- :class:`MemoryEfficientMish` - the same function and gradient as a ``torch.autograd.Function``
  that keeps only its input for the backward pass and recomputes the rest.
- :func:`activation_cost` - milliseconds per forward+backward and the bytes an activation keeps
  for its backward pass, to compare ``DarknetLeaky``, ``nn.SiLU``, :class:`Mish` and
  :class:`MemoryEfficientMish`.

YOLOv4 §2.3 puts Mish with Swish among the "continuously differentiable" activations; §4.2
(Tables 2 and 3) measures it on the CSPResNeXt-50 and CSPDarknet-53 classifiers.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn


class Mish(nn.Module):
    r"""Mish, :math:`f(x) = x \tanh(\ln(1 + e^x))` (Misra 2019; YOLOv4 §3.4).

    Smooth and non-monotonic: it behaves like the identity for large positive x, tends to 0 for
    large negative x and dips to about -0.31 near x = -1.19. Written as its equation, so autograd
    derives the gradient and keeps the intermediate ``tanh(softplus(x))`` map alive until the
    backward pass (see :class:`MemoryEfficientMish` for the version that does not).

    Equals ``torch.nn.functional.mish`` in values and gradients. ``F.softplus`` returns x for
    x > 20, the threshold Darknet's ``mish`` uses too.

    Shapes:
        (*) -> (*), any shape.
    """

    darknet_name = "mish"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.tanh(F.softplus(x))


class _MishFunction(torch.autograd.Function):
    r"""Mish with a hand-written backward pass that saves only x.

    .. math::
        \frac{d}{dx}\, x \tanh(\operatorname{sp}(x))
        = \tanh(\operatorname{sp}(x)) + x\,\sigma(x)\,\bigl(1 - \tanh^2(\operatorname{sp}(x))\bigr)

    using :math:`\operatorname{sp}'(x) = \sigma(x)` and :math:`\tanh' = 1 - \tanh^2`.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)  # the only tensor kept for backward
        return x * torch.tanh(F.softplus(x))

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        tanh_sp = torch.tanh(F.softplus(x))  # recomputed instead of stored
        return grad_output * (tanh_sp + x * torch.sigmoid(x) * (1 - tanh_sp * tanh_sp))


class MemoryEfficientMish(nn.Module):
    r"""Mish that trades compute for memory: the backward pass recomputes
    :math:`\tanh(\operatorname{softplus}(x))` from the saved input instead of storing it.

    Same values and gradients as :class:`Mish`; saves one tensor per call instead of two (measure
    it with :func:`activation_cost`). PyTorch's own ``nn.Mish`` makes the same trade in C++.

    Shapes:
        (*) -> (*), any shape.
    """

    darknet_name = "mish"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _MishFunction.apply(x)


def activation_cost(
    act_layer: type[nn.Module],
    shape: tuple[int, ...] = (8, 64, 64, 64),
    steps: int = 20,
    warmup: int = 3,
) -> dict[str, float]:
    """Measure an activation's cost per training step: time of forward+backward and the bytes
    of the tensors it saves for its backward pass.

    The saved tensors are caught with ``torch.autograd.graph.saved_tensors_hooks`` while the
    activation runs forward (this works on CPU, where there is no allocator to query); tensors
    that share storage are counted once. They all stay alive until the backward pass, so their
    sum is the activation's peak extra memory during training. Each step runs the activation on a
    fresh copy of one random input (the copy lets in-place activations run; it costs the same
    for every activation).

    Args:
        act_layer: activation class, e.g. ``DarknetLeaky``, ``nn.SiLU``, :class:`Mish`.
        shape: input shape, (B, C, H, W) of a typical feature map.
        steps: timed steps; the result is their mean.
        warmup: untimed steps before.

    Returns:
        ``{"ms_per_step": float, "peak_bytes": int, "saved_tensors": int}``.
    """
    seed = 0  # pragma: no mutate -- any fixed seed makes the measurement reproducible
    generator = torch.Generator().manual_seed(seed)
    act = act_layer()
    x = torch.randn(shape, generator=generator, requires_grad=True)  # (B, C, H, W)
    grad = torch.randn(shape, generator=generator)

    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    inp = x.clone()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = act(inp)
    out.backward(grad)
    peak_bytes, saved_tensors = sum(storages.values()), len(storages)

    for _ in range(warmup):
        act(x.clone()).backward(grad)
    start = time.perf_counter()
    for _ in range(steps):
        act(x.clone()).backward(grad)
    ms_per_step = (time.perf_counter() - start) * 1000 / steps
    return {"ms_per_step": ms_per_step, "peak_bytes": peak_bytes, "saved_tensors": saved_tensors}
