"""Strip what ``jupyter nbconvert --execute`` adds but a committed notebook should not carry.

Removes the saved widget state (``metadata.widgets``) and the per-cell execution timings
(``metadata.execution``); outputs, kernelspec and language_info stay. Run it after executing
notebooks in place::

    python scripts/clean_notebooks.py notebooks/*.ipynb
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def clean(path: Path) -> bool:
    """Clean one notebook in place; ``True`` if it changed."""
    text = path.read_text()
    nb = json.loads(text)
    nb["metadata"].pop("widgets", None)
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("execution", None)
    new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}: {'cleaned' if clean(Path(name)) else 'clean'}")
