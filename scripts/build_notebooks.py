"""Regenerate every committed notebook in one command: header, execution, cleaning, run times.

For each notebook (all of ``notebooks/`` by default):

1. the header: an "Open in Colab" badge at the top of the first cell, and the setup cell as the
   first code cell (it installs ``yolo_teach`` where it is missing, from the source named once in
   ``pyproject.toml``'s ``[project.urls]``, overridable with ``YOLO_TEACH_SOURCE``);
2. execution top to bottom in a fresh kernel (nbclient), with the full kernel metadata written;
3. cleaning (``scripts/clean_notebooks.py``: no saved widget state, no per-cell timings);
4. its wall time, written into the README's notebook table and the notebook's own
   "Runs in about N s" line, so every time quoted is one measurement.

Run it on a quiet machine (two cores, nothing else running)::

    python scripts/build_notebooks.py                    # all (~4 min)
    python scripts/build_notebooks.py 06 10              # some, by number or name
    python scripts/build_notebooks.py --no-execute       # headers only
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS, README = ROOT / "notebooks", ROOT / "README.md"
SETUP_MARK = "# Setup: installs yolo_teach where it is missing"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
RUNS_IN = re.compile(r"Runs in about \d+ s on two CPU cores")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clean_notebooks import clean  # noqa: E402


def project_urls(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """``[project.urls]`` of ``pyproject.toml`` (the install source and the repository page)."""
    text, urls, inside = pyproject.read_text(), {}, False
    for line in text.splitlines():
        if line.startswith("["):
            inside = line.strip() == "[project.urls]"
        elif inside and "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            urls[key.strip()] = value.strip().strip('"')
    return urls


def setup_cell(source: str) -> str:
    """The first code cell of every notebook: a no-op where ``yolo_teach`` is importable."""
    return f'''{SETUP_MARK} (Colab, a bare Jupyter); nothing otherwise.
# pip keeps the machine's own torch (Colab's, with CUDA); YOLO_TEACH_SOURCE may name another
# source: a folder, a wheel or a VCS URL.
import importlib.util, os, subprocess, sys

if importlib.util.find_spec("yolo_teach") is None:
    source = os.environ.get("YOLO_TEACH_SOURCE", "{source}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], check=True)
    importlib.invalidate_caches()
if "google.colab" in sys.modules:  # Colab draws ipywidgets 8 with its custom manager
    from google.colab import output
    output.enable_custom_widget_manager()'''


def colab_url(homepage: str, notebook: str) -> str:
    """Colab's address of ``notebooks/<notebook>`` on the default branch of ``homepage``."""
    repo = homepage.removeprefix("https://github.com/").strip("/")
    return f"https://colab.research.google.com/github/{repo}/blob/main/notebooks/{notebook}"


def badge(homepage: str, notebook: str) -> str:
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_url(homepage, notebook)})")


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + [lines[-1]]


def set_header(nb: dict, name: str, urls: dict[str, str]) -> None:
    """Put the badge on top of the first (markdown) cell and the setup cell first in code;
    name ipykernel's own kernelspec, which JupyterLab would otherwise write on opening."""
    nb["metadata"]["kernelspec"] = dict(KERNELSPEC)
    first = nb["cells"][0]
    text = "".join(first["source"])
    text = re.sub(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\n\n", "", text)
    first["source"] = _lines(badge(urls["Homepage"], name) + "\n\n" + text)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    cell = {"cell_type": "code", "execution_count": None, "id": "yolo-teach-setup",
            "metadata": {}, "outputs": [], "source": _lines(setup_cell(urls["Source"]))}
    if code and "".join(code[0]["source"]).startswith(SETUP_MARK):
        code[0]["source"] = cell["source"]
    else:
        nb["cells"].insert(nb["cells"].index(code[0]) if code else 1, cell)


def execute(path: Path, timeout: int = 900) -> float:
    """Run ``path`` in place in a fresh kernel (cwd: its folder); return the wall seconds."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - started
    nbformat.write(nb, path)
    return seconds


def write_times(times: dict[str, float]) -> None:
    """The measured seconds into the README's table (last column) and each notebook's intro."""
    lines = README.read_text().split("\n")
    for i, line in enumerate(lines):
        number = re.match(r"\| (\d\d) \|", line)
        stem = next((s for s in times if number and s.startswith(number.group(1))), None)
        if stem is not None:
            cells = line.split(" | ")
            cells[-1] = f"~{times[stem]:.0f} s |"
            lines[i] = " | ".join(cells)
    README.write_text("\n".join(lines))
    for stem, seconds in times.items():
        path = NOTEBOOKS / f"{stem}.ipynb"
        text = path.read_text()
        new = RUNS_IN.sub(f"Runs in about {seconds:.0f} s on two CPU cores", text)
        if new != text:
            path.write_text(new)


def select(names: list[str]) -> list[Path]:
    every = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return every
    chosen = [p for p in every if any(p.stem == n or p.stem.startswith(n) for n in names)]
    if len(chosen) < len(names):
        raise SystemExit(f"build_notebooks: no notebook for some of {names}")
    return chosen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="notebook numbers or names (default: all)")
    parser.add_argument("--no-execute", action="store_true", help="headers and cleaning only")
    args = parser.parse_args(argv)
    urls, times = project_urls(), {}
    for path in select(args.names):
        nb = json.loads(path.read_text())
        set_header(nb, path.name, urls)
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        if not args.no_execute:
            times[path.stem] = execute(path)
            print(f"{path.name}: executed in {times[path.stem]:.0f} s", flush=True)
        clean(path)
    if times:
        write_times(times)


if __name__ == "__main__":
    main()
