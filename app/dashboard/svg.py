"""Server-rendered SVG charts (line with bands, bars, reliability diagram): no JS, no chart library."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from markupsafe import Markup, escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 52, 16, 14, 40


@dataclass
class Series:
    """One line; `band_low`/`band_high` (same length as `ys`) draw a shaded interval around it."""

    name: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    band_low: Sequence[float] | None = None
    band_high: Sequence[float] | None = None
    color: str | None = None
    dashed: bool = False
    markers: bool = False  # a dot on every point (measured values, as opposed to a fitted line)


@dataclass
class _Frame:
    width: int
    height: int
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    parts: list[str] = field(default_factory=list)

    def x(self, value: float) -> float:
        low, high = self.x_range
        return MARGIN_LEFT + (value - low) / ((high - low) or 1.0) * self.plot_width

    def y(self, value: float) -> float:
        low, high = self.y_range
        return MARGIN_TOP + (1 - (value - low) / ((high - low) or 1.0)) * self.plot_height

    @property
    def plot_width(self) -> float:
        return self.width - MARGIN_LEFT - MARGIN_RIGHT

    @property
    def plot_height(self) -> float:
        return self.height - MARGIN_TOP - MARGIN_BOTTOM


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 × 10^k steps) covering [low, high]."""
    if not math.isfinite(low) or not math.isfinite(high):
        return []
    if high <= low:
        high = low + 1.0
    raw_step = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw_step)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def format_number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.3g}"


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _axes(frame: _Frame, x_label: str, y_label: str, x_ticks: list[float] | None = None) -> None:
    parts = frame.parts
    for tick in nice_ticks(*frame.y_range):
        y = frame.y(tick)
        parts.append(
            f'<line class="grid" x1="{MARGIN_LEFT}" x2="{frame.width - MARGIN_RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{format_number(tick)}</text>"
        )
    for tick in nice_ticks(*frame.x_range) if x_ticks is None else x_ticks:
        x = frame.x(tick)
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{frame.height - MARGIN_BOTTOM + 16}" text-anchor="middle">'
            f"{format_number(tick)}</text>"
        )
    bottom = frame.height - MARGIN_BOTTOM
    parts.append(
        f'<line class="axis" x1="{MARGIN_LEFT}" x2="{frame.width - MARGIN_RIGHT}" y1="{bottom}" y2="{bottom}"/>'
        f'<line class="axis" x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT}" y1="{MARGIN_TOP}" y2="{bottom}"/>'
    )
    if x_label:
        parts.append(
            f'<text class="label" x="{MARGIN_LEFT + frame.plot_width / 2:.1f}" y="{frame.height - 6}" '
            f'text-anchor="middle">{escape(x_label)}</text>'
        )
    if y_label:
        parts.append(
            f'<text class="label" transform="translate(12 {MARGIN_TOP + frame.plot_height / 2:.1f}) rotate(-90)" '
            f'text-anchor="middle">{escape(y_label)}</text>'
        )


def _svg(frame: _Frame, title: str, css_class: str) -> Markup:
    body = "".join(frame.parts)
    return Markup(
        f'<svg class="chart {css_class}" viewBox="0 0 {frame.width} {frame.height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f"{body}</svg>"
    )


def _padded(values: list[float], include_zero: bool) -> tuple[float, float]:
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if include_zero:
        low, high = min(low, 0.0), max(high, 0.0)
    if high == low:
        high = low + (abs(low) or 1.0)
    ticks = nice_ticks(low, high)
    return (min(low, ticks[0]) if ticks else low, max(high, ticks[-1]) if ticks else high)


def _path(frame: _Frame, xs: Sequence[float], ys: Sequence[float | None]) -> str:
    commands, pen_down = [], False
    for x, y in zip(xs, ys, strict=False):
        if y is None or not math.isfinite(float(y)):
            pen_down = False
            continue
        commands.append(f"{'L' if pen_down else 'M'}{frame.x(float(x)):.1f},{frame.y(float(y)):.1f}")
        pen_down = True
    return "".join(commands)


def _band(frame: _Frame, series: Series, color: str) -> str:
    if series.band_low is None or series.band_high is None or not series.xs:
        return ""
    upper = [f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in zip(series.xs, series.band_high, strict=False)]
    lower = [f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in zip(series.xs, series.band_low, strict=False)]
    points = " ".join(upper + lower[::-1])
    return f'<polygon class="band" points="{points}" fill="{color}" fill-opacity="0.15" stroke="none"/>'


def _legend(frame: _Frame, names: list[tuple[str, str]]) -> None:
    x = MARGIN_LEFT + 8
    for index, (name, color) in enumerate(names):
        y = MARGIN_TOP + 12 + index * 15
        frame.parts.append(
            f'<rect x="{x}" y="{y - 8}" width="10" height="10" fill="{color}"/>'
            f'<text class="legend" x="{x + 14}" y="{y + 1}">{escape(name)}</text>'
        )


