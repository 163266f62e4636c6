import math

import numpy as np
import pytest
import torch
from torch import nn

import yolo_teach.checkpoint as checkpoint
from yolo_teach.data import BoxDataset
from yolo_teach.data.augment import Augment
from yolo_teach.data.loader import DetectionDataset
from yolo_teach.train import ModelEMA, TrainConfig, Trainer, learning_rate, load_history


# ----------------------------------------------------------------- schedules and EMA
def test_warmup_follows_darknet_burn_in():
    cfg = TrainConfig(lr=0.01, warmup_iters=100, warmup_power=4)
    # Darknet: lr * (i / burn_in)^4 -> at step 49 (the 50th), (50/100)^4 = 1/16
    assert learning_rate(cfg, 49, 1000) == pytest.approx(0.01 / 16)
    assert learning_rate(cfg, 99, 1000) == pytest.approx(0.01)


def test_cosine_and_step_schedules():
    cos = TrainConfig(lr=0.1, warmup_iters=0, schedule="cosine", final_lr_ratio=0.0)
    assert learning_rate(cos, 0, 100) == pytest.approx(0.1)
    assert learning_rate(cos, 50, 100) == pytest.approx(0.05)  # (1 + cos(pi/2)) / 2 = 1/2
    steps = TrainConfig(lr=0.1, warmup_iters=0, schedule="steps", steps=(0.8, 0.9))
    assert [learning_rate(steps, i, 100) for i in (79, 80, 90)] == pytest.approx(
        [0.1, 0.01, 0.001])
    # a time-budgeted run passes its progress explicitly: half of the time spent -> half the lr
    assert learning_rate(cos, 10, 100, progress=0.5) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="schedule"):
        learning_rate(TrainConfig(warmup_iters=0, schedule="linear"), 5, 10)


def test_ema_update_rule():
    model = nn.Linear(1, 1, bias=False)
    nn.init.constant_(model.weight, 0.0)
    ema = ModelEMA(model, decay=0.9, warmup=1.0)
    nn.init.constant_(model.weight, 1.0)
    ema.update(model)
    d = 0.9 * (1 - math.exp(-1))  # decay after one update
    assert ema.module.weight.item() == pytest.approx(1 - d)


# ----------------------------------------------------------------- a toy detector for the loop
class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.3)  # consumes the global RNG: resume must restore it
        self.head = nn.Conv2d(4, 5, 1)

    def forward(self, x):
        return self.head(self.drop(torch.relu(self.bn(self.conv(x)))))  # (B, 5, H, W)


def toy_criterion(out, targets):
    """Pull channel 0 towards the number of boxes in each image; a loss with real gradients."""
    counts = torch.bincount(targets[:, 0].long(), minlength=len(out)).float()
    obj = ((out[:, 0].mean((1, 2)) - counts) ** 2).mean()
    reg = out[:, 1:].pow(2).mean()
    return obj + reg, {"obj": obj.detach(), "reg": reg.detach()}


def toy_predict(model, images):
    out = model(images)
    s = images.shape[-1]
    return [{"boxes": torch.tensor([[0.0, 0.0, s / 2, s / 2]]),
             "scores": torch.sigmoid(o[0].mean()).reshape(1), "labels": torch.zeros(1).long()}
            for o in out]


def toy_data(n=12, size=32, seed=0):
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 255, (size, size + 8, 3), dtype=np.uint8) for _ in range(n)]
    boxes = [np.array([[2, 2, 20, 16], [10, 5, 30, 25]], np.float32)[: 1 + i % 2] for i in range(n)]
    labels = [np.zeros(len(b), np.int64) for b in boxes]
    return BoxDataset(images, boxes, labels, ["thing"])


def make_trainer(out_dir, epochs=4, criterion=toy_criterion, **cfg):
    torch.manual_seed(0)
    source = toy_data()
    train = DetectionDataset(source, img_size=32, augment=Augment(), seed=1)
    val = DetectionDataset(source, img_size=32)
    cfg = TrainConfig(**{"epochs": epochs, "batch_size": 4, "accumulate": 2, "warmup_iters": 3,
                         "lr": 0.01, "progress": False, "val_every": 1, **cfg})
    meta = {"model": "toy", "class_names": ["thing"]}
    return Trainer(Toy(), criterion, toy_predict, train, val, cfg, out_dir, meta)


