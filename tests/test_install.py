"""The course where learners are: a notebook opened alone (Colab) and Binder's build, each in a
fresh virtual environment without the package (issue #10).

The only substitution is the one the files allow: ``YOLO_TEACH_SOURCE`` names this checkout
instead of the repository on the web, and Binder's torch comes from the machine's CPU wheel
(``torch==2.13.0``) instead of PyTorch's index. Everything else is pip from the registry.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"  # the CPU wheel on this project's machines
pytestmark = pytest.mark.install


def _venv(path: Path, *packages: str) -> tuple[Path, dict]:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    python = path / "bin" / "python"
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "JUPYTER_PATH", "MPLBACKEND")}
    env.update(PATH=f"{path / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(path),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    if packages:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True,
                       env=env)
    return python, env


def test_a_training_notebook_alone_in_an_empty_folder_installs_what_it_needs(tmp_path):
    python, env = _venv(tmp_path / "venv", TORCH, "nbclient", "ipykernel")
    found = subprocess.run([str(python), "-c", "import yolo_teach"], env=env, cwd=tmp_path,
                           capture_output=True)
    assert found.returncode != 0  # a fresh environment: the setup cell has work to do
    folder = tmp_path / "alone"
    folder.mkdir()
    notebook = folder / "04_yolov1.ipynb"
    shutil.copy(ROOT / "notebooks" / notebook.name, notebook)
    run = (
        "import sys, nbformat; from nbclient import NotebookClient\n"
        "nb = nbformat.read(sys.argv[1], as_version=4)\n"
        "NotebookClient(nb, timeout=600, kernel_name='python3',\n"
        "               resources={'metadata': {'path': sys.argv[2]}}).execute()\n"
        "nbformat.write(nb, sys.argv[1])\n")
    env["YOLO_TEACH_SOURCE"] = str(ROOT)
    subprocess.run([str(python), "-c", run, str(notebook), str(folder)], env=env, check=True,
                   cwd=folder, timeout=900)
    assert sorted(p.name for p in folder.iterdir()) == [notebook.name]  # nothing read from ../
    cells = json.loads(notebook.read_text())["cells"]
    errors = [o for c in cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors
    subprocess.run([str(python), "-c", "import yolo_teach.paths as p; "
                    "assert p.weights('yolov1-nano-single.pt').is_file()"], env=env, check=True,
                   cwd=tmp_path)


def test_binder_requirements_and_postbuild_give_a_cpu_torch_and_the_package(tmp_path):
    lines = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    torch_line = next(line for line in lines if line.startswith("torch"))
    assert re.fullmatch(r"torch==[\d.]+\+cpu", torch_line)  # no CUDA build can satisfy it
    offline = [TORCH if line == torch_line else line for line in lines
               if not line.startswith("--")]
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(offline) + "\n")
    python, env = _venv(tmp_path / "venv")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)],
                   env=env, check=True)
    env["YOLO_TEACH_SOURCE"] = str(ROOT)
    built = subprocess.run(["bash", str(ROOT / "binder" / "postBuild")], env=env, cwd=tmp_path,
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    assert "(CPU)" in built.stdout
    lab = subprocess.run([str(python), "-m", "jupyterlab", "--version"], env=env,
                         capture_output=True, text=True)
    assert lab.returncode == 0 and lab.stdout.strip().startswith("4.")
