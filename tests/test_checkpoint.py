import os
import pickle

import pytest
import torch

from yolo_teach.checkpoint import atomic_save, load_checkpoint

CALLED = []


def _run_on_load():
    CALLED.append("code ran")  # what a malicious pickle would do: run code while loading
    return "payload"


class RunsCodeOnLoad:
    def __reduce__(self):
        return (_run_on_load, ())


def test_save_then_load_round_trip_into_a_new_nested_folder(tmp_path):
    state = {"epoch": 3, "model": {"w": torch.arange(6.0).reshape(2, 3)}, "history": [0.5, 0.25]}
    path = atomic_save(state, tmp_path / "runs" / "exp1" / "last.pt")  # two folders to create
    assert path == tmp_path / "runs" / "exp1" / "last.pt"
    loaded = load_checkpoint(str(path))
    assert loaded["epoch"] == 3 and loaded["history"] == [0.5, 0.25]
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])
    # a second save into the (now existing) folder replaces the file
    atomic_save({"epoch": 4}, path)
    assert load_checkpoint(path) == {"epoch": 4}
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]  # nothing left behind


def test_the_checkpoint_is_written_to_a_hidden_file_in_the_same_folder(tmp_path, monkeypatch):
    seen = []
    real_save = torch.save

    def save_and_look(obj, f):
        seen.extend(sorted(p.name for p in tmp_path.iterdir()))
        real_save(obj, f)

    monkeypatch.setattr(torch, "save", save_and_look)
    atomic_save({"x": 1}, tmp_path / "best.pt")
    # while writing: only the temporary file (so the rename is within one file system)
    assert len(seen) == 1 and seen[0].startswith(".best.pt.") and seen[0].endswith(".tmp")


def test_an_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = atomic_save({"epoch": 1}, tmp_path / "last.pt")

    def dies_half_way(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # the kernel is killed mid-write

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # the temporary file is removed


def test_a_failed_rename_removes_the_temporary_file(tmp_path):
    (tmp_path / "taken").mkdir()  # a folder where the checkpoint should go: the rename fails
    with pytest.raises(OSError):
        atomic_save({"x": 1}, tmp_path / "taken")
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_the_saved_file_gets_the_permissions_of_a_plain_write(tmp_path):
    old = os.umask(0o027)
    try:
        saved = atomic_save({"x": torch.zeros(1)}, tmp_path / "saved.pt")
    finally:
        os.umask(old)
    assert saved.stat().st_mode & 0o777 == 0o640  # 0o666 less the umask 0o027, not 0o600


def test_loading_refuses_to_run_code_hidden_in_the_pickle(tmp_path, monkeypatch):
    path = tmp_path / "evil.pt"
    torch.save({"model": RunsCodeOnLoad()}, path)
    # torch < 2.6 defaults to weights_only=False, as does torch >= 2.6 with this variable set
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path)
    assert CALLED == []
    assert torch.load(path, weights_only=False) == {"model": "payload"}  # the unsafe way runs it
    assert CALLED == ["code ran"]
    CALLED.clear()


def test_map_location_is_passed_on(tmp_path):
    path = atomic_save({"w": torch.ones(2, 3)}, tmp_path / "w.pt")
    assert load_checkpoint(path)["w"].device.type == "cpu"
    meta = load_checkpoint(path, map_location="meta")["w"]  # shapes only, no storage
    assert meta.device.type == "meta" and meta.shape == (2, 3)