class ScaledCriterion(nn.Module):
    """A loss with a parameter of its own (as RefineDetLite's eq. 6 uncertainty weights)."""

    def __init__(self):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(()))

    def forward(self, out, targets):
        loss, terms = toy_criterion(out, targets)
        return torch.exp(-self.log_scale) * loss + self.log_scale, terms


def test_a_loss_with_parameters_trains_them_and_resumes_them(tmp_path):
    def trainer(path):
        return make_trainer(path, criterion=ScaledCriterion())

    full = trainer(tmp_path / "full")
    full.fit()
    assert full.criterion.log_scale.item() != 0.0  # it was optimised
    first = trainer(tmp_path / "split")
    first.fit(stop_after_epoch=2)
    resumed = trainer(tmp_path / "split").resume()
    assert resumed.criterion.log_scale.item() == first.criterion.log_scale.item()
    resumed.fit()
    assert torch.equal(resumed.criterion.log_scale, full.criterion.log_scale)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, optimizer):
    full = make_trainer(tmp_path / "full", optimizer=optimizer)
    full.fit()
    first = make_trainer(tmp_path / "split", optimizer=optimizer)
    first.fit(stop_after_epoch=2)  # a Colab disconnect after epoch 2
    torch.manual_seed(123)  # the new session's RNG is elsewhere: resume must restore it
    resumed = make_trainer(tmp_path / "split", optimizer=optimizer).resume()
    assert resumed.epoch == 2
    resumed.fit()
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    for a, b in zip(full.ema.module.state_dict().values(), resumed.ema.module.state_dict().values()):
        assert torch.equal(a, b)
    assert [r["train_loss"] for r in full.history] == [r["train_loss"] for r in resumed.history]


def test_history_and_best_checkpoint_are_written(tmp_path):
    trainer = make_trainer(tmp_path, epochs=2)
    history = trainer.fit()
    assert [row["epoch"] for row in history] == [1, 2]
    assert {"map", "map_50", "train_loss", "lr", "images_per_second"} <= set(history[0])
    assert (tmp_path / "history.csv").read_text().startswith("epoch,")
    assert load_history(tmp_path) == history
    state = checkpoint.load_checkpoint(tmp_path / "best.pt")
    assert state["best_fitness"] == max(row["map_50"] for row in history)
    assert state["meta"] == {"model": "toy", "class_names": ["thing"]}
    # best.pt's history ends with the epoch whose weights it holds
    assert state["history"][-1]["epoch"] == state["epoch"]
    assert state["history"][-1]["map_50"] == state["best_fitness"]


def test_time_limit_stops_training(tmp_path):
    trainer = make_trainer(tmp_path, epochs=1000, time_limit=0.5, val_every=0)
    history = trainer.fit()
    assert len(history) < 1000 and "map" in history[-1]  # validated once, at the end


def test_max_steps_stops_training_and_ends_the_schedule(tmp_path):
    # batch 4, accumulate 2: one optimizer step per 8 images; 7 steps cross epoch boundaries
    trainer = make_trainer(tmp_path, epochs=1000, max_steps=7, val_every=0, warmup_iters=0,
                           schedule="cosine", final_lr_ratio=0.0)
    history = trainer.fit()
    assert trainer.iteration == 7 and history[-1]["iteration"] == 7 and "map" in history[-1]
    assert trainer.total_iters == 7  # the cosine runs over the step budget, not 1000 epochs
    # last step's lr: cosine at 6/7 of the way, lr * (1 + cos(6 pi / 7)) / 2
    assert history[-1]["lr"] == pytest.approx(0.01 * (1 + math.cos(6 * math.pi / 7)) / 2)
    assert trainer.fit() == history  # nothing left to do


def test_interrupted_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, epochs=2)
    trainer.fit(stop_after_epoch=1)
    before = checkpoint.load_checkpoint(tmp_path / "last.pt")

    def dies_half_way(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # the kernel is killed mid-write

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    monkeypatch.undo()
    after = checkpoint.load_checkpoint(tmp_path / "last.pt")
    assert after["epoch"] == before["epoch"] == 1
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_atomic_save_gives_the_permissions_of_a_plain_write(tmp_path):
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"")
    saved = checkpoint.atomic_save({"x": torch.zeros(1)}, tmp_path / "saved.pt")
    assert saved.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # not mkstemp's 0600
