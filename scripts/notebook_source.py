"""A notebook's cells kept as a Python script (``scripts/nbNN_source.py``), so that the prose
and the code are reviewed as text::

    NB = NotebookSource("19_leaderboard.ipynb")
    NB.md(r'''# 19 · ...''')
    NB.code(r'''import numpy as np''')
    if __name__ == "__main__":
        NB.main()          # python scripts/nb19_source.py [PLACEHOLDER=text ...]

``python scripts/build_notebooks.py NN`` then adds the header, runs and cleans the notebook.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class NotebookSource:
    """The cells of ``notebooks/NAME``, in order; cell ids ``nbNN-00``, ``nbNN-01``, ..."""

    def __init__(self, name: str):
        self.path = ROOT / "notebooks" / name
        self.prefix = f"nb{name[:2]}"
        self.cells: list[tuple[str, str, tuple[str, ...]]] = []

    def md(self, text: str) -> None:
        self.cells.append(("markdown", text.strip("\n"), ()))

    def code(self, text: str, tags: tuple[str, ...] = ()) -> None:
        """A code cell; ``tags`` go into its metadata (e.g. ``live-training``, tests/browser)."""
        self.cells.append(("code", text.strip("\n"), tags))

    def write(self, path: Path | None = None, **replace: str) -> Path:
        """Write the notebook (no outputs), with ``{PLACEHOLDER: text}`` replacements."""
        cells = []
        for i, (kind, text, tags) in enumerate(self.cells):
            for key, value in replace.items():
                text = text.replace(key, value)
            cell = {"cell_type": kind, "id": f"{self.prefix}-{i:02d}",
                    "metadata": {"tags": list(tags)} if tags else {}, "source": text}
            if kind == "code":
                cell.update(execution_count=None, outputs=[])
            cells.append(cell)
        nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
        path = Path(path or self.path)
        path.write_text(json.dumps(nb, indent=1) + "\n")
        return path

    def main(self, argv: list[str] | None = None) -> Path:
        """Write the notebook; ``argv`` (default the command line) holds ``KEY=text`` pairs."""
        import sys

        args = sys.argv[1:] if argv is None else argv
        return self.write(**dict(arg.split("=", 1) for arg in args))
