"""Text -> canvas: wrapped black text on a white square canvas, deterministic, with an explicit overflow rule.

Font: Pillow's embedded default FreeType font (`ImageFont.load_default(size=...)`, Aileron Regular, shipped
inside Pillow itself), so no system font is needed. It is loaded once per `TextRenderer` and cached there.

Wrapping: paragraphs split on "\\n", greedy word wrap by cached per-character advance widths, glyphs rendered once per character
(FreeType, anti-aliased) and composed with numpy (no kerning, so layout is simple and deterministic), words longer
than a line are broken by characters, tabs become 4 spaces.
Overflow rule: text that does not fit one canvas is split into pages. `render` returns the first page and
`truncated=True` (never silent); `render_pages` returns every page, each page but the last flagged
`continues=True`, so a caller can put the rest on following canvases.
Empty string: a blank canvas flagged `empty=True`. `None` or a non-string: ValueError.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def default_font_size(canvas_size: int) -> int:
    """8 px on the 64 px tiny canvas, 14 px on 224 px."""
    return max(8, round(canvas_size / 16))


class TextRenderer:
    def __init__(self, canvas_size: int = 224, font_size: int | None = None, margin: int | None = None):
        self.canvas_size = int(canvas_size)
        self.font_size = int(font_size) if font_size else default_font_size(self.canvas_size)
        self.margin = int(margin) if margin is not None else max(1, self.canvas_size // 32)
        self._font = None
        self._glyphs: dict = {}

    @property
    def font(self):
        if self._font is None:
            self._font = ImageFont.load_default(size=self.font_size)
            ascent, descent = self._font.getmetrics()
            self._line_height = ascent + descent
        return self._font

    @property
    def line_height(self) -> int:
        _ = self.font
        return self._line_height

    @property
    def lines_per_canvas(self) -> int:
        return max(1, (self.canvas_size - 2 * self.margin) // self.line_height)

    def _glyph(self, ch: str):
        """(ink mask uint8 [h, w], x offset, y offset, advance) of one character, rendered once and cached."""
        glyph = self._glyphs.get(ch)
        if glyph is None:
            font = self.font
            advance = font.getlength(ch)
            pad = self.font_size
            image = Image.new("L", (int(advance) + 2 * pad + 1, self.line_height + 2 * pad), 0)
            ImageDraw.Draw(image).text((pad, pad), ch, fill=255, font=font)
            ink = np.asarray(image)
            ys, xs = np.nonzero(ink)
            if ys.size:
                mask = np.ascontiguousarray(ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
                glyph = (mask, int(xs.min()) - pad, int(ys.min()) - pad, advance)
            else:
                glyph = (None, 0, 0, advance)
            self._glyphs[ch] = glyph
        return glyph

    def _width(self, text: str) -> float:
        total = 0.0
        for ch in text:
            total += self._glyph(ch)[3]
        return total

    def wrap(self, text: str) -> list[str]:
        """Greedy word wrap to the canvas width; returns the lines (no line is wider than the text area)."""
        if text is None or not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
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
                mask, ox, oy, advance = self._glyph(ch)
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
        """Every page of `text`: dicts with `canvas` (uint8 [S,S,3]), `continues`, `truncated` (False), `empty`."""
        lines = self.wrap(text)
        per = self.lines_per_canvas
        chunks = [lines[i : i + per] for i in range(0, len(lines), per)] or [[]]
        empty = text.strip() == ""
        return [
            {"canvas": self._draw(chunk), "continues": i < len(chunks) - 1, "truncated": False, "empty": empty}
            for i, chunk in enumerate(chunks)
        ]

    def render(self, text: str) -> dict:
        """The first page of `text`, with `truncated=True` when the rest did not fit (never silent)."""
        lines = self.wrap(text)
        per = self.lines_per_canvas
        return {
            "canvas": self._draw(lines[:per]),
            "continues": False,
            "truncated": len(lines) > per,
            "empty": text.strip() == "",
        }
