"""Fixtures of the browser tests: a JupyterLab server on a copy of the notebooks, and Chromium.

Both are session-scoped and always shut down, kernels included, even when a test fails. Without
Debian's Chromium or the ``playwright`` package the tests are skipped, unless the environment
variable ``CI`` is set: then they fail.

The copy leaves out the code cells tagged ``live-training`` (a nano trained live, and the cells
that only read that run): nbval runs and checks them in the same test session, no widget reads
them, and they are most of a training notebook's run time. A widget that did read one would
fail its notebook here with a NameError, not pass unseen.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
VIEWPORT = {"width": 1600, "height": 1000}
LIVE_TRAINING = "live-training"  # the cell tag the copy drops (see the module docstring)
SERVER_START_S = 120  # JupyterLab's first start can be slow on a busy 2-core machine

# JupyterLab user settings: every cell in the DOM, no autosave, no news pop-up
LAB_SETTINGS = {
    "notebook-extension/tracker": {"windowingMode": "none"},
    "docmanager-extension/plugin": {"autosave": False},
    "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}


def unavailable(reason: str) -> None:
    """Skip the test for a missing tool, or fail it when running in CI (env ``CI`` set)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required when CI is set)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command_line(pid: int) -> str:
    """The command line of process ``pid`` ('' when it is gone or there is no ``/proc``)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (from ``/proc``; empty where there is none)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


@dataclass
class Lab:
    """A running JupyterLab: its ``url``, the notebook folder it serves and its process."""

    url: str
    root: Path
    process: subprocess.Popen
    log: Path

    def api(self, method: str, path: str):
        """Call the server's REST API; returns the decoded JSON (None when empty)."""
        request = urllib.request.Request(f"{self.url}/api/{path}", method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Close every session and kernel, so the next notebook starts on a quiet machine."""
        for session in self.api("GET", "sessions"):
            self.api("DELETE", f"sessions/{session['id']}")
        for kernel in self.api("GET", "kernels"):
            self.api("DELETE", f"kernels/{kernel['id']}")

    def log_tail(self, n: int = 40) -> str:
        """The last ``n`` lines of the server's log, for failure messages."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def _write_settings(folder: Path) -> None:
    for plugin, values in LAB_SETTINGS.items():
        path = folder / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def _wait_until_up(lab: Lab) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited ({lab.process.returncode}):\n{lab.log_tail()}")
        try:
            lab.api("GET", "status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise RuntimeError(f"JupyterLab did not answer in {SERVER_START_S} s:\n{lab.log_tail()}")


def _stop(lab: Lab) -> None:
    """Shut the kernels down, stop the server, and kill whatever of it is still running."""
    runtime = str(lab.root.parent / "runtime")  # the kernels' connection files are there
    kernels: list[int] = []
    if lab.process.poll() is None:
        kernels = [pid for pid in child_pids(lab.process.pid) if runtime in command_line(pid)]
        try:
            lab.shutdown_kernels()
        except (urllib.error.URLError, OSError):
            pass
        lab.process.send_signal(signal.SIGTERM)
        try:
            lab.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            lab.process.kill()
            lab.process.wait(timeout=30)
    for pid in kernels:  # a kernel the server failed to stop (started in its own session)
        if runtime in command_line(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def drop_live_training(path: Path) -> int:
    """Remove the cells tagged ``live-training`` from the notebook at ``path``; how many."""
    nb = json.loads(path.read_text())
    kept = [c for c in nb["cells"] if LIVE_TRAINING not in c.get("metadata", {}).get("tags", [])]
    dropped = len(nb["cells"]) - len(kept)
    if dropped:
        nb["cells"] = kept
        path.write_text(json.dumps(nb, indent=1) + "\n")
    return dropped


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> Iterator[Lab]:
    """JupyterLab on 127.0.0.1 (free port, no token) serving a temporary copy of notebooks/."""
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        unavailable("jupyterlab is not installed")
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "notebooks"  # JupyterLab writes into what it serves: never the repository
    shutil.copytree(REPO / "notebooks", root,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for path in root.glob("*.ipynb"):
        drop_live_training(path)
    _write_settings(base / "settings")
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(base / "config"),
               JUPYTER_DATA_DIR=str(base / "data"), JUPYTER_RUNTIME_DIR=str(base / "runtime"))
    port = free_port()
    log = base / "server.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", "--ServerApp.port_retries=0", "--ServerApp.token=",
               "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
               "--ServerApp.allow_root=True",
               f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
               f"--LabApp.user_settings_dir={base / 'settings'}",
               f"--LabApp.workspaces_dir={base / 'workspaces'}",
               "--LabApp.news_url=None", "--LabApp.extension_manager=readonly"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = Lab(f"http://127.0.0.1:{port}", root, process, log)
    try:
        _wait_until_up(server)
        yield server
    finally:
        _stop(server)


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """A Playwright browser context in Debian's headless Chromium, with an empty profile."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[dev]')")
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport=VIEWPORT)
        try:
            yield context
        finally:
            context.close()
