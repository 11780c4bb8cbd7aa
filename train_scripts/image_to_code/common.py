"""What the three image → code languages share: the error type, the colour table, the fonts, the image size.

Nothing here (or anywhere in this package) executes a program: each language is *parsed* into plain data by a
whitelist parser and drawn with PIL. A program outside the whitelist is a `SpecError` (a `ValueError`) that names
what was refused.
"""

from __future__ import annotations

import os
from functools import lru_cache

import matplotlib
import numpy as np
from PIL import ImageFont

# Every image of this package is drawn at this side (px); the processor resizes it to the model's canvas.
IMAGE_SIZE = 128
# Longest program any parser accepts: bounds the work a (possibly hostile) prediction can cause.
MAX_PROGRAM_CHARS = 1000

# CSS named colours with clearly different RGB values: the generator draws from these, the parsers accept them
# (and #rgb / #rrggbb hex).
NAMED_COLOURS = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
    "red": (255, 0, 0),
    "green": (0, 128, 0),
    "blue": (0, 0, 255),
    "navy": (0, 0, 128),
    "teal": (0, 128, 128),
    "orange": (255, 165, 0),
    "purple": (128, 0, 128),
    "yellow": (255, 255, 0),
    "pink": (255, 192, 203),
}

# Fonts shipped inside matplotlib (a dependency of the package): DejaVu Sans for UI text and charts, DejaVu Sans
# Mono for code. Drawn by PIL, never by matplotlib.
_FONT_DIR = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
FONT_FILES = {"sans": "DejaVuSans.ttf", "bold": "DejaVuSans-Bold.ttf", "mono": "DejaVuSansMono.ttf"}


class SpecError(ValueError):
    """A program is outside its language's safe subset (or cannot be drawn); the message names the problem."""


@lru_cache(maxsize=None)
def font(style: str, size: int) -> ImageFont.FreeTypeFont:
    if style not in FONT_FILES:
        raise ValueError(f"unknown font style {style!r}; known: {sorted(FONT_FILES)}")
    return ImageFont.truetype(os.path.join(_FONT_DIR, FONT_FILES[style]), size)


def parse_colour(value: str, where: str) -> tuple[int, int, int]:
    """A named colour of `NAMED_COLOURS`, `#rgb` or `#rrggbb` → an RGB triple."""
    text = value.strip().lower()
    if text in NAMED_COLOURS:
        return NAMED_COLOURS[text]
    digits = text[1:]
    if text.startswith("#") and len(digits) in (3, 6) and all(c in "0123456789abcdef" for c in digits):
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        return tuple(int(digits[i:i + 2], 16) for i in (0, 2, 4))
    raise SpecError(f"{where}: {value!r} is not a colour (named: {', '.join(NAMED_COLOURS)}; or #rgb / #rrggbb)")


def check_program_text(code, kind: str) -> str:
    """The program as a str of at most MAX_PROGRAM_CHARS printable ASCII characters (plus newline)."""
    if not isinstance(code, str):
        raise SpecError(f"a {kind} program must be a str, got {type(code).__name__}")
    if not code.strip():
        raise SpecError(f"the {kind} program is empty")
    if len(code) > MAX_PROGRAM_CHARS:
        raise SpecError(f"the {kind} program has {len(code)} characters; at most {MAX_PROGRAM_CHARS} are accepted")
    for position, char in enumerate(code):
        if char != "\n" and not " " <= char <= "~":
            raise SpecError(f"the {kind} program has character U+{ord(char):04X} at position {position}; only "
                            "printable ASCII and newlines are accepted")
    return code


def blank_image(colour=(255, 255, 255), size: int = IMAGE_SIZE) -> np.ndarray:
    return np.full((size, size, 3), colour, dtype=np.uint8)
