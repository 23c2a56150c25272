"""Plots of a received series, drawn on the server as SVG (no charting code in the browser).

:func:`reduce` walks the stored rows of one measurement over a time range and
keeps either every sample (when they fit the plot's width) or, per column of
pixels, the smallest and largest value: the memory used is bounded by the plot's
width whatever the range. :func:`render` draws the result, at a given size,
with time and value axes; every element the zoom script and a reader need is
in the markup (the plotted range as ``data-`` attributes, a title and a
description, each sample's value as a tooltip when samples are shown one by one).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from markupsafe import Markup, escape

__all__ = ["Layout", "Reduced", "format_instant", "reduce", "render"]

#: Samples are drawn one by one up to this many in the range, marked up to MARKED.
RAW_LIMIT = 1500
MARKED = 150
#: Columns of the min/max envelope when there are more samples than RAW_LIMIT.
BUCKETS = 700

Value = float | int | None


@dataclass
class Reduced:
    """One measurement over ``[start, end]`` (unix ms), ready to draw."""

    start: int
    end: int
    #: ``(t, value, dt)`` of every sample in the range, or None when over RAW_LIMIT.
    raw: list[tuple[int, Value, int]] | None = field(default_factory=list)
    #: Per envelope column: ``(min, max)``, or None for a column without a value.
    columns: list[tuple[float, float] | None] = field(default_factory=list)
    count: int = 0
    nils: int = 0
    low: float | None = None
    high: float | None = None
    total: float = 0.0

    @property
    def numeric(self) -> int:
        return self.count - self.nils

    @property
    def mean(self) -> float | None:
        return self.total / self.numeric if self.numeric else None


def reduce(rows: Iterable[tuple[int, int, list[Value]]], start: int, end: int) -> Reduced:
    """The samples of ``rows`` (``(t0, dt, values)``) that fall in ``[start, end]``."""
    out = Reduced(start, end)
    bmin = [math.inf] * BUCKETS
    bmax = [-math.inf] * BUCKETS
    width = end - start + 1
    for t0, step, values in rows:
        first = max(0, -((t0 - start) // step))  # the first j with t0 + j*step >= start
        last = min(len(values) - 1, (end - t0) // step)
        for j in range(first, last + 1):
            value = values[j]
            t = t0 + j * step
            out.count += 1
            if out.raw is not None:
                out.raw.append((t, value, step))
                if len(out.raw) > RAW_LIMIT:
                    out.raw = None
            if value is None:
                out.nils += 1
                continue
            number = float(value)
            out.total += number
            out.low = number if out.low is None else min(out.low, number)
            out.high = number if out.high is None else max(out.high, number)
            b = (t - start) * BUCKETS // width
            bmin[b] = min(bmin[b], number)
            bmax[b] = max(bmax[b], number)
    if out.raw is None:
        out.columns = [(lo, hi) if lo <= hi else None for lo, hi in zip(bmin, bmax, strict=True)]
    else:
        out.raw.sort(key=lambda p: p[0])
    return out


@dataclass(frozen=True)
class Layout:
    """The plot's size in SVG units, and its margins around the plot area."""

    name: str
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    time_ticks: int
    value_ticks: int


WIDE = Layout("wide", 800, 320, 72, 20, 18, 46, 7, 6)
NARROW = Layout("narrow", 400, 300, 58, 12, 16, 46, 3, 5)

_TIME_STEPS_MS = (
    *(100, 200, 500),
    *(1_000, 2_000, 5_000, 10_000, 15_000, 30_000),
    *(60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000),
    *(3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000),
    *(86_400_000, 2 * 86_400_000, 7 * 86_400_000, 14 * 86_400_000, 28 * 86_400_000),
)


def format_instant(t_ms: int, *, seconds: bool = True) -> str:
    """``2026-11-22 10:00:05`` (UTC), with milliseconds when there are any; or to the minute."""
    when = dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC)
    if not seconds:
        return when.strftime("%Y-%m-%d %H:%M")
    text = when.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{t_ms % 1000:03d}" if t_ms % 1000 else text


