"""Open a local HTML page in headless Chromium and report what went wrong, over DevTools.

Chromium listens on 127.0.0.1 only (``--remote-debugging-port=0`` picks a free
port, written to ``DevToolsActivePort`` in its profile folder); the page is
loaded from a ``file://`` URL; console errors, uncaught exceptions and failed
loads are collected, every ``<img>`` is checked for a decoded size, and a
full-page screenshot is saved. The browser is stopped at the end.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)

_BROKEN_IMAGES = (
    "JSON.stringify(Array.from(document.images)"
    ".filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src))"
)


def chromium_path() -> str | None:
    """The Chromium executable, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def why_no_browser() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    if chromium_path() is None:
        return "chromium is not installed (apt-get install chromium; .ci/run installs it)"
    try:
        import websockets.sync.client  # noqa: F401
    except ImportError:
        return "the websockets package is not installed (pip install -e '.[test]')"
    return None


@dataclass
class PageCheck:
    """What loading one page showed."""

    errors: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    image_count: int = 0
    title: str = ""


class _DevTools:
    def __init__(self, socket):
        self.socket = socket
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, timeout: float = 30.0, **params) -> dict:
        self.next_id += 1
        message_id = self.next_id
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30.0) -> None:
        if any(e.get("method") == method for e in self.events):
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            self.events.append(message)
            if message.get("method") == method:
                return
        raise TimeoutError(f"no {method} within {timeout} s")


def _page_socket(profile: Path, process: subprocess.Popen, timeout: float = 180.0) -> str:
    """The DevTools WebSocket URL of the browser's first page, once it is up (a server start:
    polled, with a limit far above the few seconds it takes on a loaded machine)."""
    import urllib.request

    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while not port_file.exists() or not port_file.read_text().strip():
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited ({process.returncode}) before its DevTools server")
        if time.monotonic() > deadline:
            raise RuntimeError(f"chromium did not start its DevTools server in {timeout:.0f} s")
        time.sleep(0.1)
    port = int(port_file.read_text().split()[0])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
        targets = json.load(reply)
    return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")


def _load(tools: _DevTools, page: Path, screenshot: Path, width: int, height: int):
    """Navigate to ``page``, wait for its load event, query it, save the screenshot."""
    for domain in ("Page", "Runtime", "Log", "Network"):
        tools.call(f"{domain}.enable")
    tools.call(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=height,
        deviceScaleFactor=1,
        mobile=False,
    )
    tools.call("Page.navigate", url=page.resolve().as_uri())
    tools.wait_for("Page.loadEventFired", timeout=180)
    found = tools.call("Runtime.evaluate", expression=_BROKEN_IMAGES, returnByValue=True)
    count = tools.call("Runtime.evaluate", expression="document.images.length", returnByValue=True)
    title = tools.call("Runtime.evaluate", expression="document.title", returnByValue=True)
    metrics = tools.call("Page.getLayoutMetrics")
    size = metrics["cssContentSize"]
    shot = tools.call(
        "Page.captureScreenshot",
        format="png",
        captureBeyondViewport=True,
        clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
    )
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    return found, count, title


def check_page(page: Path, screenshot: Path, *, width: int = 1400, height: int = 2000) -> PageCheck:
    """Load ``page`` in headless Chromium; collect errors; save a full-page screenshot."""
    with tempfile.TemporaryDirectory(prefix="xray-scale-chromium-") as folder:
        profile = Path(folder)
        process = subprocess.Popen(
            [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            from websockets.sync.client import connect

            url = _page_socket(profile, process)
            with connect(url, max_size=None, open_timeout=20) as socket:
                tools = _DevTools(socket)
                found, count, title = _load(tools, page, screenshot, width, height)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    check = PageCheck(
        broken_images=json.loads(found["result"]["value"]),
        image_count=int(count["result"]["value"]),
        title=str(title["result"]["value"]),
    )
    for event in tools.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            check.errors.append(f"console: {params.get('args')}")
        elif method == "Runtime.exceptionThrown":
            check.errors.append(f"exception: {params.get('exceptionDetails', {}).get('text')}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            check.errors.append(f"log: {entry.get('text')} {entry.get('url', '')}")
        elif method == "Network.loadingFailed":
            check.errors.append(f"load failed: {params.get('errorText')}")
    return check
