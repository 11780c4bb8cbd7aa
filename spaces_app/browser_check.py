"""End-to-end check in a real browser: headless Chromium loads the Space, which runs the first ARC example on load
(`demo.load`), and a screenshot is saved.

    python spaces_app/browser_check.py --output outputs/space_screenshot.png          # starts the app itself
    python spaces_app/browser_check.py --url http://127.0.0.1:7860/ --output shot.png  # an app already running

Exit status 0 when the screenshot was written and is not blank; 2 when no Chromium is installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(url: str, output: Path, window_size: str = "1280,1400", budget_ms: int = 15000, timeout_s: int = 120) -> None:
    """Headless Chromium (flags from HF-NOTES) renders `url` and writes a PNG to `output`."""
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("no Chromium found (apt-get install chromium)")
    output = Path(output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.exists():
        output.unlink()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [
            chromium,
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
            f"--window-size={window_size}",
            f"--virtual-time-budget={budget_ms}",
            f"--screenshot={output}",
            url,
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    if result.returncode != 0 or not output.is_file():
        raise RuntimeError(f"chromium failed (exit {result.returncode}): {result.stderr[-2000:]}")


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
    sys.path.insert(0, str(HERE))
    import app  # noqa: E402 - the Space's module, with its module-level `demo`

    _, url, _ = app.demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **app.LAUNCH_KWARGS)
    try:
        screenshot(url, output, **kwargs)
    finally:
        app.demo.close()
    return check_png(output)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="outputs/space_screenshot.png", help="PNG to write")
    parser.add_argument("--url", default=None, help="screenshot this running app instead of starting one")
    parser.add_argument("--window_size", default="1280,1400")
    parser.add_argument("--budget_ms", type=int, default=15000, help="Chromium --virtual-time-budget")
    args = parser.parse_args()
    if find_chromium() is None:
        print("no Chromium found (apt-get install chromium)", file=sys.stderr)
        return 2
    output = Path(args.output)
    if args.url:
        screenshot(args.url, output, args.window_size, args.budget_ms)
        summary = check_png(output)
    else:
        summary = run_app_and_screenshot(output, window_size=args.window_size, budget_ms=args.budget_ms)
    print(f"screenshot written to {output}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