def _time_label(t_ms: int, step_ms: int, span_ms: int) -> str:
    when = dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC)
    if step_ms < 1000:
        return when.strftime("%H:%M:%S.") + f"{t_ms % 1000:03d}"[: 1 if step_ms >= 100 else 3]
    if span_ms <= 86_400_000:
        return when.strftime("%H:%M:%S" if step_ms < 60_000 else "%H:%M")
    return when.strftime("%m-%d" if step_ms >= 86_400_000 else "%m-%d %H:%M")


def _time_ticks(start: int, end: int, wanted: int) -> tuple[int, list[int]]:
    span = max(end - start, 1)
    step = next((s for s in _TIME_STEPS_MS if span / s <= wanted), _TIME_STEPS_MS[-1])
    while span / step > wanted:
        step *= 2
    first = -(-start // step) * step
    return step, list(range(first, end + 1, step))


def _nice_step(span: float, wanted: int) -> float:
    raw = span / max(wanted, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _value_axis(low: float, high: float, wanted: int) -> tuple[float, float, float]:
    """``(bottom, top, step)`` of a value axis holding ``[low, high]`` on round numbers."""
    # A margin, so the line never runs along the frame (and a flat line gets an axis).
    pad = (high - low) * 0.02 if high > low else (abs(low) * 0.05 or 1.0)
    low, high = low - pad, high + pad
    step = _nice_step(high - low, wanted)
    return math.floor(low / step) * step, math.ceil(high / step) * step, step


def _decimals(step: float) -> int:
    """How many decimals write every multiple of ``step`` exactly (at most 6)."""
    for decimals in range(7):
        scaled = step * 10**decimals
        if abs(scaled - round(scaled)) < 1e-6 * max(1.0, scaled):
            return decimals
    return 6


def _value_label(value: float, step: float) -> str:
    size = max(abs(value), step)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e4, "k")):
        if size >= limit:
            return f"{value / limit:.{min(_decimals(step / limit), 3)}f}{suffix}"
    return f"{value:.{_decimals(step)}f}"


def _n(x: float) -> str:
    """A coordinate, short."""
    return f"{x:.2f}".rstrip("0").rstrip(".")


