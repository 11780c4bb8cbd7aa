"""Text canvases: scripts beyond ASCII drawn distinctly from pip-installed fonts, undrawable characters reported,
control characters refused, ASCII rendering exactly as before the font fallback existed."""

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vision_trm.processing import TextRenderer, TRMImageProcessor

DATA = Path(__file__).resolve().parent / "data"
# The string the fixtures tests/data/ascii_text_{64,224}px.png were rendered from, by the renderer before fallback
# fonts existed (Pillow 12.3): every printable ASCII character, a tab, "\n" and "\r\n".
ASCII_TEXT = (
    "The quick brown fox jumps over the lazy dog. 0123456789\n"
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\tTabs\r\nWindows line"
)
UNDRAWABLE = "\ue000"  # private use: no font has it


@pytest.fixture(scope="module", params=[64, 224])
def renderer(request):
    return TextRenderer(request.param)


def canvas(renderer, text):
    return renderer.render(text)["canvas"]


@pytest.mark.parametrize("size", [64, 224])
def test_ascii_rendering_is_unchanged(size):
    page = TextRenderer(size).render(ASCII_TEXT)
    reference = np.asarray(Image.open(DATA / f"ascii_text_{size}px.png")).astype(int)
    assert page["canvas"].shape == (size, size, 3) and page["undrawable"] == []
    # Identical on the Pillow the fixture came from; another FreeType build may shade a few edge pixels
    # differently, but a changed font, size or baseline (even a 1 px shift) moves >4% of the pixels.
    moved = np.abs(page["canvas"][:, :, 0].astype(int) - reference) > 64
    assert moved.mean() <= 0.005, f"{moved.mean():.2%} of the pixels differ from the pre-fallback rendering"


@pytest.mark.parametrize("pair", [("é", "e"), ("Ж", "Ë"), ("漢", "字"), ("Ω", "O"), ("한", "カ")])
def test_scripts_beyond_ascii_render_distinctly(renderer, pair):
    box = canvas(renderer, UNDRAWABLE)
    first, second = (canvas(renderer, ch) for ch in pair)
    assert (first < 128).any() and (second < 128).any()
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, box) and not np.array_equal(second, box)
    assert all(renderer.render(ch)["undrawable"] == [] for ch in pair)


def test_fallback_glyphs_sit_inside_their_line(renderer):
    """Fallback fonts are placed on the primary font's baseline: a CJK glyph on line 2 stays within line 2."""
    ink_rows = np.nonzero((canvas(renderer, "x\n漢") < 128).any(axis=(1, 2)))[0]
    line2_top = renderer.margin + renderer.line_height
    line2 = ink_rows[ink_rows >= line2_top]
    assert line2.size and line2.max() < line2_top + renderer.line_height


def test_undrawable_characters_are_reported_with_code_points(renderer):
    text = f"a{UNDRAWABLE}b🙂\u0378{UNDRAWABLE}"  # private use, emoji, unassigned; repeated once
    page = renderer.render(text)
    assert page["undrawable"] == ["U+E000", "U+1F642", "U+0378"]
    assert renderer.undrawable_characters(text) == ["U+E000", "U+1F642", "U+0378"]
    # Drawn as a visible replacement glyph, not dropped.
    assert not np.array_equal(page["canvas"], canvas(renderer, "ab"))
    assert renderer.render("plain ASCII, Café, Жук, 漢字")["undrawable"] == []


def test_processor_exposes_undrawable_per_page():
    processor = TRMImageProcessor(canvas_size=64)
    text = "word " * 60 + UNDRAWABLE  # the undrawable character lands on the last page only
    pages = processor.render_text_pages(text)
    assert len(pages) > 1
    assert [page["undrawable"] for page in pages] == [[]] * (len(pages) - 1) + [["U+E000"]]
    assert processor.render_text(text)["undrawable"] == []  # not on the first canvas, which is all that is drawn
    assert processor.render_text(f"x{UNDRAWABLE}")["undrawable"] == ["U+E000"]
    assert processor.text_renderer.undrawable_characters(text) == ["U+E000"]


