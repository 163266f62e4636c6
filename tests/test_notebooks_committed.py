"""What a learner sees before running anything: the committed notebooks as GitHub, nbviewer,
Colab and JupyterLab show them (issue #10)."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WIDGET = "application/vnd.jupyter.widget-view+json"

spec = importlib.util.spec_from_file_location("build_notebooks",
                                              ROOT / "scripts" / "build_notebooks.py")
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)
URLS = build.project_urls()


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _outputs(path: Path):
    for cell in _cells(path):
        yield from cell.get("outputs", [])


def test_the_source_is_named_once_in_pyproject():
    assert URLS["Source"].startswith("git+https://") and URLS["Homepage"].startswith("https://")
    assert URLS["Source"].removeprefix("git+").removesuffix(".git") == URLS["Homepage"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_header_badge_and_setup_cell(path):
    cells = _cells(path)
    assert "".join(cells[0]["source"]).startswith(build.badge(URLS["Homepage"], path.name))
    first_code = next(c for c in cells if c["cell_type"] == "code")
    assert "".join(first_code["source"]) == build.setup_cell(URLS["Source"])
    assert not first_code["outputs"]  # a no-op where yolo_teach is installed


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_nothing_is_read_through_the_parent_folder(path):
    code = "".join("".join(c["source"]) for c in _cells(path) if c["cell_type"] == "code")
    assert '"../' not in code and "'../" not in code


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_progress_bar_frozen_and_every_widget_has_a_static_view(path):
    for out in _outputs(path):
        text = "".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", ""))
        assert not re.search(r"\b0%\|", text), text[:200]
        if WIDGET in out.get("data", {}):
            assert out["data"].get("image/png"), f"a widget without a static view in {path.name}"
            assert "VBox(" not in "".join(out["data"]["text/plain"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_full_kernel_metadata_so_a_notebook_opens_unmodified(path):
    meta = json.loads(path.read_text())["metadata"]
    assert meta["kernelspec"] == {"display_name": "Python 3 (ipykernel)", "language": "python",
                                  "name": "python3"}
    info = meta["language_info"]
    assert {"codemirror_mode", "file_extension", "mimetype", "name", "nbconvert_exporter",
            "pygments_lexer", "version"} <= set(info)
    assert "widgets" not in meta


def test_readme_table_has_a_colab_badge_and_a_time_for_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        row = next(line for line in readme.splitlines() if line.startswith(f"| {path.stem[:2]} |"))
        assert build.colab_url(URLS["Homepage"], path.name) in row
        assert re.search(r"~\d+ s \|$", row)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_quotes_the_measured_time_of_the_readme(path):
    intro = "".join(_cells(path)[0]["source"])
    quoted = build.RUNS_IN.search(intro)
    assert quoted, "the intro says how long the notebook runs"
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith(f"| {path.stem[:2]} |"))
    seconds = re.search(r"~(\d+) s \|$", row).group(1)
    assert quoted.group(0) == f"Runs in about {seconds} s on two CPU cores"
