"""Every widget of the course, live in JupyterLab and Chromium: it renders and it reacts.

Each notebook of ``WIDGETS`` is opened in JupyterLab (on a temporary copy of notebooks/), all its
cells are run, and then, for each of its widgets: the picture must be shown, each listed move
(a slider, a dropdown, a toggle, a checkbox) must change the picture or the text, and the widget
is saved as ``<notebook>-<widget>-before.png`` / ``-after.png`` in ``build/browser/`` (env
``YOLO_TEACH_SCREENSHOTS`` overrides the folder). A notebook that shows a widget missing from
``WIDGETS`` fails, and so does one outside ``WIDGETS`` that calls a widget function.

A new widget is one line of ``WIDGETS``. Run only these tests with ``pytest -m browser``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import pkgutil
import re
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # the browser fixture skips these tests (or fails them in CI)
    PlaywrightTimeout = TimeoutError

REPO = Path(__file__).resolve().parents[2]
# per notebook: the training notebooks take ~40-60 s of kernel time on 2 idle cores (env
# YOLO_TEACH_NOTEBOOK_TIMEOUT: more seconds for a busy machine)
RUN_ALL_S = float(os.environ.get("YOLO_TEACH_NOTEBOOK_TIMEOUT", 240))
KERNEL_START_S = 90
REACT_S = 60  # one widget update (the prediction explorers recompute their metrics)

pytestmark = pytest.mark.browser


@dataclass(frozen=True)
class Move:
    """One change of one control: ``control`` is the key of its ``yt-control-<key>`` class.

    ``how`` is ``"type"`` (write ``value`` into a slider's readout and press Enter), ``"key"``
    (focus the slider's handle and press the key ``value``), ``"select"`` (choose the dropdown
    option labelled ``value``) or ``"click"`` (click the control, or its button or checkbox
    labelled ``value``).
    """

    control: str
    how: str
    value: str | None = None


@dataclass(frozen=True)
class Widget:
    """A widget a notebook shows: its ``yt-<name>`` class, and the moves to try, in order."""

    notebook: str
    name: str
    moves: tuple[Move, ...]

    def __str__(self) -> str:
        return f"{self.notebook}-{self.name}"


WIDGETS = [
    Widget("01_boxes_iou_nms_map", "iou-playground",
           (Move("cx", "type", "150"), Move("h", "key", "ArrowRight"))),
    Widget("01_boxes_iou_nms_map", "nms-explorer",
           (Move("method", "select", "DIoU-NMS"), Move("iou", "key", "End"))),
    Widget("03_mosaic_and_augmentation", "mosaic-preview",
           (Move("affine", "click"), Move("seed", "key", "ArrowRight"))),
    Widget("04_yolov1", "prediction-explorer",
           (Move("conf", "type", "0.5"), Move("image", "key", "ArrowRight"))),
    Widget("05_yolov2_anchors", "anchor-explorer",
           (Move("units", "click", "grid units"), Move("rule", "select", "neighbours"))),
    Widget("05_yolov2_anchors", "prediction-explorer",
           (Move("classes", "click", "circle"), Move("iou", "key", "Home"))),
    Widget("06_yolov3_multiscale", "anchor-explorer",
           (Move("scale", "select", "stride 8"), Move("units", "click", "grid units"))),
    Widget("06_yolov3_multiscale", "prediction-explorer",
           (Move("image", "type", "5"), Move("conf", "key", "ArrowRight"))),
    Widget("10_yolov4", "prediction-explorer",
           (Move("conf", "type", "0.6"), Move("classes", "click", "star"))),
    Widget("12_attention", "attention-explorer",
           (Move("off", "click"), Move("layer", "select", "neck.bottom_up5"),
            Move("image", "key", "ArrowRight"))),
    Widget("13_yolox", "prediction-explorer",
           (Move("conf", "type", "0.02"), Move("classes", "click", "square"))),
    Widget("16_refinedet", "two-step-explorer",
           (Move("objectness", "type", "0.2"), Move("level", "select", "stride 8 (16 x 16)"))),
]
NOTEBOOKS = list(dict.fromkeys(w.notebook for w in WIDGETS))

# the state of a widget element: its picture's SHA-256, sizes and src, and all its texts
STATE_JS = """async el => {
  const img = el.querySelector('img.yt-picture');
  let digest = '';
  if (img && img.src) {
    const bytes = await (await fetch(img.src)).arrayBuffer();
    const hash = await crypto.subtle.digest('SHA-256', bytes);
    digest = Array.from(new Uint8Array(hash), b => b.toString(16).padStart(2, '0')).join('');
  }
  return {digest, src: img ? img.src.slice(0, 40) : '', complete: !!img && img.complete,
          natural: img ? [img.naturalWidth, img.naturalHeight] : [0, 0],
          shown: img ? [img.clientWidth, img.clientHeight] : [0, 0],
          text: Array.from(el.querySelectorAll('.yt-text'), t => t.innerText).join('\\n')};
}"""
PANEL_JS = "((window.jupyterapp && window.jupyterapp.shell.currentWidget) || null)"
KERNEL_IDLE_JS = f"""() => {{
  const panel = {PANEL_JS};
  return !!panel && !!panel.sessionContext && panel.sessionContext.isReady
         && panel.sessionContext.kernelDisplayStatus === 'idle';
}}"""
ERRORS_JS = f"""() => {{
  const errors = [];
  const cells = {PANEL_JS}.content.model.cells;
  for (let c = 0; c < cells.length; c++) {{
    const outputs = cells.get(c).outputs;
    for (let i = 0; outputs && i < outputs.length; i++) {{
      const out = outputs.get(i).toJSON();
      if (out.output_type === 'error') errors.push(`cell ${{c}}: ${{out.ename}}: ${{out.evalue}}`);
    }}
  }}
  return errors;
}}"""

PROGRESS_JS = f"""() => {{
  const prompts = Array.from({PANEL_JS}.node.querySelectorAll('.jp-CodeCell .jp-InputPrompt'),
                             p => p.textContent.trim());
  const running = prompts.indexOf('[*]:');
  return `${{prompts.filter(p => /[0-9]/.test(p)).length}} of ${{prompts.length}} code cells ` +
         `run, ` + (running < 0 ? 'none running' : `code cell ${{running}} running`);
}}"""


def screenshot_dir() -> Path:
    """Where the screenshots go: env ``YOLO_TEACH_SCREENSHOTS``, else ``build/browser``."""
    folder = Path(os.environ.get("YOLO_TEACH_SCREENSHOTS") or REPO / "build" / "browser")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class OpenNotebook:
    """A notebook open in its own browser page, all cells run, kernel idle."""

    def __init__(self, page, url: str, name: str):
        self.name, self.page = name, page
        self.page.set_default_timeout(30_000)
        self.page.goto(f"{url}/lab/tree/{name}.ipynb?reset")
        self.page.wait_for_function(
            f"() => {{ const p = {PANEL_JS}; return !!p && p.context.path === '{name}.ipynb'; }}",
            timeout=KERNEL_START_S * 1000)
        self.page.evaluate("() => { const shell = window.jupyterapp.shell;"
                           " if (!shell.leftCollapsed) shell.collapseLeft(); }")
        self.wait_idle(KERNEL_START_S)
        self.page.evaluate("""() => { window.ytRunAll = null;
            window.jupyterapp.commands.execute('notebook:run-all-cells').then(
              ok => { window.ytRunAll = {ok}; },
              err => { window.ytRunAll = {ok: false, error: String(err)}; }); }""")
        try:
            self.page.wait_for_function("() => window.ytRunAll !== null",
                                        timeout=RUN_ALL_S * 1000)
            self.wait_idle(RUN_ALL_S)
        except PlaywrightTimeout:
            self.page.screenshot(path=screenshot_dir() / f"{name}-timeout.png")
            raise AssertionError(f"{name}: cells still running after {RUN_ALL_S} s: "
                                 f"{self.page.evaluate(PROGRESS_JS)}") from None
        result = self.page.evaluate("() => window.ytRunAll")
        errors = self.page.evaluate(ERRORS_JS)
        assert result["ok"] and not errors, f"{name}: running all cells failed: {result} {errors}"

    def wait_idle(self, timeout_s: float) -> None:
        """Wait until the notebook's kernel is idle."""
        self.page.wait_for_function(KERNEL_IDLE_JS, timeout=timeout_s * 1000)

    def widget_names(self) -> list[str]:
        """The ``yt-<name>`` names of the widgets the notebook shows, in page order."""
        classes = self.page.locator(".yolo-teach-widget").evaluate_all(
            "els => els.map(el => Array.from(el.classList))")
        return [c[3:] for names in classes for c in names if c.startswith("yt-")]


@pytest.fixture(scope="module")
def notebook(request, browser, lab):
    """The notebook named by the test's parameter, opened and run (one at a time)."""
    page = browser.new_page()
    try:
        yield OpenNotebook(page, lab.url, request.param)
    finally:
        page.close()
        lab.shutdown_kernels()


def state(element) -> dict:
    """What a widget element shows now (see ``STATE_JS``)."""
    return element.evaluate(STATE_JS)


def wait_for_change(notebook: OpenNotebook, element, before: dict, what: str) -> dict:
    """Poll until the picture's bytes or the text differ from ``before`` and the kernel is idle."""
    deadline = time.monotonic() + REACT_S
    while time.monotonic() < deadline:
        now = state(element)
        changed = now["digest"] != before["digest"] or now["text"] != before["text"]
        if changed and now["complete"] and notebook.page.evaluate(KERNEL_IDLE_JS):
            if state(element) == now:  # nothing else arriving: the update is complete
                return now
        time.sleep(0.25)
    raise AssertionError(f"{what}: neither the picture nor the text changed in {REACT_S} s")


def move(element, step: Move) -> None:
    """Change one control of a widget element as a user would (see :class:`Move`)."""
    control = element.locator(f".yt-control-{step.control}")
    if step.how == "type":
        readout = control.locator(".widget-readout")
        readout.click()
        readout.press("Control+A")
        readout.press_sequentially(step.value)
        readout.press("Enter")
    elif step.how == "key":
        handle = control.locator(".noUi-handle")
        handle.focus()
        handle.press(step.value)
    elif step.how == "select":
        select = control.locator("select")
        values = select.locator("option").evaluate_all("options => options.map(o => o.value)")
        select.select_option(value=next(v for v in values if v.startswith(step.value)))
    elif step.how == "click":
        target = control if step.value is None else control.get_by_text(step.value, exact=True)
        target.click()
    else:
        raise ValueError(f"unknown move {step.how!r}")


def check_picture(shot: dict, what: str) -> None:
    """The picture is a decoded image of more than 100 px, shown at its own size."""
    assert shot["src"] and shot["digest"], f"{what}: the picture has no image"
    assert shot["natural"][0] > 100 and shot["natural"][1] > 100, (
        f"{what}: picture of {shot['natural']} px")
    assert shot["shown"] == shot["natural"], (
        f"{what}: picture of {shot['natural']} px shown at {shot['shown']} px (stretched)")


@pytest.mark.parametrize("notebook", NOTEBOOKS, indirect=True, scope="module")
def test_notebook_widgets_are_listed(notebook):
    """The widgets a notebook shows are exactly those that ``WIDGETS`` lists for it."""
    shown = Counter(notebook.widget_names())
    listed = Counter(w.name for w in WIDGETS if w.notebook == notebook.name)
    assert shown == listed, (f"{notebook.name} shows {dict(shown)}, WIDGETS lists "
                             f"{dict(listed)}: add the missing widgets to WIDGETS")


@pytest.mark.parametrize(("notebook", "widget"), [(w.notebook, w) for w in WIDGETS],
                         indirect=["notebook"], scope="module", ids=[str(w) for w in WIDGETS])
def test_widget_renders_and_reacts(notebook, widget):
    """The widget shows a picture, and each move changes the picture or the text."""
    same = [w for w in WIDGETS if w.notebook == widget.notebook and w.name == widget.name]
    index = same.index(widget)  # the n-th listed widget of a kind is the n-th one shown
    element = notebook.page.locator(f".yolo-teach-widget.yt-{widget.name}").nth(index)
    element.locator("img.yt-picture").wait_for(state="visible", timeout=REACT_S * 1000)
    element.scroll_into_view_if_needed()
    notebook.page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0",
        arg=element.locator("img.yt-picture").element_handle(), timeout=REACT_S * 1000)
    stem = str(widget) if index == 0 else f"{widget}-{index}"
    folder = screenshot_dir()
    before = state(element)
    check_picture(before, f"{widget} before")
    element.screenshot(path=folder / f"{stem}-before.png", animations="disabled")
    now = before
    for step in widget.moves:
        move(element, step)
        now = wait_for_change(notebook, element, now, f"{widget}: {step}")
        check_picture(now, f"{widget} after {step}")
    element.screenshot(path=folder / f"{stem}-after.png", animations="disabled")


