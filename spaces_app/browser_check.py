"""End-to-end check in a real browser: headless Chromium loads the Space, which runs the first ARC example on load
(`demo.load`), and a screenshot is saved once the model's answer is on the page. Chromium is driven through the
DevTools protocol over `--remote-debugging-pipe` (no extra Python package), because `--virtual-time-budget`
screenshots are taken before the queue's server-sent events deliver the result.

    python spaces_app/browser_check.py --output outputs/space_screenshot.png          # starts the app itself
    python spaces_app/browser_check.py --url http://127.0.0.1:7860/ --output shot.png  # an app already running

Exit status 0 when the screenshot was written and is not blank; 2 when no Chromium is installed.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import importlib.util
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class ChromiumPipe:
    """A minimal Chrome DevTools Protocol client over `--remote-debugging-pipe` (fd 3 in, fd 4 out, NUL-framed
    JSON), so no websocket library is needed."""

    def __init__(self, chromium: str, flags: list[str]):
        cmd_read, self._cmd_write = os.pipe()
        self._res_read, res_write = os.pipe()

        def wire_fds():  # in the child: fd 3 = commands to Chromium, fd 4 = its replies
            # From a plain shell (only fds 0-2 open) the pipe ends themselves land on 3-6: a dup2 of fd 3 onto
            # itself would leave it close-on-exec (Chromium then has no fd 3 and we get BrokenPipeError), and the
            # second dup2 could overwrite an end not yet copied. So copy both ends above 4 first (close-on-exec, so
            # the copies do not leak), then onto 3 and 4 (a dup2 onto another fd makes the target inheritable).
            commands = fcntl.fcntl(cmd_read, fcntl.F_DUPFD_CLOEXEC, 5)
            replies = fcntl.fcntl(res_write, fcntl.F_DUPFD_CLOEXEC, 5)
            os.dup2(commands, 3)
            os.dup2(replies, 4)

        self.process = subprocess.Popen(
            [chromium, *flags, "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=wire_fds,
            close_fds=False,
        )
        os.close(cmd_read)
        os.close(res_write)
        self._buffer = b""
        self._next_id = 0

    def call(self, method: str, params: dict | None = None, session_id: str | None = None, timeout: float = 30.0):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        os.write(self._cmd_write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no reply to {method} within {timeout} s")
            ready, _, _ = select.select([self._res_read], [], [], remaining)
            if ready:
                chunk = os.read(self._res_read, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium exited: {self.process.stderr.read().decode()[-2000:]}")
                self._buffer += chunk

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - it may already be gone
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._cmd_write)
        os.close(self._res_read)


# True once the ARC example that `demo.load` runs has finished and its answer image has loaded.
ARC_DONE_JS = """(() => {
  const status = document.querySelector('#arc-status');
  const imgs = [...document.querySelectorAll('#arc-prediction img, #arc-steps img')];
  return !!status && /Halting fired|Invalid input|went wrong/.test(status.innerText)
         && imgs.length >= 2 && imgs.every(i => i.complete && i.naturalWidth > 0);
})()"""


def screenshot(url: str, output: Path, window_size: str = "1280,1400", timeout_s: float = 90.0) -> dict:
    """Headless Chromium (flags from HF-NOTES) opens `url`, waits until the ARC example has run, saves a PNG."""
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("no Chromium found (apt-get install chromium)")
    output = Path(output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.exists():
        output.unlink()
    width, height = (int(v) for v in window_size.split(","))
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
        ]
        browser = ChromiumPipe(chromium, flags)
        try:
            target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            browser.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                session,
            )
            browser.call("Page.enable", session_id=session)
            browser.call("Page.navigate", {"url": url}, session)
            start, done = time.monotonic(), False
            while time.monotonic() - start < timeout_s:
                result = browser.call("Runtime.evaluate", {"expression": ARC_DONE_JS, "returnByValue": True}, session)
                if result.get("result", {}).get("value") is True:
                    done = True
                    break
                time.sleep(0.5)
            time.sleep(0.5)  # let the last images paint
            shot = browser.call("Page.captureScreenshot", {"format": "png"}, session)
            output.write_bytes(base64.b64decode(shot["data"]))
            status = browser.call(
                "Runtime.evaluate",
                {"expression": "document.querySelector('#arc-status')?.innerText || ''", "returnByValue": True},
                session,
            )["result"].get("value", "")
        finally:
            browser.close()
    if not done:
        raise TimeoutError(f"the ARC example did not finish within {timeout_s} s (screenshot of the state: {output})")
    return {"status": status, "seconds": round(time.monotonic() - start, 1)}


def check_png(path: Path, min_colours: int = 8) -> dict:
    """The PNG is a real page (many colours, ARC palette colours present), not a blank or error screen."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    palette_hits = {
        name: any(tuple(c) == rgb for _, c in colours)
        for name, rgb in {"arc_blue": (0, 116, 217), "arc_red": (255, 65, 54), "arc_yellow": (255, 220, 0)}.items()
    }
    summary = {"size": image.size, "colours": len(colours), "arc_palette": palette_hits}
    if len(colours) < min_colours:
        raise RuntimeError(f"screenshot looks blank: {summary}")
    return summary


def run_app_and_screenshot(output: Path, **kwargs) -> dict:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # The Space's module (with its module-level `demo`), loaded from its file as the Space runs it.
    spec = importlib.util.spec_from_file_location("app", HERE / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)

    _, url, _ = app.demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **app.LAUNCH_KWARGS)
    try:
        page = screenshot(url, output, **kwargs)
    finally:
        app.demo.close()
    return {**page, **check_png(output)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="outputs/space_screenshot.png", help="PNG to write")
    parser.add_argument("--url", default=None, help="screenshot this running app instead of starting one")
    parser.add_argument("--window_size", default="1280,1400")
    parser.add_argument("--timeout_s", type=float, default=90.0, help="how long to wait for the ARC example")
    args = parser.parse_args()
    if find_chromium() is None:
        print("no Chromium found (apt-get install chromium)", file=sys.stderr)
        return 2
    output = Path(args.output)
    if args.url:
        summary = {**screenshot(args.url, output, args.window_size, args.timeout_s), **check_png(output)}
    else:
        summary = run_app_and_screenshot(output, window_size=args.window_size, timeout_s=args.timeout_s)
    print(f"screenshot written to {output}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
