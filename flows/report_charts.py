"""The report's charts as inline SVG drawn by pygal: no script, no external reference.

Each function takes the report's dict (``flows.reporting.build_report``'s layout) and
returns the SVG markup of one chart, or ``None`` when the window has nothing to draw.
pygal always adds a ``<script>`` with its tooltip configuration and comments naming its
web site; :func:`_offline` removes them before rendering, so the file opens offline and
shows the same chart without JavaScript (values are printed on the bars instead of in
tooltips).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from xml.etree import ElementTree

import pygal  # type: ignore[import-untyped]
from pygal.style import Style  # type: ignore[import-untyped]

from .report_format import duration_unit, human_duration

Report = Mapping[str, Any]

# CJK fonts in the stack so Chinese titles show wherever one of them is installed.
FONT_STACK = (
    '"Noto Sans", "Segoe UI", Helvetica, Arial, "Noto Sans CJK SC", "Noto Sans SC", '
    '"Source Han Sans SC", "PingFang SC", "Microsoft YaHei", "WenQuanYi Micro Hei", sans-serif'
)
COLORS = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#319795", "#b7791f", "#e53e3e", "#4a5568", "#3182ce")
STYLE = Style(
    font_family=FONT_STACK,
    background="white",
    plot_background="white",
    foreground="#2d3748",
    foreground_strong="#1a202c",
    foreground_subtle="#a0aec0",
    colors=COLORS,
    value_font_size=11,
    label_font_size=11,
    major_label_font_size=11,
    legend_font_size=12,
    title_font_size=14,
)
WIDTH = 720
BAR_HEIGHT = 24
AGING_BUCKETS = ("<1d", "1-3d", "3-7d", "7-30d", ">30d")
TOP = 15
"""At most this many bars in a chart of processes, steps or people (the largest)."""
SVG_NAMESPACE = "{http://www.w3.org/2000/svg}"


def _offline(root: Any) -> Any:
    """Drop pygal's scripts and comments (its tooltip code and the links to its web site)."""
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag is ElementTree.Comment or child.tag in ("script", f"{SVG_NAMESPACE}script"):
                parent.remove(child)
    return root


def _render(chart: Any) -> str:
    return str(chart.render(is_unicode=True))


def _chart(kind: Callable[..., Any], *, height: int = 340, **config: Any) -> Any:
    """A pygal chart of the report's look, configured to need no script and no network.

    ``formatter`` writes the values printed on the chart, ``value_formatter`` the axis.
    """
    settings: dict[str, Any] = {
        "width": WIDTH, "height": height, "style": STYLE, "legend_at_bottom": True, "legend_at_bottom_columns": 4,
        "print_values": True, "margin": 12, "margin_bottom": 28, "truncate_label": 40, "truncate_legend": 40,
    }
    chart = kind(js=[], disable_xml_declaration=True, **{**settings, **config})
    chart.add_xml_filter(_offline)
    return chart


def _bars_height(labels: int) -> int:
    return 130 + BAR_HEIGHT * max(labels, 1)


def _count(value: float | None) -> str:
    return f"{value:.0f}" if value else ""


