"""The three kinds of (image, code) pair, each a safe parser and a PIL renderer: one table, used by the generator,
the metrics, the baselines and the Space."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .chart_spec import parse_chart, render_chart
from .code_image import parse_code, render_code
from .common import SpecError
from .ui_spec import parse_ui, render_ui


@dataclass(frozen=True)
class Kind:
    name: str
    description: str
    parse: Callable  # code -> parsed form; raises SpecError outside the safe subset
    render: Callable  # code -> uint8 RGB image; raises SpecError when it cannot be drawn


KINDS = {
    "ui": Kind("ui", "UI mockup → HTML/CSS subset", parse_ui, render_ui),
    "chart": Kind("chart", "chart → pyplot-style plotting code (a declarative spec)", parse_chart, render_chart),
    "code": Kind("code", "code screenshot → the Python code", parse_code, render_code),
}


def get_kind(name: str) -> Kind:
    if name not in KINDS:
        raise ValueError(f"unknown image-to-code kind {name!r}; known: {', '.join(KINDS)}")
    return KINDS[name]


def is_valid(kind: str, code: str) -> bool:
    """Whether `code` is inside the kind's language (parsed, never run)."""
    try:
        get_kind(kind).parse(code)
    except SpecError:
        return False
    return True


def render_program(kind: str, code: str) -> np.ndarray:
    """The image of `code` in its kind's language (SpecError when it is outside it)."""
    return get_kind(kind).render(code)


def try_render(kind: str, code: str) -> np.ndarray | None:
    """The image of a program, None when its kind cannot draw it (for scoring predictions). UI and chart programs
    must parse to be drawn; a code screenshot draws any printable text, valid Python or not."""
    try:
        return render_program(kind, code)
    except SpecError:
        return None
