"""Code screenshots: a short Python program drawn as an image (the target is the program's text).

Drawing is text layout only: the program is never imported, compiled or run. "Valid" means the text parses as
Python (`ast.parse`, which builds a syntax tree and runs nothing); a syntactically valid program that would do harm
if run is still only drawn.

Layout: DejaVu Sans Mono 10 px, dark grey on an off-white editor background, 4 px margins, one program line per
image line (13 px apart: 9 lines of 20 characters fit; anything past the edges is clipped, not wrapped).
"""

from __future__ import annotations

import ast

import numpy as np
from PIL import Image, ImageDraw

from .common import IMAGE_SIZE, SpecError, check_program_text, font

BACKGROUND = (250, 250, 245)
INK = (30, 30, 30)
FONT_SIZE = 10
LINE_HEIGHT = 13
MARGIN = 4
MAX_LINES = 40


def parse_code(code: str) -> ast.Module:
    """The program's syntax tree (never compiled or run), or `SpecError` when it is not valid Python."""
    check_program_text(code, "code")
    try:
        return ast.parse(code, mode="exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as error:
        raise SpecError(f"the program is not valid Python syntax: {error}") from None


def render_code(code: str) -> np.ndarray:
    """The program's text drawn as uint8 RGB [IMAGE_SIZE, IMAGE_SIZE, 3]. Any printable-ASCII text can be drawn,
    valid Python or not (the render-back metric scores the text's look; validity is scored separately)."""
    check_program_text(code, "code")
    lines = code.split("\n")
    if len(lines) > MAX_LINES:
        raise SpecError(f"the program has {len(lines)} lines; at most {MAX_LINES} are drawn")
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUND)
    draw = ImageDraw.Draw(image)
    face = font("mono", FONT_SIZE)
    for index, line in enumerate(lines):
        if line:
            draw.text((MARGIN, MARGIN + index * LINE_HEIGHT), line, fill=INK, font=face)
    return np.asarray(image)