def widget_functions() -> set[str]:
    """Names of the functions in ``yolo_teach.viz`` that return a ``WidgetPanel``."""
    import yolo_teach.viz

    names = set()
    for info in pkgutil.iter_modules(yolo_teach.viz.__path__, "yolo_teach.viz."):
        module = importlib.import_module(info.name)
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if inspect.signature(function).return_annotation in ("WidgetPanel",
                                                                 module.__dict__.get("WidgetPanel")):
                names.add(name)
    return names


def test_unlisted_notebooks_show_no_widget():
    """A notebook outside ``WIDGETS`` neither calls a widget function nor stores a widget view."""
    functions = widget_functions()
    assert {"iou_playground", "prediction_explorer"} <= functions, functions
    call = re.compile(r"(?<![\w.])(?:\w+\.)*(" + "|".join(sorted(functions)) + r")\(")
    found = []
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        if path.stem in NOTEBOOKS:
            continue
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"])
            calls = call.findall(source)
            views = [o for o in cell.get("outputs", [])
                     if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
            if cell["cell_type"] == "code" and (calls or views):
                found.append(f"{path.name}: {calls or 'a stored widget view'}")
    assert not found, f"widgets not in WIDGETS: {found}"


def test_the_served_copy_drops_the_live_training_cells_and_keeps_every_widget(tmp_path):
    """Each notebook of ``NOTEBOOKS`` loses its ``live-training`` cells, and only those."""
    spec = importlib.util.spec_from_file_location("browser_conftest", Path(__file__).with_name(
        "conftest.py"))
    served = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(served)
    LIVE_TRAINING, drop_live_training = served.LIVE_TRAINING, served.drop_live_training

    dropped = {}
    for name in NOTEBOOKS:
        path = tmp_path / f"{name}.ipynb"
        shutil.copy(REPO / "notebooks" / path.name, path)
        before = json.loads(path.read_text())["cells"]
        tagged = [c for c in before if LIVE_TRAINING in c.get("metadata", {}).get("tags", [])]
        assert all(c["cell_type"] == "code" for c in tagged), name
        dropped[name] = drop_live_training(path)
        after = json.loads(path.read_text())["cells"]
        assert dropped[name] == len(tagged) == len(before) - len(after)
        assert [c for c in before if c not in tagged] == after
        calls = [w.name.replace("-", "_") + "(" for w in WIDGETS if w.notebook == name]
        assert all(any(call in "".join(c["source"]) for c in after) for call in calls), name
    assert dropped["16_refinedet"] and dropped["06_yolov3_multiscale"]
