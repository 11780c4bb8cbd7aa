"""End-to-end check in a real browser: `spaces_app/browser_check.py` starts the Space, headless Chromium loads the
page, the first ARC example runs on load, and a screenshot is saved. Set SPACE_SCREENSHOT=path to keep it."""

from __future__ import annotations

import base64
import functools
import io
import os
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "spaces_app" / "browser_check.py"
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def test_browser_runs_the_arc_example_and_saves_a_screenshot(tmp_path):
    # CI installs Debian's chromium (.ci/install.sh): its absence is a failure, not a reason to skip.
    assert CHROMIUM is not None, "no Chromium installed (apt-get install chromium)"
    output = Path(os.environ.get("SPACE_SCREENSHOT") or tmp_path / "space.png")
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    env.pop("MODEL_ID", None)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--output", str(output), "--timeout_s", "60"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "Halting fired at step" in result.stdout  # the page showed the model's answer
    assert output.is_file() and output.stat().st_size > 20_000
    image = Image.open(output).convert("RGB")
    assert image.size == (1280, 1400)
    colours = {rgb for _, rgb in image.getcolors(maxcolors=1 << 20)}
    assert len(colours) > 100
    # ARC palette colours drawn by the processor's renderer are on the page (blue, red, yellow).
    assert {(0, 116, 217), (255, 65, 54), (255, 220, 0)} & colours


ARC_COLOURS = {(0, 116, 217), (255, 65, 54), (255, 220, 0)}  # blue, red, yellow


def arc_like_page() -> str:
    """A static page shaped like the Space once its ARC example has run: the status line and two loaded images."""
    grid = Image.new("RGB", (90, 30))
    for index, colour in enumerate(sorted(ARC_COLOURS)):
        grid.paste(colour, (30 * index, 0, 30 * (index + 1), 30))
    buffer = io.BytesIO()
    grid.resize((270, 90), Image.NEAREST).save(buffer, format="PNG")
    image = f'<img src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'
    return (f'<html><body><p id="arc-status">Halting fired at step 2</p><div id="arc-prediction">{image}</div>'
            f'<div id="arc-steps">{image}</div></body></html>')


@pytest.fixture
def local_page(tmp_path):
    """A tiny http.server on 127.0.0.1 (any free port) serving `arc_like_page()` as index.html."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(arc_like_page())
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_url_mode_works_from_a_plain_subprocess(tmp_path, local_page):
    # A plain child (subprocess closes every fd above 2) is what a shell gives: Chromium's DevTools pipe must still
    # end up on fds 3 and 4 (it used to fail there with BrokenPipeError).
    assert CHROMIUM is not None, "no Chromium installed (apt-get install chromium)"
    output = tmp_path / "shot.png"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--url", local_page, "--output", str(output), "--timeout_s", "30",
         "--window_size", "640,480"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        close_fds=True,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert f"screenshot written to {output}" in result.stdout
    image = Image.open(output).convert("RGB")
    assert image.size == (640, 480)
    assert ARC_COLOURS <= {rgb for _, rgb in image.getcolors(maxcolors=1 << 20)}  # the page was really rendered