def line_chart(
    series: Sequence[Series],
    *,
    title: str = "",
    x_label: str = "",
    y_label: str = "",
    y_range: tuple[float, float] | None = None,
    width: int = 640,
    height: int = 280,
    hlines: Sequence[tuple[float, str]] = (),
) -> Markup:
    """Lines (gaps where y is None) with optional shaded bands, a legend and labelled horizontal rules."""
    all_x = [float(x) for s in series for x in s.xs]
    all_y = [v for s in series for v in _finite([*s.ys, *(s.band_low or []), *(s.band_high or [])])]
    all_y += [value for value, _ in hlines]
    x_range = (min(all_x), max(all_x)) if all_x else (0.0, 1.0)
    frame = _Frame(width, height, x_range, y_range or _padded(all_y, include_zero=False))
    _axes(frame, x_label, y_label)
    colors = [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    for s, color in zip(series, colors, strict=True):
        frame.parts.append(_band(frame, s, color))
    for value, label in hlines:
        y = frame.y(value)
        frame.parts.append(
            f'<line class="rule" x1="{MARGIN_LEFT}" x2="{width - MARGIN_RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="rule-label" x="{width - MARGIN_RIGHT - 4}" y="{y - 4:.1f}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
    for s, color in zip(series, colors, strict=True):
        dash = ' stroke-dasharray="5 4"' if s.dashed else ""
        frame.parts.append(
            f'<path class="line" d="{_path(frame, s.xs, s.ys)}" stroke="{color}" fill="none"{dash}/>'
        )
        if len(_finite(s.ys)) == 1 or s.markers:
            for x, y in zip(s.xs, s.ys, strict=False):
                if y is not None and math.isfinite(float(y)):
                    frame.parts.append(
                        f'<circle cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="3" fill="{color}"/>'
                    )
    if len(series) > 1:
        _legend(frame, [(s.name, c) for s, c in zip(series, colors, strict=True)])
    if not all_x:
        _empty_note(frame)
    return _svg(frame, title or ", ".join(s.name for s in series), "line-chart")


def _empty_note(frame: _Frame) -> None:
    frame.parts.append(
        f'<text class="empty" x="{MARGIN_LEFT + frame.plot_width / 2:.1f}" '
        f'y="{MARGIN_TOP + frame.plot_height / 2:.1f}" text-anchor="middle">no data yet</text>'
    )


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    title: str = "",
    x_label: str = "",
    y_label: str = "",
    y_range: tuple[float, float] | None = None,
    width: int = 640,
    height: int = 240,
    color: str = PALETTE[0],
    negative_color: str = PALETTE[1],
    max_labels: int = 16,
) -> Markup:
    """Vertical bars with category labels (thinned out when crowded) and the value as a hover title."""
    values = [float(v) for _, v in bars if math.isfinite(float(v))]
    frame = _Frame(
        width, height, (0.0, float(max(1, len(bars)))), y_range or _padded(values, include_zero=True)
    )
    _axes(frame, x_label, y_label, x_ticks=[])
    slot = frame.plot_width / max(1, len(bars))
    every = max(1, math.ceil(len(bars) / max_labels))
    zero = frame.y(max(frame.y_range[0], 0.0))
    for index, (name, value) in enumerate(bars):
        value = float(value) if math.isfinite(float(value)) else 0.0
        top = frame.y(value)
        x = MARGIN_LEFT + index * slot + slot * 0.15
        fill = color if value >= 0 else negative_color
        frame.parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{min(top, zero):.1f}" width="{slot * 0.7:.1f}" '
            f'height="{abs(zero - top):.1f}" fill="{fill}"><title>{escape(name)}: {format_number(value)}'
            f"</title></rect>"
        )
        if index % every == 0:
            frame.parts.append(
                f'<text class="tick" x="{x + slot * 0.35:.1f}" y="{height - MARGIN_BOTTOM + 16}" '
                f'text-anchor="middle">{escape(name)}</text>'
            )
    if not bars:
        _empty_note(frame)
    return _svg(frame, title or y_label, "bar-chart")


def reliability_diagram(bins: Sequence[dict], *, title: str = "Reliability", width: int = 360) -> Markup:
    """Observed positive rate against mean confidence per bin (ml.evaluation.reliability_curve rows);
    dot area grows with the bin's count and the diagonal is perfect calibration."""
    frame = _Frame(width, width, (0.0, 1.0), (0.0, 1.0))
    _axes(frame, "mean predicted P(positive)", "observed positive rate")
    frame.parts.append(
        f'<line class="diagonal" x1="{frame.x(0):.1f}" y1="{frame.y(0):.1f}" '
        f'x2="{frame.x(1):.1f}" y2="{frame.y(1):.1f}"/>'
    )
    largest = max([int(b.get("count", 0)) for b in bins] or [1]) or 1
    points = sorted(bins, key=lambda b: b["mean_confidence"])
    xs = [b["mean_confidence"] for b in points]
    ys = [b["accuracy"] for b in points]
    frame.parts.append(f'<path class="line" d="{_path(frame, xs, ys)}" stroke="{PALETTE[0]}" fill="none"/>')
    for b in points:
        radius = 2.5 + 5.5 * math.sqrt(int(b.get("count", 0)) / largest)
        frame.parts.append(
            f'<circle cx="{frame.x(b["mean_confidence"]):.1f}" cy="{frame.y(b["accuracy"]):.1f}" '
            f'r="{radius:.1f}" fill="{PALETTE[0]}" fill-opacity="0.7"><title>'
            f"{b['bin_low']:.1f}–{b['bin_high']:.1f}: {b['accuracy']:.2f} observed, n={b.get('count', 0)}"
            "</title></circle>"
        )
    if not bins:
        _empty_note(frame)
    return _svg(frame, title, "reliability")
