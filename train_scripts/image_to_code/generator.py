"""Seeded, deterministic (image, code) pairs of the three kinds; every image is rendered *from* its program, so every
target is correct by construction.

Program `i` of kind `k` is drawn by `random.Random(f"{seed}/{k}/{i}")` (string seeds hash with SHA-512, so the
stream is the same in every process and on every machine). Its split is fixed by a hash of its text (80 % train,
10 % validation, 10 % test): a program — and so its image — is never in two splits, and a repeat within a split is
dropped. Drawing goes on until every split has its quota.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import numpy as np

from .common import IMAGE_SIZE
from .kinds import KINDS, render_program
from .ui_spec import ROOT_PADDING, measure, parse_ui

SPLITS = ("train", "validation", "test")
# Longest program any generator writes (characters): the text decoder's max_text_length must be at least this + 2.
MAX_CODE_CHARS = 200
_SPLIT_SHARE = {"train": 16, "validation": 2, "test": 2}  # out of 20 hash buckets

UI_WORDS = ("OK", "Save", "Cancel", "Login", "Send", "Next", "Back", "Home", "Menu", "Help", "Hello", "Search",
            "Submit", "Open", "Close", "Play", "Stop", "Edit", "Delete", "Share")
UI_BACKGROUNDS = ("white", "yellow", "pink", "gray", "teal", "navy", "orange", "green")
BUTTON_COLOURS = ("red", "green", "blue", "orange", "purple", "teal", "navy", "gray", "yellow", "pink")
DARK = ("navy", "purple", "blue", "green", "teal", "black", "red", "gray")
TEXT_COLOURS = ("black", "white", "red", "blue", "navy", "purple", "green")
BOX_COLOURS = ("red", "green", "blue", "orange", "purple", "teal", "navy", "black", "pink", "yellow")

CHART_COLOURS = ("red", "green", "blue", "orange", "purple", "teal", "navy", "black", "gray")
CHART_TITLES = ("Sales", "Rain", "Score", "Users", "Temp", "Price", "Votes", "Growth", "Speed", "Costs", "Visits")
CATEGORY_SETS = (tuple("ABCDEFGH"), ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
                 ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug"))

CODE_NAMES = ("x", "y", "n", "total", "count", "value", "item", "speed", "size", "width", "score", "price", "step")
CODE_FUNCTIONS = ("add", "scale", "area", "clamp", "double", "mix", "grow", "shift", "calc", "norm")
CODE_CLASSES = ("Box", "Point", "Shape", "Timer", "Cart")
CODE_OPERATORS = ("+", "-", "*", "//", "%")
CODE_LINE_CHARS = 20  # what fits on one line of the 128 px screenshot


# ------------------------------------------------------------------------------------------------------- UI
def _ui_leaf(rng: random.Random, background: str) -> str:
    choice = rng.random()
    if choice < 0.45:
        colour = rng.choice([c for c in BUTTON_COLOURS if c != background])
        text_colour = ";color:white" if colour in DARK else ""
        return f'<button style="background:{colour}{text_colour}">{rng.choice(UI_WORDS)}</button>'
    if choice < 0.75:
        colour = rng.choice([c for c in TEXT_COLOURS if c != background and not (background in DARK and c in DARK)])
        return f'<p style="color:{colour}">{rng.choice(UI_WORDS)}</p>'
    colour = rng.choice([c for c in BOX_COLOURS if c != background])
    width, height = rng.randrange(2, 9) * 8, rng.randrange(2, 7) * 8
    return f'<div style="background:{colour};width:{width}px;height:{height}px"></div>'


def ui_program(rng: random.Random) -> str:
    """A root div (a background, a column or a row) holding 1..3 buttons, text lines, boxes or a nested row."""
    background = rng.choice(UI_BACKGROUNDS)
    layout = ";display:flex" if rng.random() < 0.4 else ""
    children = []
    for _ in range(rng.randint(1, 3)):
        if not layout and rng.random() < 0.2:
            inner = rng.choice([c for c in UI_BACKGROUNDS if c != background])
            row = "".join(_ui_leaf(rng, inner) for _ in range(rng.randint(1, 2)))
            children.append(f'<div style="display:flex;background:{inner};padding:4px">{row}</div>')
        else:
            children.append(_ui_leaf(rng, background))
    return f'<div style="background:{background}{layout}">{"".join(children)}</div>'


def _ui_fits(code: str) -> bool:
    width, height = measure(parse_ui(code), is_root=True)
    return width <= IMAGE_SIZE and height <= IMAGE_SIZE - ROOT_PADDING // 2


# ---------------------------------------------------------------------------------------------------- charts
def _values(rng: random.Random, count: int, low: int = 0, high: int = 9) -> str:
    return "[" + ",".join(str(rng.randint(low, high)) for _ in range(count)) + "]"


def _colour_keyword(rng: random.Random, used: list) -> str:
    if rng.random() < 0.25 and not used:
        used.append(None)
        return ""  # matplotlib's default blue
    colour = rng.choice([c for c in CHART_COLOURS if c not in used])
    used.append(colour)
    return f',color="{colour}"'


def chart_program(rng: random.Random) -> str:
    """A bar chart, 1..2 lines or 1..2 scatter series of small integers, with a title more often than not."""
    function = rng.choice(("bar", "plot", "scatter"))
    lines, used = [], []
    if function == "bar":
        categories = rng.choice(CATEGORY_SETS)
        count = rng.randint(3, min(6, len(categories)))
        start = rng.randrange(len(categories) - count + 1)
        names = ",".join(f'"{c}"' for c in categories[start:start + count])
        lines.append(f"plt.bar([{names}],{_values(rng, count, 1, 9)}{_colour_keyword(rng, used)})")
    else:
        count = rng.randint(4, 8) if function == "plot" else rng.randint(3, 6)
        for _ in range(rng.randint(1, 2)):
            if function == "plot":
                lines.append(f"plt.plot({_values(rng, count)}{_colour_keyword(rng, used)})")
            else:
                lines.append(f"plt.scatter({_values(rng, count)},{_values(rng, count)}{_colour_keyword(rng, used)})")
    if rng.random() < 0.6:
        lines.append(f'plt.title("{rng.choice(CHART_TITLES)}")')
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ code
def code_program(rng: random.Random) -> str:
    """A 2..5 line Python snippet from one of eight templates (names, numbers and operators drawn)."""
    a, b = rng.sample(CODE_NAMES, 2)
    f, cls = rng.choice(CODE_FUNCTIONS), rng.choice(CODE_CLASSES)
    op = rng.choice(CODE_OPERATORS)
    n, m, k = rng.randint(1, 9), rng.randint(1, 9), rng.randint(0, 9)
    templates = (
        f"def {f}({a}, {b}):\n    return {a} {op} {b}",
        f"{a} = {n}\n{b} = {a} {op} {m}\nprint({b})",
        f"for i in range({n}):\n    print(i {op} {m})",
        f"if {a} > {n}:\n    {b} = {m}\nelse:\n    {b} = {k}",
        f"{a} = [{n}, {m}, {k}]\n{b} = sum({a})\nprint({b})",
        f"{a} = {k}\nwhile {a} < {n * 10}:\n    {a} += {m}",
        f"def {f}({a}):\n    if {a} > {n}:\n        return {m}\n    return {a}",
        f"class {cls}:\n    def {f}(self):\n        return {n}",
    )
    return rng.choice(templates)


GENERATORS = {"ui": ui_program, "chart": chart_program, "code": code_program}


def _acceptable(kind: str, code: str) -> bool:
    if len(code) > MAX_CODE_CHARS:
        return False
    if kind == "ui":
        return _ui_fits(code)
    if kind == "code":
        return all(len(line) <= CODE_LINE_CHARS for line in code.split("\n"))
    return True


def program(kind: str, seed: int, index: int) -> str:
    """Program `index` of `kind`'s stream for `seed` (redrawn from the same stream until it fits the image)."""
    rng = random.Random(f"{seed}/{kind}/{index}")
    for _ in range(100):
        code = GENERATORS[kind](rng)
        if _acceptable(kind, code):
            return code
    raise RuntimeError(f"the {kind} generator drew 100 programs that do not fit (seed {seed}, index {index})")


