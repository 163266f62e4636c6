"""Training-step timing: structure, copies, interleaving and the saved-tensor memory."""

import pytest
import torch
from torch import nn

from yolo_teach.layers.activations import MemoryEfficientMish, Mish
from yolo_teach.layers.conv import ConvBNAct, DarknetLeaky
from yolo_teach.models.timing import compare_step_times, saved_tensor_bytes, step_time

KEYS = {"ms_per_step", "ms_per_step_median", "images_per_second", "rounds_ms", "saved_bytes",
        "saved_tensors", "img_size", "batch_size", "steps", "repeats", "threads"}


def tiny(act_layer=DarknetLeaky) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(ConvBNAct(3, 4, 3, stride=2, act_layer=act_layer),
                         ConvBNAct(4, 4, 3, act_layer=act_layer))


class TwoOutputs(nn.Module):
    """A backbone-like model returning a tuple of maps."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 2, 1)
        self.b = nn.Conv2d(2, 2, 3, stride=2, padding=1)

    def forward(self, x):
        y = self.a(x)
        return y, {"deep": self.b(y)}


def test_step_time_reports_positive_numbers():
    result = step_time(tiny(), img_size=16, batch_size=2, steps=2, warmup=1, repeats=2)
    assert set(result) == KEYS
    assert result["ms_per_step"] > 0 and result["images_per_second"] > 0
    assert len(result["rounds_ms"]) == 2 and result["ms_per_step"] == min(result["rounds_ms"])
    assert result["images_per_second"] == pytest.approx(2 * 1000 / result["ms_per_step"])
    assert result["threads"] == torch.get_num_threads()
    assert (result["batch_size"], result["img_size"], result["steps"]) == (2, 16, 2)


def test_step_time_trains_a_copy_not_the_model():
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    step_time(model, img_size=16, batch_size=2, steps=2, warmup=1, repeats=1)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())


def test_step_time_takes_tuples_dicts_and_rectangles():
    result = step_time(TwoOutputs(), img_size=(16, 24), batch_size=1, steps=1, warmup=0,
                       repeats=1)
    assert result["ms_per_step"] > 0 and result["img_size"] == (16, 24)


def test_step_time_steps_the_optimizer():
    calls = []

    class Counting(torch.optim.SGD):
        def step(self, closure=None):
            calls.append(1)
            return super().step(closure)

    step_time(tiny(), img_size=8, batch_size=1, steps=3, warmup=2, repeats=2,
              optimizer=lambda params: Counting(params, lr=0.1))
    assert len(calls) == 2 + 3 * 2  # warm-up steps + timed steps


def test_compare_step_times_interleaves_the_models():
    order = []

    class Logged(nn.Module):
        def __init__(self, name):
            super().__init__()
            self.name = name
            self.conv = nn.Conv2d(3, 1, 1)

        def forward(self, x):
            order.append(self.name)
            return self.conv(x)

    results = compare_step_times({"a": Logged("a"), "b": Logged("b")}, img_size=8, batch_size=1,
                                 steps=1, warmup=0, repeats=3)
    assert list(results) == ["a", "b"]
    assert all(len(r["rounds_ms"]) == 3 for r in results.values())
    # one untimed forward each for the memory, then A, B, A, B, A, B
    assert order == ["a", "b"] + ["a", "b"] * 3


def test_compare_step_times_rejects_zero_steps():
    with pytest.raises(ValueError):
        compare_step_times({"a": tiny()}, steps=0)


def test_saved_bytes_are_deterministic_and_count_activations_only():
    images = torch.rand(2, 3, 16, 16)
    first = saved_tensor_bytes(tiny(), images)
    assert first == saved_tensor_bytes(tiny(), images)
    assert first["saved_bytes"] > 0 and first["saved_tensors"] > 0
    # a linear model, one 1x1 conv: it saves only its input (B, 3, H, W) float32, not its weight
    assert saved_tensor_bytes(nn.Conv2d(3, 5, 1), images)["saved_bytes"] == 2 * 3 * 16 * 16 * 4


def test_mish_saves_more_than_leaky_and_the_efficient_mish_less():
    images = torch.rand(2, 3, 16, 16)
    leaky = saved_tensor_bytes(tiny(DarknetLeaky), images)["saved_bytes"]
    mish = saved_tensor_bytes(tiny(Mish), images)["saved_bytes"]
    efficient = saved_tensor_bytes(tiny(MemoryEfficientMish), images)["saved_bytes"]
    image, fmap, stats = 2 * 3 * 16 * 16 * 4, 2 * 4 * 8 * 8 * 4, 2 * 2 * 4 * 4  # bytes
    # leaky (in place): the image, then per layer the conv output (BN input) and the BN output
    # that leaky overwrites and keeps (the next conv's input too), and BN's mean and 1/std
    assert leaky == image + 2 * 2 * fmap + stats
    # an out-of-place activation adds its output (the next conv's input) to the first layer
    assert efficient == leaky + fmap
    # Mish also keeps tanh(softplus(x)) in both layers
    assert mish == efficient + 2 * fmap
