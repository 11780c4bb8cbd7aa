"""Text -> canvas: wrapped black text on a white square canvas, deterministic, with an explicit overflow rule.

Fonts (all installed by pip, no system font is used), tried in order for each character:
1. Pillow's embedded default FreeType font (`ImageFont.load_default(size=...)`, Aileron Regular, shipped inside
   Pillow): printable ASCII and a few typographic signs. It sets the line height, so ASCII text renders exactly as
   it always has.
2. DejaVu Sans, shipped inside matplotlib (already a dependency): Latin with accents, Greek, Cyrillic, Armenian,
   Georgian, Hebrew, Arabic, IPA, many symbols.
3. Noto Sans CJK JP 2.004 (package `noto-cjk-sans-jp-regular`, SIL OFL 1.1): Chinese, Japanese, Korean.
Fallback glyphs sit on the primary font's baseline. Coverage is decided per character from each font's cmap
(fontTools). A character that no font has (emoji, private-use or unassigned code points) is drawn as the
replacement glyph U+FFFD and REPORTED: every rendered page lists it under `undrawable` as "U+XXXX" (never
silent). Default-ignorable characters (zero-width joiners and spaces, variation selectors, bidi marks, soft hyphen)
are invisible by definition and drawn as nothing, with no advance. Text is NFC-normalised first, so "e" + combining
acute is drawn as the precomposed "é" (glyphs are placed without shaping). Emoji are not drawn (no colour font).

Control characters: "\\n" (and "\\r\\n") breaks the line, "\\t" becomes 4 spaces; any other C0/C1 control
character (U+0000-U+001F, U+007F-U+009F, a lone "\\r" included) raises ValueError naming its code point and position.

Wrapping: paragraphs split on "\\n", greedy word wrap by cached per-character advance widths, glyphs rendered once
per character (FreeType, anti-aliased) and composed with numpy (no kerning, so layout is simple and deterministic),
words longer than a line are broken by characters (so CJK text, which has no spaces, wraps by character).
Overflow rule: text that does not fit one canvas is split into pages. `render` returns the first page and
`truncated=True` (never silent); `render_pages` returns every page, each page but the last flagged
`continues=True`, so a caller can put the rest on following canvases.
Empty string: a blank canvas flagged `empty=True`. `None` or a non-string: ValueError.
"""

from __future__ import annotations

import os
import re
import unicodedata
from functools import lru_cache
from io import BytesIO

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# The package depends on all three. A Hub copy of this file is also loaded by people who installed only transformers:
# for them the fallback fonts are optional (transformers' remote-code import check skips `try` blocks), and a
# character the primary font lacks is then drawn as the replacement sign and reported, never silently.
FALLBACK_FONT_FILES = ()
try:
    import matplotlib
    import noto_cjk_sans_jp_regular
    from fontTools.ttLib import TTFont

    # Fallback fonts for characters the primary font lacks, in the order they are tried.
    FALLBACK_FONT_FILES = (
        os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf"),
        str(noto_cjk_sans_jp_regular.FONT_PATH),
    )
except ImportError:
    TTFont = None
# Drawn in place of a character no font has (DejaVu Sans has it).
REPLACEMENT_CHARACTER = "\ufffd"
# Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt): invisible by definition, so they are
# drawn as nothing, whether or not a font has a glyph for them (DejaVu draws variation selectors as dotted boxes).
DEFAULT_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
    (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)
# C0 and C1 controls except "\t", "\n" and the "\r" of "\r\n".
_CONTROL_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")


def default_font_size(canvas_size: int) -> int:
    """8 px on the 64 px tiny canvas, 14 px on 224 px."""
    return max(8, round(canvas_size / 16))


def check_control_characters(text: str) -> None:
    """ValueError naming the first control character other than "\\n", "\\r\\n" and "\\t" (code point, position)."""
    match = _CONTROL_CHARACTER.search(text)
    if match:
        ch = match.group()
        raise ValueError(
            f"text has control character U+{ord(ch):04X} ({ch!r}) at position {match.start()}; "
            "only '\\n', '\\r\\n' and '\\t' are allowed"
        )


