"""Where the files that ship with the package are: found through the package, never ``../``.

A notebook opened alone (Colab, a copy in an empty folder) has no repository around it, so the
small weights, data samples and benchmark results it reads are package data
(``yolo_teach/assets/``, installed with the package)::

    from yolo_teach import paths
    paths.weights("yolov3-nano-neighbours.pt")     # written by scripts/train_checkpoints.py
    paths.samples("shapes_yolo")                   # written by scripts/make_datasets.py --sample
    paths.results("v4_vs_v3.jsonl")                # written by the scripts in benchmarks/
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
WEIGHTS, SAMPLES, RESULTS = ASSETS / "weights", ASSETS / "samples", ASSETS / "results"


def _find(folder: Path, name: str | None) -> Path:
    if name is None:
        return folder
    path = folder / name
    if not path.exists():
        have = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise FileNotFoundError(f"{path}: not shipped with yolo_teach (have: {', '.join(have)})")
    return path


def weights(name: str | None = None) -> Path:
    """The shipped weights folder, or the file ``name`` in it (``FileNotFoundError`` if absent)."""
    return _find(WEIGHTS, name)


def weights_file(name_or_path: str | Path) -> Path:
    """An existing checkpoint path as given, else the shipped weights file of that name."""
    path = Path(name_or_path)
    return path if path.exists() else weights(str(name_or_path))


def samples(name: str | None = None) -> Path:
    """The shipped data samples folder (one small dataset per label format), or one of them."""
    return _find(SAMPLES, name)


def results(name: str | None = None) -> Path:
    """The shipped benchmark results folder (JSON lines), or one file in it."""
    return _find(RESULTS, name)