def split_of(code: str) -> str:
    """The split a program belongs to, fixed by a hash of its text."""
    bucket = int.from_bytes(hashlib.sha256(code.encode()).digest()[:4], "little") % sum(_SPLIT_SHARE.values())
    for split, share in _SPLIT_SHARE.items():
        if bucket < share:
            return split
        bucket -= share
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Pair:
    kind: str
    code: str
    split: str
    index: int  # the program's index in its kind's stream

    def image(self) -> np.ndarray:
        return render_program(self.kind, self.code)


def generate_programs(counts: dict[str, int], seed: int = 0, kinds=tuple(KINDS)) -> dict[str, list[Pair]]:
    """{split: [Pair, ...]} with `counts[split]` distinct programs of each kind, deterministic for `seed`."""
    for split, count in counts.items():
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"counts[{split!r}] must be an int >= 0, got {count!r}")
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    pairs = {split: [] for split in counts}
    for kind in kinds:
        seen = {split: set() for split in counts}
        index, misses = 0, 0
        while any(len(seen[s]) < counts[s] for s in counts):
            code = program(kind, seed, index)
            split = split_of(code)
            if split in counts and len(seen[split]) < counts[split] and code not in seen[split]:
                seen[split].add(code)
                pairs[split].append(Pair(kind, code, split, index))
                misses = 0
            else:
                misses += 1
                if misses > 20000:
                    raise RuntimeError(f"the {kind} generator ran out of new programs for {counts} (seed {seed})")
            index += 1
    return pairs
