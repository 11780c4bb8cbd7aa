"""Charts: matplotlib-style plotting code read as a declarative spec (never executed) and drawn with PIL.

A chart program looks like pyplot code, and a person can run it under matplotlib, but here it is only *parsed*:
`ast.parse` builds the syntax tree (parsing runs nothing), every statement must be a whitelisted call on `plt`
whose arguments are literals (`ast.literal_eval` on the node: no names, calls, attributes or operators), and the
values become a `ChartSpec`. Anything else — `__import__('os')`, a name, a nested call, an unknown function or
keyword — is a `SpecError` naming it.

    import matplotlib.pyplot as plt          optional, first line only
    plt.bar(["a", "b"], [3, 7], color="red")  categories (1..8 strings of 1..6 chars), heights
    plt.plot([2, 4, 3], color="blue")         y, or x and y (2..12 points)
    plt.scatter([1, 4], [3, 8], color="teal") x and y (1..12 points)
    plt.title("Sales")                        1..20 characters
    plt.ylim(0, 10)                           the y range (default 0..10 when the data fit, else the data's)

Either one `bar` series, or 1..3 `plot` / `scatter` series. `color` is the only keyword (a `common.NAMED_COLOURS`
name or #rgb / #rrggbb); series without it take matplotlib's default cycle (tab:blue, tab:orange, tab:green).
Numbers are ints or floats with |value| <= 1000.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from .common import IMAGE_SIZE, SpecError, check_program_text, font, parse_colour

SERIES_FUNCTIONS = ("bar", "plot", "scatter")
FUNCTIONS = SERIES_FUNCTIONS + ("title", "ylim")
DEFAULT_CYCLE = ((31, 119, 180), (255, 127, 14), (44, 160, 44))
MAX_ABS_VALUE = 1000
DEFAULT_RANGE = (0.0, 10.0)
# Plot area inside the image (px): left, top, right, bottom.
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 10, 6, 20, 16


@dataclass
class Series:
    function: str  # bar | plot | scatter
    x: list  # categories (bar) or numbers
    y: list
    colour: tuple | None = None


@dataclass
class ChartSpec:
    series: list = field(default_factory=list)
    title: str | None = None
    ylim: tuple | None = None


def _literal(node: ast.AST, where: str):
    """The value of a literal node; anything that is not a literal (a name, a call, an operator) is refused."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise SpecError(f"{where}: only literal values are allowed, got `{ast.unparse(node)[:40]}`") from None


def _numbers(value, where: str, low: int, high: int) -> list:
    if not isinstance(value, (list, tuple)) or not low <= len(value) <= high:
        raise SpecError(f"{where}: expected a list of {low}..{high} numbers, got {value!r:.60}")
    for number in value:
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number) \
                or abs(number) > MAX_ABS_VALUE:
            raise SpecError(f"{where}: {number!r:.20} is not a finite number within +-{MAX_ABS_VALUE}")
    return [float(number) for number in value]


def _short_text(value, where: str, longest: int) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= longest or not value.isprintable():
        raise SpecError(f"{where}: expected a string of 1..{longest} printable characters, got {value!r:.40}")
    return value


def _call_parts(statement: ast.stmt) -> tuple[str, list, dict]:
    """(function name, positional nodes, keyword nodes) of a `plt.<function>(...)` statement."""
    where = f"line {statement.lineno}"
    call = statement.value if isinstance(statement, ast.Expr) else None
    if not isinstance(call, ast.Call):
        raise SpecError(f"{where}: only plt.<function>(...) calls are allowed, got `{ast.unparse(statement)[:40]}`")
    func = call.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "plt"):
        raise SpecError(f"{where}: only calls on plt are allowed, got `{ast.unparse(func)[:40]}`")
    if func.attr not in FUNCTIONS:
        raise SpecError(f"{where}: plt.{func.attr} is not allowed (allowed: {', '.join(FUNCTIONS)})")
    keywords = {}
    for keyword in call.keywords:
        if keyword.arg != "color" or func.attr not in SERIES_FUNCTIONS:
            raise SpecError(f"{where}: keyword {keyword.arg or '**'}= is not allowed in plt.{func.attr}")
        keywords["color"] = keyword.value
    if any(isinstance(arg, ast.Starred) for arg in call.args):
        raise SpecError(f"{where}: *arguments are not allowed")
    return func.attr, list(call.args), keywords


def _series(function: str, args: list, keywords: dict, where: str) -> Series:
    values = [_literal(arg, f"{where} plt.{function}") for arg in args]
    colour = None
    if "color" in keywords:
        colour = parse_colour(_short_text(_literal(keywords["color"], where), f"{where} color", 20), f"{where} color")
    if function == "bar":
        if len(values) != 2:
            raise SpecError(f"{where}: plt.bar takes categories and heights")
        categories = values[0]
        if not isinstance(categories, (list, tuple)) or not 1 <= len(categories) <= 8:
            raise SpecError(f"{where}: plt.bar categories must be a list of 1..8 strings")
        categories = [_short_text(c, f"{where} category", 6) for c in categories]
        heights = _numbers(values[1], f"{where} plt.bar heights", len(categories), len(categories))
        return Series("bar", categories, heights, colour)
    low = 2 if function == "plot" else 1
    if function == "plot" and len(values) == 1:
        y = _numbers(values[0], f"{where} plt.plot y", low, 12)
        return Series("plot", [float(i) for i in range(len(y))], y, colour)
    if len(values) != 2:
        raise SpecError(f"{where}: plt.{function} takes x and y" + (" (or y alone)" if function == "plot" else ""))
    x = _numbers(values[0], f"{where} plt.{function} x", low, 12)
    y = _numbers(values[1], f"{where} plt.{function} y", len(x), len(x))
    return Series(function, x, y, colour)


