"""Helpers for tests/test_browser.py: a throwaway JupyterLab server and the JavaScript that drives it.

The server runs on 127.0.0.1 at a free port with a random token, with its own config, data, runtime,
settings and workspace folders under a temporary directory, so nothing of the user's Jupyter setup
leaks in and nothing is written outside it. ``window.jupyterapp`` is exposed so the test can run
JupyterLab commands (as JupyterLab's own Galata tests do).
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Text that ipywidgets' JupyterLab manager shows when a widget cannot be displayed.
WIDGET_ERRORS = ("Error displaying widget", "Failed to load model class", "Failed to load view class",
                 "Failed to create view", "Could not create")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JupyterLab:
    """``JupyterLab(root, tmp)`` starts the server; ``url(path)`` gives a page address; ``stop()``."""

    def __init__(self, root: Path, tmp: Path, timeout: float = 60.0):
        self.port, self.token = free_port(), secrets.token_hex(16)
        settings = tmp / "settings" / "@jupyterlab" / "notebook-extension"
        settings.mkdir(parents=True)
        # Render every cell (no windowing), so the explorer's output is in the page wherever it scrolls;
        # do not ask about (and fetch) Jupyter news.
        (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
        news = tmp / "settings" / "@jupyterlab" / "apputils-extension"
        news.mkdir(parents=True)
        (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
        env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp / "config"), "JUPYTER_DATA_DIR": str(tmp / "data"),
               "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"), "IPYTHONDIR": str(tmp / "ipython"),
               "JUPYTER_PLATFORM_DIRS": "1"}
        self.log_path = tmp / "jupyterlab.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
             "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={tmp / 'settings'}",
             f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             "--LabApp.extension_manager=readonly",  # no queries to PyPI
             *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],  # CI containers
            cwd=root, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self._wait_until_up(timeout)
        except BaseException:
            self.stop()
            raise

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}?token={self.token}&reset"

    def _wait_until_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        status = f"http://127.0.0.1:{self.port}/api/status?token={self.token}"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(status, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        raise TimeoutError(f"JupyterLab did not answer within {timeout:.0f} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()[-4000:]

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s); its kernels go with it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


# JavaScript run in the page. The current widget is the notebook opened by the URL.
NOTEBOOK_READY = """() => {
    const app = window.jupyterapp;
    const panel = app && app.shell.currentWidget;
    const session = panel && panel.sessionContext && panel.sessionContext.session;
    return !!(panel && panel.context && panel.context.isReady && session && session.kernel
              && session.kernel.status === 'idle');
}"""

# Clear the saved outputs (and execution counts), then run the first code cell (the explorer) alone;
# returns without waiting. nbval runs every cell of the notebook; here the browser is under test.
RUN_FIRST_CODE_CELL = """async () => {
    const app = window.jupyterapp;
    await app.commands.execute('notebook:clear-all-cell-outputs');
    const notebook = app.shell.currentWidget.content;
    notebook.activeCellIndex = notebook.widgets.findIndex(cell => cell.model.type === 'code');
    app.commands.execute('notebook:run-cell');
}"""

# Of the first ``count`` code cells: the number not yet executed (an execution count of null), the
# kernel status, and the first error output (null if none).
EXECUTION_STATE = """count => {
    const panel = window.jupyterapp.shell.currentWidget;
    const cells = panel.content.widgets.filter(cell => cell.model.type === 'code').slice(0, count);
    const pending = cells.filter(cell => cell.model.executionCount === null).length;
    const outputs = cells.flatMap(cell => cell.model.outputs.toJSON());
    const error = outputs.find(output => output.output_type === 'error');
    return {pending, status: panel.sessionContext.session.kernel.status,
            error: error ? `${error.ename}: ${error.evalue}` : null};
}"""

# The pixels of an <img>, as a data URL: equal strings mean equal images.
IMAGE_PIXELS = """img => {
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    canvas.getContext('2d').drawImage(img, 0, 0);
    return canvas.toDataURL();
}"""

# Click ``button`` and resolve with the milliseconds until ``target``'s text next changes (null after
# ``timeout`` ms without a change).
CLICK_AND_TIME = """([button, target, timeout]) => new Promise(resolve => {
    const start = performance.now();
    const observer = new MutationObserver(() => {
        observer.disconnect();
        resolve(performance.now() - start);
    });
    observer.observe(target, {childList: true, subtree: true, characterData: true});
    setTimeout(() => { observer.disconnect(); resolve(null); }, timeout);
    button.click();
})"""

# Start watching ``target``: the milliseconds from the next keydown or mouseup in the page to the next
# change of ``target``'s text go into window.saeTiming (read it with READ_TIMING).
TIME_NEXT_CHANGE = """([target]) => {
    window.saeTiming = null;
    let start = null;
    const begin = () => { start = performance.now(); };
    document.addEventListener('keydown', begin, {capture: true, once: true});
    document.addEventListener('mouseup', begin, {capture: true, once: true});
    const observer = new MutationObserver(() => {
        if (start === null) return;
        observer.disconnect();
        window.saeTiming = performance.now() - start;
    });
    observer.observe(target, {childList: true, subtree: true, characterData: true});
}"""
READ_TIMING = "() => window.saeTiming"