def render(data: Reduced, layout: Layout, *, title: str, unit: str, plot_id: str) -> Markup:
    """The SVG of ``data`` at ``layout``; ``plot_id`` makes its element ids unique."""
    x0, x1 = layout.left, layout.width - layout.right
    y0, y1 = layout.top, layout.height - layout.bottom
    span = max(data.end - data.start, 1)
    low = data.low if data.low is not None else 0.0
    high = data.high if data.high is not None else 1.0
    bottom, top, vstep = _value_axis(low, high, layout.value_ticks)

    def x(t: int) -> float:
        return x0 + (t - data.start) * (x1 - x0) / span

    def y(v: float) -> float:
        return y1 - (v - bottom) * (y1 - y0) / (top - bottom)

    unit_text = f" {unit}" if unit else ""
    if data.numeric:
        description = (
            f"{data.count} samples from {format_instant(data.start)} to "
            f"{format_instant(data.end)} UTC; lowest {data.low:g}{unit_text}, "
            f"highest {data.high:g}{unit_text}"
            + (f"; {data.nils} could not be read" if data.nils else "")
        )
    else:
        description = f"no values from {format_instant(data.start)} to {format_instant(data.end)}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot plot--{layout.name}" '
        f'viewBox="0 0 {layout.width} {layout.height}" role="img" '
        f'aria-labelledby="{plot_id}-title" aria-describedby="{plot_id}-desc" '
        f'data-from="{data.start}" data-to="{data.end}" data-x0="{x0}" data-x1="{x1}" '
        f'data-y0="{y0}" data-y1="{y1}" data-vmin="{bottom!r}" data-vmax="{top!r}">',
        f'<title id="{plot_id}-title">{escape(title)}</title>',
        f'<desc id="{plot_id}-desc">{escape(description)}</desc>',
        f'<rect class="plot-area" x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}"/>',
    ]
    # Value axis: a grid line and a label per round value.
    for i in range(round((top - bottom) / vstep) + 1):
        tick = bottom + i * vstep
        parts.append(
            f'<line class="grid" x1="{x0}" x2="{x1}" y1="{_n(y(tick))}" y2="{_n(y(tick))}"/>'
            f'<text class="tick tick--value" x="{x0 - 6}" y="{_n(y(tick) + 4)}" '
            f'text-anchor="end">{escape(_value_label(tick, vstep))}</text>'
        )
    tstep, times = _time_ticks(data.start, data.end, layout.time_ticks)
    for t in times:
        parts.append(
            f'<line class="grid" x1="{_n(x(t))}" x2="{_n(x(t))}" y1="{y0}" y2="{y1}"/>'
            f'<text class="tick tick--time" x="{_n(x(t))}" y="{y1 + 16}" '
            f'text-anchor="middle">{escape(_time_label(t, tstep, span))}</text>'
        )
    axis_caption = f"UTC, from {format_instant(data.start, seconds=False)}"
    parts.append(
        f'<text class="axis-caption" x="{x0}" y="{layout.height - 6}">{escape(axis_caption)}</text>'
    )
    if unit:
        parts.append(f'<text class="axis-caption" x="4" y="{y0 - 6}">{escape(unit)}</text>')
    parts.append(_series(data, x, y))
    if data.raw is not None and 0 < data.numeric <= MARKED:
        for t, value, _ in data.raw:
            if value is None:
                continue
            parts.append(
                f'<circle class="point" cx="{_n(x(t))}" cy="{_n(y(float(value)))}" r="3" '
                f'data-t="{t}" data-v="{value!r}"><title>{escape(format_instant(t))} UTC: '
                f"{value:g}{escape(unit_text)}</title></circle>"
            )
    if not data.numeric:
        parts.append(
            f'<text class="empty" x="{(x0 + x1) / 2}" y="{(y0 + y1) / 2}" '
            'text-anchor="middle">No samples in this range</text>'
        )
    parts.append(
        f'<rect class="selection" x="{x0}" y="{y0}" width="0" height="{y1 - y0}" '
        'visibility="hidden"/>'
    )
    parts.append("</svg>")
    # Every text and value interpolated above went through escape() or is a number.
    return Markup("".join(parts))  # noqa: S704


def _series(data: Reduced, x: Callable[[int], float], y: Callable[[float], float]) -> str:
    """The line: broken where a sample is missing, could not be read, or a column is empty.

    A sample alone between two breaks is a zero-length stroke, which the round
    line caps draw as a dot.
    """
    runs: list[list[str]] = []
    if data.raw is not None:
        previous: tuple[int, int] | None = None
        for t, value, step in data.raw:
            if value is None:
                previous = None
                continue
            if previous is None or t - previous[0] > previous[1] * 1.5:
                runs.append([])
            runs[-1].append(f"{_n(x(t))},{_n(y(float(value)))}")
            previous = (t, step)
    else:
        width = data.end - data.start + 1
        joined = False
        for b, column in enumerate(data.columns):
            if column is None:
                joined = False
                continue
            if not joined:
                runs.append([])
            t = data.start + (2 * b + 1) * width // (2 * len(data.columns))
            lo, hi = column
            runs[-1].extend((f"{_n(x(t))},{_n(y(hi))}", f"{_n(x(t))},{_n(y(lo))}"))
            joined = True
    if not runs:
        return ""
    d = " ".join("M" + " L".join(run) + (" h0" if len(run) == 1 else "") for run in runs)
    return f'<path class="series" d="{d}"/>'