@pytest.mark.parametrize(
    "text, code_point, position",
    [("a\x00b", "U+0000", 1), ("bell\x07", "U+0007", 4), ("\x1b[31m", "U+001B", 0), ("x\x0by", "U+000B", 1),
     ("x\x0cy", "U+000C", 1), ("del\x7f", "U+007F", 3), ("\x85", "U+0085", 0), ("é\x9f", "U+009F", 1),
     ("lone\rreturn", "U+000D", 4)],
)
def test_control_characters_raise_naming_code_point_and_position(text, code_point, position):
    processor = TRMImageProcessor(canvas_size=64)
    for render in (processor.render_text, processor.render_text_pages):
        with pytest.raises(ValueError, match=rf"{re.escape(code_point)} .* at position {position}\b"):
            render(text)


def test_newline_tab_and_crlf_keep_their_layout_meaning(renderer):
    assert np.array_equal(canvas(renderer, "a\tb"), canvas(renderer, "a    b"))
    assert np.array_equal(canvas(renderer, "a\r\nb"), canvas(renderer, "a\nb"))
    assert not np.array_equal(canvas(renderer, "a\nb"), canvas(renderer, "a b"))


def test_default_ignorable_characters_draw_nothing_and_are_not_flagged(renderer):
    for text, plain in [("❤\ufe0f", "❤"), ("a\u200db\u200bc", "abc"), ("\ufeffhi", "hi")]:
        page = renderer.render(text)
        assert np.array_equal(page["canvas"], canvas(renderer, plain)) and page["undrawable"] == []


def test_combining_sequence_draws_like_the_precomposed_character(renderer):
    assert np.array_equal(canvas(renderer, "e\u0301"), canvas(renderer, "é"))


def test_cjk_text_wraps_by_character_inside_the_canvas(renderer):
    lines = renderer.wrap("漢字" * 40)
    assert len(lines) > 1 and "".join(lines) == "漢字" * 40
    assert all(renderer._width(line) <= renderer.canvas_size - 2 * renderer.margin for line in lines)


def test_mixed_script_rendering_is_deterministic():
    text = "Ελληνικά, Кириллица, 日本語, 한국어 — é"
    assert np.array_equal(canvas(TextRenderer(64), text), canvas(TextRenderer(64), text))


def test_processor_reports_undrawable_characters_per_row_and_warns(caplog):
    from vision_trm.processing import TRMProcessor

    processor = TRMProcessor()
    with caplog.at_level("WARNING"):
        batch = processor(["plain", "smile \U0001F642 and \ue000"], return_bookkeeping=True)
    assert batch["undrawable_characters"] == [[], ["U+1F642", "U+E000"]]
    assert "U+1F642" in caplog.text
    assert "undrawable_characters" not in processor(["smile \U0001F642"])


def test_without_fallback_fonts_non_ascii_is_flagged_not_lost(monkeypatch):
    """A Hub copy loaded without the optional font packages: the primary font only, every other character flagged."""
    from vision_trm.processing import text_rendering

    monkeypatch.setattr(text_rendering, "FALLBACK_FONT_FILES", ())
    monkeypatch.setattr(text_rendering, "TTFont", None)
    text_rendering.primary_code_points.cache_clear()
    try:
        result = text_rendering.TextRenderer(64).render("h\u00e9llo \u6f22")
        ascii_only = text_rendering.TextRenderer(64).render("hello")
    finally:
        text_rendering.primary_code_points.cache_clear()
    assert result["undrawable"] == ["U+00E9", "U+6F22"]
    assert ascii_only["undrawable"] == []
    assert not np.array_equal(np.asarray(result["canvas"]), np.asarray(ascii_only["canvas"]))