def _count_axis(values: Sequence[float | None]) -> dict[str, Any]:
    """Whole-number axis labels for counts (pygal would write 0.5, 1, 1.5 as 0, 1, 2 twice over)."""
    top = max([int(v) for v in values if v] or [1])
    step = max(1, -(-top // 8))
    return {"y_labels": list(range(0, top + step, step)), "value_formatter": lambda v: f"{v:.0f}", "formatter": _count}


def _duration_chart(rows: Sequence[tuple[str, float | None, float | None]]) -> str | None:
    """Horizontal bars of (label, median, p90) durations, the longest p90 on top, in hours or days.

    Rows that took no time at all (median and p90 zero or unknown) are left to the tables;
    at most :data:`TOP` rows are drawn.
    """
    timed = [row for row in rows if (row[1] or 0) > 0 or (row[2] or 0) > 0]
    timed = sorted(timed, key=lambda row: (row[2] or 0, row[1] or 0))[-TOP:]  # pygal draws the first label at the bottom
    if not timed:
        return None
    name, size = duration_unit(max(max(row[1] or 0, row[2] or 0) for row in timed))
    chart = _chart(pygal.HorizontalBar, height=_bars_height(2 * len(timed)),
                   value_formatter=lambda v: f"{v:g} {name}",
                   formatter=lambda v: human_duration(v * size) if v else "")
    chart.x_labels = [row[0] for row in timed]
    chart.add("Median", [None if row[1] is None else row[1] / size for row in timed])
    chart.add("p90", [None if row[2] is None else row[2] / size for row in timed])
    return _render(chart)


def _process_title(report: Report, process: str) -> str:
    return str(report["processes"][process].get("title") or process)


def _period_bars(report: Report, series: Mapping[str, Sequence[int]]) -> str | None:
    """Counts per period side by side, one bar a series; ``None`` when every count is zero."""
    periods = list(report.get("periods") or [])
    counts = [count for column in series.values() for count in column]
    if not periods or not any(counts):
        return None
    chart = _chart(pygal.Bar, **_count_axis(counts))
    chart.x_labels = periods
    for title, column in series.items():
        chart.add(title, list(column))
    return _render(chart)


def _count_bars(rows: Sequence[tuple[str, int]], title: str) -> str | None:
    """Horizontal bars of (label, count) rows that are not zero, the largest on top, at most :data:`TOP`."""
    counted = sorted((row for row in rows if row[1]), key=lambda row: row[1])[-TOP:]  # pygal draws the first label at the bottom
    if not counted:
        return None
    chart = _chart(pygal.HorizontalBar, height=_bars_height(len(counted)), show_legend=False, **_count_axis([n for _, n in counted]))
    chart.x_labels = [label for label, _ in counted]
    chart.add(title, [n for _, n in counted])
    return _render(chart)


def opened_closed(report: Report) -> str | None:
    """Cases opened and closed per period, over every process."""
    periods = list(report.get("periods") or [])
    processes = report["processes"].values()
    return _period_bars(report, {
        "Opened": [sum(p["by_period"].get(period, {}).get("opened", 0) for p in processes) for period in periods],
        "Closed": [sum(p["by_period"].get(period, {}).get("closed", 0) for p in processes) for period in periods],
    })


def cycle_time(report: Report) -> str | None:
    """Median and p90 cycle time per process (closed cases)."""
    return _duration_chart([(_process_title(report, name), p["cycle_time"].get("median"), p["cycle_time"].get("p90"))
                            for name, p in report["processes"].items()])


def sla_met(report: Report) -> str | None:
    """SLA met % per process, for processes with a case due."""
    names = [name for name, p in report["processes"].items() if p["sla"].get("met_pct") is not None]
    names.sort(key=lambda name: -report["processes"][name]["sla"]["met_pct"])  # the worst on top
    if not names:
        return None
    chart = _chart(pygal.HorizontalBar, height=_bars_height(len(names)), range=(0, 100), show_legend=False,
                   value_formatter=lambda v: f"{v:.0f} %", formatter=lambda v: f"{v:.1f} %".replace(".0 %", " %"))
    chart.x_labels = [_process_title(report, name) for name in names]
    chart.add("SLA met %", [report["processes"][n]["sla"]["met_pct"] for n in names])
    return _render(chart)


def backlog_aging(report: Report) -> str | None:
    """Open cases by age, stacked by process."""
    names = [name for name, p in report["processes"].items() if any(p.get("backlog_aging", {}).values())]
    if not names:
        return None
    totals = [sum(report["processes"][n]["backlog_aging"].get(bucket, 0) for n in names) for bucket in AGING_BUCKETS]
    chart = _chart(pygal.StackedBar, legend_at_bottom_columns=2, height=300 + 12 * len(names), **_count_axis(totals))
    chart.x_labels = list(AGING_BUCKETS)
    for name in names:
        aging = report["processes"][name]["backlog_aging"]
        chart.add(_process_title(report, name), [aging.get(bucket, 0) or None for bucket in AGING_BUCKETS])
    return _render(chart)


def _steps(report: Report) -> list[tuple[str, str, Mapping[str, Any]]]:
    return [(name, step, figures) for name, p in report["processes"].items() for step, figures in p.get("steps", {}).items()]


def slowest_steps(report: Report) -> str | None:
    """The steps that take longest (by p90): median and p90 of their finished visits."""
    return _duration_chart([(f"{name} · {step}", f.get("median"), f.get("p90")) for name, step, f in _steps(report)])


def overdue_steps(report: Report) -> str | None:
    """The steps whose visits went past their due, most on top."""
    return _count_bars([(f"{name} · {step}", f.get("overdue") or 0) for name, step, f in _steps(report)], "Overdue visits")


def _turnaround(group: Mapping[str, Mapping[str, Any]]) -> str | None:
    return _duration_chart([(name, figures.get("median"), figures.get("p90")) for name, figures in group.items()])


def approvals_people(report: Report) -> str | None:
    """How long each person takes to answer (step entered → their answer)."""
    return _turnaround(report.get("approvals", {}).get("people", {}))


def approvals_roles(report: Report) -> str | None:
    """How long each role takes to answer."""
    return _turnaround(report.get("approvals", {}).get("roles", {}))


def _score_scale(values: Sequence[float | None]) -> float:
    """The top of a score axis: the scale the scores are on (5, 10 or 100), else the largest score."""
    top = max(v for v in values if v is not None)
    return next((scale for scale in (5, 10, 100) if top <= scale), top)


def _trend(report: Report, by_period: Mapping[str, Mapping[str, Any]], title: str) -> str | None:
    periods = list(report.get("periods") or [])
    means = [by_period.get(period, {}).get("mean") for period in periods]
    if not any(mean is not None for mean in means):
        return None
    chart = _chart(pygal.Line, show_legend=False, dots_size=4, allow_interruptions=True, range=(0, _score_scale(means)),
                   value_formatter=lambda v: f"{v:g}", formatter=lambda v: f"{v:.1f}")
    chart.x_labels = periods
    chart.add(title, means)
    return _render(chart)


def satisfaction(report: Report) -> str | None:
    """Mean satisfaction score per period (surveys and follow-up visits)."""
    return _trend(report, report.get("satisfaction", {}).get("by_period", {}), "Satisfaction")


def quality(report: Report) -> str | None:
    """Mean quality check score per period."""
    return _trend(report, report.get("quality", {}).get("by_period", {}), "Quality score")


def improvements(report: Report) -> str | None:
    """Improvement cycles adopted vs re-planned per period."""
    periods = list(report.get("periods") or [])
    by_period = report.get("improvements", {}).get("by_period", {})
    return _period_bars(report, {
        "Adopted": [by_period.get(period, {}).get("adopted", 0) for period in periods],
        "Re-planned": [by_period.get(period, {}).get("replanned", 0) for period in periods],
    })


def cancellations(report: Report) -> str | None:
    """Cases cancelled per process, most on top."""
    by_process = report.get("cancellations", {}).get("by_process", {})
    return _count_bars([(str(report["processes"].get(name, {}).get("title") or name), count) for name, count in by_process.items()], "Cancelled")


CHARTS: dict[str, tuple[str, Callable[[Report], str | None]]] = {
    "opened-closed": ("Cases opened and closed per period", opened_closed),
    "cycle-time": ("Cycle time per process (median, p90)", cycle_time),
    "sla": ("SLA met % per process", sla_met),
    "backlog-aging": ("Backlog aging: open cases by age", backlog_aging),
    "slowest-steps": ("Slowest steps (median, p90 of finished visits)", slowest_steps),
    "overdue-steps": ("Steps with overdue visits", overdue_steps),
    "approvals-people": ("Answer turnaround per person", approvals_people),
    "approvals-roles": ("Answer turnaround per role", approvals_roles),
    "satisfaction": ("Satisfaction trend (mean score)", satisfaction),
    "improvements": ("Improvements adopted vs re-planned", improvements),
    "quality": ("Quality check scores over time", quality),
    "cancellations": ("Cancellations per process", cancellations),
}
"""Chart id → (title, function), in the order the report shows them."""
