"""The container every widget of the course returns, and how a widget draws its picture.

A :class:`WidgetPanel` is an ``ipywidgets.VBox`` that also knows its picture, its controls and
its ``update`` function, and that carries a **static view**: when the notebook is displayed
without a kernel (GitHub, nbviewer, an untrusted JupyterLab) the PNG of the widget's first view
is shown instead of the text ``VBox(...)``. A live JupyterLab prefers the widget itself.

Every panel and control carries CSS classes (``yolo-teach-widget``, ``yt-<name>``,
``yt-control-<key>``, ``yt-picture``, ``yt-text``) so the browser tests find them.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Mapping, Sequence

import ipywidgets as widgets
from matplotlib.figure import Figure
from matplotlib.text import Text

MIN_TEXT_PX = 9.0  # smallest text a widget draws, in screen pixels at 100 % zoom


def show_figure(image: widgets.Image, fig: Figure) -> None:
    """Render ``fig`` as a PNG into ``image`` at its natural size: how every widget redraws.

    A core ``ipywidgets.Image`` works under any matplotlib backend and avoids the nbclient
    stall seen with ``Output`` + ``display(fig)`` during notebook execution. Any other widget
    is a ``TypeError``: setting ``.value`` on an ``Output`` would silently show nothing. The
    image's layout is set to the PNG's pixel size, so a flex container cannot stretch it.
    """
    if not isinstance(image, widgets.Image):
        raise TypeError(f"show_figure draws into an ipywidgets.Image, got {type(image).__name__}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi)
    width, height = (round(v * fig.dpi) for v in fig.get_size_inches())
    image.layout.width, image.layout.height = f"{width}px", f"{height}px"
    image.layout.flex, image.layout.align_self = "0 0 auto", "flex-start"
    image.value = buffer.getvalue()


def smallest_text_px(fig: Figure) -> float:
    """Size in screen pixels of the smallest non-empty text drawn in ``fig`` (inf if none)."""
    sizes = [t.get_fontsize() * fig.dpi / 72 for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip()]
    return min(sizes, default=float("inf"))


def scrolling(html: widgets.HTML, max_height: str = "16em") -> widgets.Box:
    """``html`` in a box of at most ``max_height`` that scrolls: long tables stay in place."""
    return widgets.Box([html], layout=widgets.Layout(max_height=max_height, overflow="auto",
                                                     flex="0 0 auto"))


class WidgetPanel(widgets.VBox):
    """A widget: ``rows`` of controls and views, with its picture's PNG as a static view.

    ``controls`` maps a name to a control (or a list of them), ``update()`` redraws and returns
    what it computed, ``figure`` is the matplotlib figure drawn into ``picture``.
    """

    def __init__(self, name: str, rows: Sequence[widgets.Widget], picture: widgets.Image,
                 controls: Mapping, update: Callable, figure: Figure | None = None,
                 texts: Sequence[widgets.HTML] = ()):
        super().__init__(list(rows))
        self.add_class("yolo-teach-widget")
        self.add_class(f"yt-{name}")
        picture.add_class("yt-picture")
        for text in texts:
            text.add_class("yt-text")
        for key, control in controls.items():
            for c in control if isinstance(control, list | tuple) else [control]:
                c.add_class(f"yt-control-{key}")
        self.name, self.picture, self.texts = name, picture, list(texts)
        self.controls, self.update, self.figure = controls, update, figure

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        if self.picture.value:
            bundle["image/png"] = base64.b64encode(self.picture.value).decode("ascii")
        bundle["text/plain"] = (f"[{self.name}: interactive widget; run the notebook to use its "
                                "controls. Its first view is stored as a picture.]")
        return bundle
