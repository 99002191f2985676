"""A tiny headless-Chromium driver over the DevTools protocol on a pipe (stdlib only).

Chromium started with --remote-debugging-pipe reads JSON commands from fd 3 and writes replies and
events to fd 4, each message ended by a NUL byte. Used by the browser test and by
`tests/browser.py SHOTS...` to take screenshots.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    """The first Chromium-like browser on PATH (or $CHROMIUM), else None."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


class Browser:
    """One headless browser with one page; `call` sends a command to the page and returns its result."""

    def __init__(self, binary: str, width: int = 1400, height: int = 900) -> None:
        self.profile = tempfile.mkdtemp(prefix="sgdlab-chromium-")
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()

        def fds() -> None:  # the child's fd 3 reads our commands, its fd 4 writes the replies
            os.dup2(to_child, 3)
            os.dup2(from_child, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            pass_fds=(3, 4), preexec_fn=fds, stdout=subprocess.DEVNULL,
            stderr=None if os.environ.get("SGDLAB_CHROMIUM_LOG") else subprocess.DEVNULL)
        os.close(to_child)
        os.close(from_child)
        self._buf, self._id, self.session = b"", 0, None
        self.events: list[dict] = []  # every event received (e.g. Network.requestWillBeSent)
        target = self.call("Target.createTarget", url="about:blank", browser=True)["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True, browser=True)["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Network.enable")

    def call(self, method: str, browser: bool = False, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if self.session and not browser:
            msg["sessionId"] = self.session
        os.write(self._write, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._next()
            if "method" in reply:
                self.events.append(reply)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _next(self) -> dict:
        while b"\0" not in self._buf:
            chunk = os.read(self._read, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def open(self, url: str, width: int = 1400, height: int = 900) -> None:
        """Load url in a viewport of width × height CSS pixels (mobile layout below 500 px)."""
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=width < 500)
        self.call("Page.navigate", url=url)
        for _ in range(100):  # wait for the load
            if self.js("document.readyState") == "complete":
                return
            time.sleep(0.1)
        raise RuntimeError(f"{url} did not finish loading")

    def requested(self) -> list[str]:
        """Every URL the page asked the network for since the browser started."""
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def js(self, expression: str):
        out = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in out:
            raise RuntimeError(out["exceptionDetails"])
        return out["result"].get("value")

    def key(self, key: str, code: str, vk: int) -> None:
        """A real key press (down and up) on the focused element."""
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key=key, code=code, windowsVirtualKeyCode=vk)

    def screenshot(self, path: Path, selector: str | None = None) -> None:
        """A PNG of the viewport, or of one element (scrolled into view) if selector is given."""
        params = {"format": "png"}
        if selector:
            box = self.js(f"(()=>{{const e=document.querySelector({json.dumps(selector)});e.scrollIntoView();"
                          f"const r=e.getBoundingClientRect();return [r.x,r.y,r.width,r.height]}})()")
            params["clip"] = {"x": box[0], "y": box[1] + self.js("scrollY"), "width": box[2], "height": box[3],
                              "scale": 1}
            params["captureBeyondViewport"] = True
        Path(path).write_bytes(base64.b64decode(self.call("Page.captureScreenshot", **params)["data"]))

    def close(self) -> None:
        try:
            self.call("Browser.close", browser=True)
        except RuntimeError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._write)
        os.close(self._read)
        shutil.rmtree(self.profile, ignore_errors=True)


if __name__ == "__main__":  # python tests/browser.py PAGE.html OUTDIR: screenshots of each explorable figure
    page, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    b = Browser(find_chromium())
    try:
        for width in (1400, 420):
            b.open(page.as_uri(), width, 900)
            n = b.js("document.querySelectorAll('.sgdlab-explore').length")
            for i in range(n):
                sel = "#" + b.js(f"document.querySelectorAll('.sgdlab-explore')[{i}].id")
                b.screenshot(out / f"fig{i}-{width}-initial.png", sel)
                b.js(f"(()=>{{const r=document.querySelector('{sel} input[type=range]');r.value=r.max-1;"
                     f"r.dispatchEvent(new Event('input'))}})()")
                b.js(f"(()=>{{const s=document.querySelectorAll('{sel} select');const t=s[s.length-1];"
                     f"t.value=t.options.length-1;t.dispatchEvent(new Event('change'))}})()")
                b.screenshot(out / f"fig{i}-{width}-moved.png", sel)
    finally:
        b.close()
