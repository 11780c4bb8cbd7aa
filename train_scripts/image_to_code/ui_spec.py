"""UI mockups: a small HTML/CSS subset, parsed by a whitelist and drawn with PIL (no browser, no script engine).

The subset (anything else is a `SpecError` naming it):

    page    := <div style="...">element*</div>           exactly one root div; it fills the image
    element := <div style="...">element*</div>           a box, or a container of further elements
             | <button style="...">text</button>         a filled button with a 1px grey border
             | <p style="...">text</p>                   a line of text
    style   := property:value(;property:value)*[;]       the only attribute; each property at most once

    property    value                 on            default
    background  colour                div, button   div: transparent (root: white), button: #dddddd
    color       colour                button, p     black
    width       Npx (1..128)          div (not root) the content's width (+ padding)
    height      Npx (1..128)          div (not root) the content's height (+ padding)
    padding     Npx (0..32)           div, button   div 0 (root 8), button 4
    display     block | flex          div           block: children in a column; flex: in a row

Colours are `common.NAMED_COLOURS` names or #rgb / #rrggbb. Children are 6 px apart. Every box is as large as its
content unless it says its width / height (an inline-block model: simpler than CSS and deterministic). Text is
1..20 printable characters without `<`, `>` or `&` (no entities). Whitespace between tags is ignored.
At most 16 elements, nested at most 4 deep. `<script>`, event attributes, comments, entities: refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

import numpy as np
from PIL import Image, ImageDraw

from .common import IMAGE_SIZE, SpecError, check_program_text, font, parse_colour

TAGS = ("div", "button", "p")
PROPERTIES = {
    "div": ("background", "width", "height", "padding", "display"),
    "button": ("background", "color", "padding"),
    "p": ("color",),
}
GAP = 6
ROOT_PADDING = 8
BUTTON_PADDING = 4
BUTTON_BACKGROUND = (221, 221, 221)
BUTTON_BORDER = (118, 118, 118)
TEXT_SIZE = {"button": 11, "p": 12}
MAX_ELEMENTS = 16
MAX_DEPTH = 4
MAX_TEXT_CHARS = 20
_PIXELS = re.compile(r"^(\d{1,3})px$")


@dataclass
class Element:
    """One parsed element: its tag, its checked style (colours as RGB, lengths as ints) and its content."""

    tag: str
    style: dict = field(default_factory=dict)
    children: list = field(default_factory=list)
    text: str = ""


def parse_style(text: str, tag: str) -> dict:
    """`background:red;width:20px` → {"background": (255, 0, 0), "width": 20}, checked against `PROPERTIES`."""
    style = {}
    for declaration in text.split(";"):
        if not declaration.strip():
            continue
        if ":" not in declaration:
            raise SpecError(f"<{tag}> style: {declaration.strip()!r} is not a property:value pair")
        name, value = (part.strip().lower() for part in declaration.split(":", 1))
        if name not in PROPERTIES[tag]:
            raise SpecError(f"<{tag}> style: property {name!r} is not allowed (allowed: {', '.join(PROPERTIES[tag])})")
        if name in style:
            raise SpecError(f"<{tag}> style: property {name!r} is given twice")
        style[name] = _property_value(name, value, tag)
    return style


def _property_value(name: str, value: str, tag: str):
    where = f"<{tag}> style {name}"
    if name in ("background", "color"):
        return parse_colour(value, where)
    if name == "display":
        if value not in ("block", "flex"):
            raise SpecError(f"{where}: {value!r} is not block or flex")
        return value
    match = _PIXELS.match(value)
    low, high = (0, 32) if name == "padding" else (1, IMAGE_SIZE)
    if not match or not low <= int(match.group(1)) <= high:
        raise SpecError(f"{where}: {value!r} is not a length of {low}px..{high}px")
    return int(match.group(1))


class _SubsetParser(HTMLParser):
    """stdlib's HTML tokenizer with every event checked against the subset; it builds `Element`s, nothing else."""

    def __init__(self):
        super().__init__(convert_charrefs=False)
        self.stack: list[Element] = []
        self.root: Element | None = None
        self.count = 0

    def handle_starttag(self, tag, attrs):
        if tag not in TAGS:
            raise SpecError(f"tag <{tag}> is not allowed (allowed: {', '.join(f'<{t}>' for t in TAGS)})")
        names = [name for name, _ in attrs]
        if any(name != "style" for name in names) or len(names) > 1:
            raise SpecError(f"<{tag}> may only have one style attribute, got {', '.join(names)}")
        if self.root is not None and not self.stack:
            raise SpecError("the page must be a single root <div>; found a second top-level element")
        if not self.stack and tag != "div":
            raise SpecError(f"the page must start with a root <div>, not <{tag}>")
        if self.stack and self.stack[-1].tag != "div":
            raise SpecError(f"<{self.stack[-1].tag}> holds text only, not a <{tag}>")
        self.count += 1
        if self.count > MAX_ELEMENTS or len(self.stack) >= MAX_DEPTH:
            raise SpecError(f"the page is too large (at most {MAX_ELEMENTS} elements, {MAX_DEPTH} levels deep)")
        element = Element(tag, parse_style(attrs[0][1] or "", tag) if attrs else {})
        if self.stack:
            self.stack[-1].children.append(element)
        else:
            self.root = element
        self.stack.append(element)

    def handle_startendtag(self, tag, attrs):
        raise SpecError(f"self-closing <{tag}/> is not allowed")

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1].tag != tag:
            open_tag = f"<{self.stack[-1].tag}>" if self.stack else "nothing"
            raise SpecError(f"</{tag}> closes {open_tag}")
        element = self.stack.pop()
        if element.tag in ("button", "p") and not element.text:
            raise SpecError(f"<{element.tag}> has no text")

    def handle_data(self, data):
        if not data.strip():
            return
        if not self.stack or self.stack[-1].tag == "div":
            raise SpecError(f"text {data.strip()!r} must be inside a <button> or <p>")
        element = self.stack[-1]
        element.text += data
        if len(element.text) > MAX_TEXT_CHARS or element.text != element.text.strip():
            raise SpecError(f"<{element.tag}> text must be 1..{MAX_TEXT_CHARS} characters without surrounding "
                            f"spaces, got {element.text!r}")

    def handle_entityref(self, name):
        raise SpecError(f"entity &{name}; is not allowed")

    def handle_charref(self, name):
        raise SpecError(f"character reference &#{name}; is not allowed")

    def handle_comment(self, data):
        raise SpecError("comments are not allowed")

    def handle_decl(self, decl):
        raise SpecError(f"declaration <!{decl}> is not allowed")

    def handle_pi(self, data):
        raise SpecError("processing instructions are not allowed")

    def unknown_decl(self, data):
        raise SpecError(f"declaration {data!r} is not allowed")


