"""The dashboard's charts: domain data in, SVG out (through the one plotting helper in svg.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from markupsafe import Markup

from app.dashboard.svg import bar_chart


def throughput_chart(days: Sequence[tuple[date, int]]) -> Markup:
    bars = [(day.strftime("%b %d"), count) for day, count in days]
    return bar_chart(bars, title="Labels per day", y_label="labels", max_labels=8)


def balance_chart(balance: dict[str, int]) -> Markup:
    return bar_chart(list(balance.items()), title="Label balance", y_label="labels", width=360, height=220)
