import contextlib
import json
import os
import subprocess
import sys

import pytest
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from yolo_teach import devices
from yolo_teach.checkpoint import load_checkpoint
from yolo_teach.devices import DeviceError, select_device
from yolo_teach.experiment import make_experiment
from yolo_teach.train import epoch_order


@pytest.fixture
def no_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)


# ----------------------------------------------------------------- choosing the device
def test_auto_takes_cuda_then_mps_then_the_cpu(monkeypatch, no_accelerator):
    assert select_device("auto") == select_device(None) == torch.device("cpu")
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    assert select_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert select_device("auto") == torch.device("cuda", 0)
    assert select_device("cuda:1") == torch.device("cuda", 1)
    monkeypatch.setenv("LOCAL_RANK", "1")  # a torchrun process: its own GPU
    assert select_device("cuda") == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match="has 2 CUDA device"):
        select_device("cuda:2")


def test_an_absent_or_unknown_device_is_a_clear_error(no_accelerator):
    assert select_device("cpu") == select_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(DeviceError, match="CUDA is not available"):
        select_device("cuda")
    with pytest.raises(DeviceError, match="MPS is not available"):
        select_device("mps")
    for name in ("tpu", "cpu:1", "cuda:x", "gpu"):
        with pytest.raises(DeviceError, match="expected auto, cpu, cuda, cuda:N or mps"):
            select_device(name)


def test_mixed_precision_is_for_cuda_only():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert devices.use_amp(cpu) is False and devices.use_amp(cuda) is True
    assert devices.use_amp(cuda, False) is False
    with pytest.raises(DeviceError, match="needs CUDA"):
        devices.use_amp(cpu, True)
    assert isinstance(devices.autocast(cpu, False), contextlib.nullcontext)
    assert devices.grad_scaler(cpu, False) is None
    half = [torch.zeros(2, dtype=torch.float16), torch.ones(1, dtype=torch.float16)]
    assert [t.dtype for t in devices.as_float32(half)] == [torch.float32] * 2


def test_torchrun_environment(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert devices.distributed() is None
    assert devices.any_rank(True, torch.device("cpu")) is True  # one process: the flag itself
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    ddp = devices.distributed()
    assert (ddp.rank, ddp.local_rank, ddp.world_size, ddp.is_main) == (1, 1, 2, False)


# ----------------------------------------------------------------- the CPU path is unchanged
def test_epoch_order_is_the_order_of_the_loop_before_devices():
    # what Trainer._loader and fit did before: DataLoader(shuffle=True, generator) given to
    # tqdm.auto, which makes two iterators of it
    for n, seed in ((12, 0), (50, 100_004)):
        loader = DataLoader(range(n), batch_size=1, shuffle=True,
                            generator=torch.Generator().manual_seed(seed))
        before = [int(batch) for batch in tqdm(loader, disable=True)]
        assert epoch_order(n, seed) == before


def tiny_run(**kwargs):
    torch.manual_seed(0)
    exp = make_experiment("yolov3-nano", "shapes", img_size=64, n_train=12, n_val=2,
                          batch_size=4, epochs=2, max_steps=4, val_every=0, progress=False,
                          **kwargs)
    exp.trainer.fit()
    return exp.trainer


def test_cpu_training_is_bit_identical_whatever_the_device_argument_or_workers(no_accelerator):
    reference = tiny_run()  # the defaults: what training computed before devices existed
    for kwargs in ({"device": "cpu"}, {"device": "auto", "num_workers": 2, "amp": False}):
        other = tiny_run(**kwargs)
        assert other.device == torch.device("cpu") and other.scaler is None
        for (name, a), b in zip(reference.model.state_dict().items(),
                                other.model.state_dict().values()):
            assert torch.equal(a, b), (kwargs, name)
        for a, b in zip(reference.ema.module.state_dict().values(),
                        other.ema.module.state_dict().values()):
            assert torch.equal(a, b), kwargs
        losses = [row["train_loss"] for row in reference.history]
        assert [row["train_loss"] for row in other.history] == losses, kwargs


# ----------------------------------------------------------------- two processes (torchrun)
def test_torchrun_trains_with_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "yolo_teach.cli", "train", "--model",
               "yolov3-nano", "--data", "shapes", "--imgsz", "64", "--batch", "4",
               "--n-train", "8", "--n-val", "2", "--epochs", "1", "--threads", "1",
               "--device", "cpu", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 1  # only rank 0 prints
    final = json.loads(printed[0])
    state = load_checkpoint(out / "last.pt")
    # 8 images over 2 processes, 2 images each per batch of 4: 2 steps in the epoch
    assert state["world_size"] == 2 and state["epoch"] == 1 and state["iteration"] == 2
    assert final["iteration"] == 2 and "map_50" in final  # rank 0 validated
