"""The dashboard's charts: domain data in, SVG out (through the one plotting helper in svg.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from markupsafe import Markup

from app.dashboard.svg import PALETTE, Series, bar_chart, line_chart, reliability_diagram
from ml.learning_curve import CurvePoint, LearningCurveFit


def throughput_chart(days: Sequence[tuple[date, int]]) -> Markup:
    bars = [(day.strftime("%b %d"), count) for day, count in days]
    return bar_chart(bars, title="Labels per day", y_label="labels", max_labels=8)


def balance_chart(balance: dict[str, int]) -> Markup:
    return bar_chart(list(balance.items()), title="Label balance", y_label="labels", width=360, height=220)


def _metric_series(name: str, points: list[list[float]]) -> Series:
    return Series(name, [p[0] for p in points], [p[1] for p in points])


def job_metric_charts(series: dict[str, list[list[float]]]) -> list[tuple[str, Markup]]:
    """Loss curves, MCC curves, and the other [0, 1] scores of a job, one chart each (only non-empty ones)."""
    losses = {n: p for n, p in series.items() if "loss" in n}
    mccs = {n: p for n, p in series.items() if "mcc" in n}
    rest = {
        n: p
        for n, p in series.items()
        if n not in losses and n not in mccs and p and all(0.0 <= v <= 1.0 for _, v in p)
    }
    charts = []
    for title, group, y_range in (("Loss", losses, None), ("MCC", mccs, None), ("Scores", rest, (0.0, 1.0))):
        if group:
            lines = [_metric_series(n, p) for n, p in sorted(group.items())]
            charts.append(
                (title, line_chart(lines, title=title, x_label="step", y_range=y_range, height=240))
            )
    return charts


def slice_mcc_charts(slices: dict[str, dict[str, dict]]) -> list[tuple[str, Markup]]:
    """One bar chart of holdout MCC per slice key (camera, night, ...), each bar labelled with its n."""
    charts = []
    for key, values in sorted(slices.items()):
        bars = [
            (f"{key} = {name} (n={row.get('n', 0)})", row.get("mcc") or 0.0)
            for name, row in sorted(values.items())
        ]
        low = min([0.0, *(v for _, v in bars)])
        chart = bar_chart(
            bars, title=f"MCC by {key}", y_label="MCC", y_range=(low, 1.0), height=220, max_labels=10
        )
        charts.append((key, chart))
    return charts


def reliability_chart(metrics: dict) -> Markup:
    return reliability_diagram(metrics.get("reliability") or [], title="Reliability on the holdout")


def learning_curves_chart(report: dict) -> Markup:
    """Mean metric against labels per strategy with a ±1 std band, and the report's targets as rules."""
    lines = []
    for strategy, s in report["strategies"].items():
        mean, std = s.get("mean", []), s.get("std", [])
        low = [m - d for m, d in zip(mean, std, strict=False)] if len(std) == len(mean) else None
        high = [m + d for m, d in zip(mean, std, strict=False)] if len(std) == len(mean) else None
        lines.append(Series(strategy, s.get("labels", []), mean, band_low=low, band_high=high))
    metric = report.get("metric", "metric")
    rules = [(float(t), f"{metric} {t}") for t in report.get("targets", [])]
    y_label = "test error" if metric == "error" else f"test {metric}"
    return line_chart(
        lines, title="Learning curves", x_label="labels", y_label=y_label, hlines=rules, height=340
    )


def label_accounting_chart(points: Sequence[CurvePoint], fit: LearningCurveFit | None) -> Markup:
    """Holdout MCC of each model version against the labels it was trained on, and the fitted curve
    MCC(n) = a − b·n^(−c) with its 90% bootstrap band, extended to twice the labels used so far."""
    measured = Series(
        "holdout MCC per version",
        [p.labels for p in points],
        [p.mcc for p in points],
        color=PALETTE[0],
        markers=True,
    )
    lines = [measured]
    if fit is not None:
        lines.append(
            Series(
                "fitted curve (90% band)",
                fit.curve_labels,
                fit.curve_mcc,
                band_low=fit.curve_low,
                band_high=fit.curve_high,
                color=PALETTE[3],
                dashed=True,
            )
        )
    return line_chart(lines, title="MCC against labels used", x_label="labels used", y_label="holdout MCC")