def parse_ui(code: str) -> Element:
    """The root `Element` of a UI program, or `SpecError` naming the first thing outside the subset."""
    check_program_text(code, "UI")
    if "&" in code:
        raise SpecError("'&' is not allowed (no entities)")
    parser = _SubsetParser()
    parser.feed(code)
    parser.close()
    if parser.rawdata.strip():  # an unterminated tag such as `<div style="a` stays in the buffer
        raise SpecError(f"unterminated markup at the end: {parser.rawdata.strip()[:30]!r}")
    if parser.stack:
        raise SpecError(f"<{parser.stack[-1].tag}> is never closed")
    if parser.root is None:
        raise SpecError("the page has no root <div>")
    if {"width", "height"} & set(parser.root.style):
        raise SpecError("the root <div> fills the image: it takes no width or height")
    return parser.root


# ------------------------------------------------------------------------------------------------------ layout
def _padding(element: Element, is_root: bool) -> int:
    default = ROOT_PADDING if is_root else (BUTTON_PADDING if element.tag == "button" else 0)
    return element.style.get("padding", default)


def _text_box(element: Element) -> tuple[int, int]:
    face = font("sans", TEXT_SIZE[element.tag])
    ascent, descent = face.getmetrics()
    return int(np.ceil(face.getlength(element.text))), ascent + descent


def measure(element: Element, is_root: bool = False) -> tuple[int, int]:
    """(width, height) of an element's box, padding included."""
    pad = _padding(element, is_root)
    if element.tag != "div":
        width, height = _text_box(element)
        return (width + 2 * pad, height + 2 * pad) if element.tag == "button" else (width, height)
    sizes = [measure(child) for child in element.children]
    row = element.style.get("display") == "flex"
    gaps = GAP * max(len(sizes) - 1, 0)
    main = sum(s[0 if row else 1] for s in sizes) + gaps
    cross = max((s[1 if row else 0] for s in sizes), default=0)
    width, height = (main, cross) if row else (cross, main)
    return element.style.get("width", width + 2 * pad), element.style.get("height", height + 2 * pad)


def _draw(draw: ImageDraw.ImageDraw, element: Element, x: int, y: int, is_root: bool = False) -> None:
    width, height = (IMAGE_SIZE, IMAGE_SIZE) if is_root else measure(element)
    pad = _padding(element, is_root)
    if element.tag == "div":
        background = element.style.get("background", (255, 255, 255) if is_root else None)
        if background is not None and width > 0 and height > 0:
            draw.rectangle([x, y, x + width - 1, y + height - 1], fill=background)
        row = element.style.get("display") == "flex"
        cx, cy = x + pad, y + pad
        for child in element.children:
            _draw(draw, child, cx, cy)
            child_width, child_height = measure(child)
            cx, cy = (cx + child_width + GAP, cy) if row else (cx, cy + child_height + GAP)
        return
    if element.tag == "button":
        draw.rectangle([x, y, x + width - 1, y + height - 1], fill=element.style.get("background", BUTTON_BACKGROUND),
                       outline=BUTTON_BORDER)
    draw.text((x + pad if element.tag == "button" else x, y + pad if element.tag == "button" else y), element.text,
              fill=element.style.get("color", (0, 0, 0)), font=font("sans", TEXT_SIZE[element.tag]))


def render_ui(code: str) -> np.ndarray:
    """The UI program drawn as uint8 RGB [IMAGE_SIZE, IMAGE_SIZE, 3] (content past the edges is clipped)."""
    root = parse_ui(code)
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255))
    _draw(ImageDraw.Draw(image), root, 0, 0, is_root=True)
    return np.asarray(image)