def code_point_label(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def is_default_ignorable(ch: str) -> bool:
    cp = ord(ch)
    return any(low <= cp <= high for low, high in DEFAULT_IGNORABLE_RANGES)


def _font_code_points(font_file) -> frozenset[int]:
    with TTFont(font_file, lazy=True) as font:  # reads the cmap table only
        return frozenset(font.getBestCmap())


@lru_cache(maxsize=None)
def primary_code_points() -> frozenset[int]:
    """Code points the primary font (Pillow's embedded Aileron) maps to a glyph; the same at every size."""
    if TTFont is None:
        return frozenset(range(0x20, 0x7F))  # printable ASCII: what Aileron surely has
    source = ImageFont.load_default(size=10).path  # the embedded font's bytes, as Pillow loaded them
    return _font_code_points(BytesIO(source.getvalue()) if isinstance(source, BytesIO) else source)


@lru_cache(maxsize=None)
def fallback_code_points(index: int) -> frozenset[int]:
    """Code points fallback font `index` maps to a glyph (read once per process: the CJK cmap takes ~0.1 s)."""
    return _font_code_points(FALLBACK_FONT_FILES[index])


class TextRenderer:
    def __init__(self, canvas_size: int = 224, font_size: int | None = None, margin: int | None = None):
        self.canvas_size = int(canvas_size)
        self.font_size = int(font_size) if font_size else default_font_size(self.canvas_size)
        self.margin = int(margin) if margin is not None else max(1, self.canvas_size // 32)
        self._font = None
        self._fallback_fonts: dict[int, ImageFont.FreeTypeFont] = {}
        self._glyphs: dict = {}

    @property
    def font(self):
        if self._font is None:
            self._font = ImageFont.load_default(size=self.font_size)
            ascent, descent = self._font.getmetrics()
            self._ascent = ascent
            self._line_height = ascent + descent
        return self._font

    @property
    def line_height(self) -> int:
        _ = self.font
        return self._line_height

    @property
    def lines_per_canvas(self) -> int:
        return max(1, (self.canvas_size - 2 * self.margin) // self.line_height)

    def _fallback_font(self, index: int):
        """Loaded on first need (ASCII-only text never loads one), per renderer like the primary font."""
        font = self._fallback_fonts.get(index)
        if font is None:
            font = self._fallback_fonts[index] = ImageFont.truetype(FALLBACK_FONT_FILES[index], self.font_size)
        return font

    def _font_for(self, ch: str):
        """The first font of the chain that has `ch` (None for the primary font), or -1 when none has it."""
        cp = ord(ch)
        if cp in primary_code_points():
            return None
        for index in range(len(FALLBACK_FONT_FILES)):
            if cp in fallback_code_points(index):
                return index
        return -1

    def _glyph(self, ch: str):
        """(ink mask uint8 [h, w] or None, x offset, y offset, advance, drawable) of one character, cached."""
        glyph = self._glyphs.get(ch)
        if glyph is None:
            glyph = self._glyphs[ch] = self._render_glyph(ch)
        return glyph

    def _render_glyph(self, ch: str):
        if is_default_ignorable(ch):  # some fonts draw these as dotted boxes; Unicode says: show nothing
            return (None, 0, 0, 0.0, True)
        source = self._font_for(ch)
        if source == -1:
            # "?" when no fallback font is installed (the primary font lacks the replacement sign itself).
            replacement = REPLACEMENT_CHARACTER if self._font_for(REPLACEMENT_CHARACTER) != -1 else "?"
            mask, ox, oy, advance, _ = self._glyph(replacement)
            return (mask, ox, oy, advance, False)
        font = self.font if source is None else self._fallback_font(source)
        advance = font.getlength(ch)
        pad = self.font_size
        image = Image.new("L", (int(advance) + 2 * pad + 1, self.line_height + 2 * pad), 0)
        if source is None:
            ImageDraw.Draw(image).text((pad, pad), ch, fill=255, font=font)
        else:  # on the primary font's baseline, whatever the fallback's own ascent
            ImageDraw.Draw(image).text((pad, pad + self._ascent), ch, fill=255, font=font, anchor="ls")
        ink = np.asarray(image)
        ys, xs = np.nonzero(ink)
        if not ys.size:
            return (None, 0, 0, advance, True)
        mask = np.ascontiguousarray(ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
        return (mask, int(xs.min()) - pad, int(ys.min()) - pad, advance, True)

    def _width(self, text: str) -> float:
        total = 0.0
        for ch in text:
            total += self._glyph(ch)[3]
        return total

    def _undrawable(self, lines: list[str]) -> list[str]:
        """"U+XXXX" of each character in `lines` that no font has, once each, in order of first appearance."""
        found: dict[str, None] = {}
        for line in lines:
            if not line.isascii():  # the primary font has every printable ASCII character
                for ch in line:
                    if not self._glyph(ch)[4]:
                        found.setdefault(code_point_label(ch), None)
        return list(found)

    def undrawable_characters(self, text: str) -> list[str]:
        """"U+XXXX" of each character of `text` (all pages) that no font can draw; validates `text` like `wrap`."""
        return self._undrawable(self.wrap(text))

    def wrap(self, text: str) -> list[str]:
        """Greedy word wrap to the canvas width; returns the lines (no line is wider than the text area)."""
        if text is None or not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        check_control_characters(text)
        if not text.isascii():
            text = unicodedata.normalize("NFC", text)
        max_w = self.canvas_size - 2 * self.margin
        space = self._width(" ")
        lines: list[str] = []
        for paragraph in text.replace("\r\n", "\n").replace("\t", "    ").split("\n"):
            line, line_w = "", 0.0
            for word in paragraph.split(" "):
                word_w = self._width(word)
                if word_w > max_w:  # break an over-long word by characters
                    if line:
                        lines.append(line)
                        line, line_w = "", 0.0
                    piece, piece_w = "", 0.0
                    for ch in word:
                        ch_w = self._width(ch)
                        if piece and piece_w + ch_w > max_w:
                            lines.append(piece)
                            piece, piece_w = "", 0.0
                        piece += ch
                        piece_w += ch_w
                    line, line_w = piece, piece_w
                    continue
                if not line:
                    line, line_w = word, word_w
                elif line_w + space + word_w <= max_w:
                    line, line_w = line + " " + word, line_w + space + word_w
                else:
                    lines.append(line)
                    line, line_w = word, word_w
            lines.append(line)
        return lines

    def _draw(self, lines: list[str]) -> np.ndarray:
        """Composes cached glyph masks with numpy (max of ink), black on white; uint8 [S, S, 3]."""
        size = self.canvas_size
        ink = np.zeros((size, size), dtype=np.uint8)
        y = self.margin
        for line in lines:
            x = float(self.margin)
            for ch in line:
                mask, ox, oy, advance, _ = self._glyph(ch)
                if mask is not None:
                    x0, y0 = int(round(x)) + ox, y + oy
                    h, w = mask.shape
                    top, left = max(y0, 0), max(x0, 0)
                    bottom, right = min(y0 + h, size), min(x0 + w, size)
                    if bottom > top and right > left:
                        region = ink[top:bottom, left:right]
                        np.maximum(region, mask[top - y0 : bottom - y0, left - x0 : right - x0], out=region)
                x += advance
            y += self.line_height
        gray = 255 - ink
        return np.repeat(gray[:, :, None], 3, axis=2)

    def render_pages(self, text: str) -> list[dict]:
        """Every page of `text`: dicts with `canvas` (uint8 [S,S,3]), `continues`, `truncated` (False), `empty` and
        `undrawable` (the "U+XXXX" of the characters on that page that no font has, drawn as U+FFFD)."""
        lines = self.wrap(text)
        per = self.lines_per_canvas
        chunks = [lines[i : i + per] for i in range(0, len(lines), per)] or [[]]
        empty = text.strip() == ""
        return [
            {
                "canvas": self._draw(chunk),
                "continues": i < len(chunks) - 1,
                "truncated": False,
                "empty": empty,
                "undrawable": self._undrawable(chunk),
            }
            for i, chunk in enumerate(chunks)
        ]

    def render(self, text: str) -> dict:
        """The first page of `text`, with `truncated=True` when the rest did not fit (never silent); `undrawable`
        lists the characters on this page that no font has (see `undrawable_characters` for the whole text)."""
        lines = self.wrap(text)
        page = lines[: self.lines_per_canvas]
        return {
            "canvas": self._draw(page),
            "continues": False,
            "truncated": len(lines) > len(page),
            "empty": text.strip() == "",
            "undrawable": self._undrawable(page),
        }