def _is_pyplot_import(statement: ast.stmt) -> bool:
    return (isinstance(statement, ast.Import) and len(statement.names) == 1
            and statement.names[0].name == "matplotlib.pyplot" and statement.names[0].asname == "plt")


def parse_chart(code: str) -> ChartSpec:
    """The `ChartSpec` of a chart program, or `SpecError` naming the first statement outside the subset."""
    check_program_text(code, "chart")
    try:
        tree = ast.parse(code, mode="exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as error:
        raise SpecError(f"the chart program is not valid Python syntax: {error}") from None
    statements = tree.body
    if statements and _is_pyplot_import(statements[0]):
        statements = statements[1:]
    spec = ChartSpec()
    for statement in statements:
        where = f"line {statement.lineno}"
        function, args, keywords = _call_parts(statement)
        if function in SERIES_FUNCTIONS:
            spec.series.append(_series(function, args, keywords, where))
        elif function == "title":
            if spec.title is not None or len(args) != 1:
                raise SpecError(f"{where}: plt.title takes one string, once")
            spec.title = _short_text(_literal(args[0], where), f"{where} plt.title", 20)
        else:
            if spec.ylim is not None or len(args) != 2:
                raise SpecError(f"{where}: plt.ylim takes two numbers (bottom, top), once")
            bottom, top = _numbers([_literal(arg, where) for arg in args], f"{where} plt.ylim", 2, 2)
            if not bottom < top:
                raise SpecError(f"{where}: plt.ylim bottom {bottom} must be below top {top}")
            spec.ylim = (bottom, top)
    _check_series(spec.series)
    return spec


def _check_series(series: list) -> None:
    bars = [s for s in series if s.function == "bar"]
    if not series:
        raise SpecError("the chart has no data: add a plt.bar, plt.plot or plt.scatter call")
    if bars and len(series) > 1:
        raise SpecError("a bar chart holds exactly one plt.bar call and no other series")
    if len(series) > 3:
        raise SpecError(f"at most 3 series are allowed, got {len(series)}")


# ----------------------------------------------------------------------------------------------------- drawing
def _range(values: list, given) -> tuple[float, float]:
    if given is not None:
        return given
    low, high = min(values), max(values)
    if DEFAULT_RANGE[0] <= low and high <= DEFAULT_RANGE[1]:
        return DEFAULT_RANGE
    low, high = min(low, 0.0), max(high, 0.0)
    return (low, high) if high > low else (low - 1.0, high + 1.0)


def render_chart(code: str) -> np.ndarray:
    """The chart program drawn as uint8 RGB [IMAGE_SIZE, IMAGE_SIZE, 3]: axes, the series, the title."""
    spec = parse_chart(code)
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    left, top = MARGIN_LEFT, MARGIN_TOP
    right, bottom = IMAGE_SIZE - MARGIN_RIGHT, IMAGE_SIZE - MARGIN_BOTTOM
    y_low, y_high = _range([v for s in spec.series for v in s.y], spec.ylim)

    def to_y(value: float) -> float:
        fraction = (min(max(value, y_low), y_high) - y_low) / (y_high - y_low)  # clipped to the axes, as matplotlib
        return bottom - fraction * (bottom - top)

    if spec.series[0].function == "bar":
        _draw_bars(draw, spec.series[0], left, right, bottom, to_y)
    else:
        x_low, x_high = _range([v for s in spec.series for v in s.x], None)
        inset = 4

        def to_x(value: float) -> float:
            return left + inset + (value - x_low) / (x_high - x_low) * (right - left - 2 * inset)

        for index, series in enumerate(spec.series):
            colour = series.colour or DEFAULT_CYCLE[index % len(DEFAULT_CYCLE)]
            points = [(to_x(x), to_y(y)) for x, y in zip(series.x, series.y)]
            if series.function == "plot":
                draw.line(points, fill=colour, width=2)
            else:
                for px, py in points:
                    draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=(0, 0, 0), width=1)
    if spec.title:
        face = font("bold", 11)
        width = face.getlength(spec.title)
        draw.text(((IMAGE_SIZE - width) / 2, 3), spec.title, fill=(0, 0, 0), font=face)
    return np.asarray(image)


def _draw_bars(draw, series: Series, left: int, right: int, bottom: int, to_y) -> None:
    slot = (right - left) / len(series.x)
    colour = series.colour or DEFAULT_CYCLE[0]
    label_font = font("sans", 9)
    for index, (category, height) in enumerate(zip(series.x, series.y)):
        x0 = left + index * slot + 0.2 * slot
        x1 = left + (index + 1) * slot - 0.2 * slot
        y0, y1 = sorted((to_y(height), to_y(0.0)))
        if y1 - y0 >= 0.5:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        width = label_font.getlength(category)
        draw.text((left + (index + 0.5) * slot - width / 2, bottom + 2), category, fill=(0, 0, 0), font=label_font)
