"""The report as one self-contained HTML file: inline CSS, inline SVG charts, no script, nothing fetched.

``render_html`` takes the dict of ``flows.reporting.build_report`` (the layout of
``aftercare report --json``) and the processes' diagrams, and fills
``templates/report.html.j2`` (autoescaped: titles, comments and names from the register
are text, never markup). The charts come from :mod:`.report_charts` (pygal); the risk
heat map is drawn by the template itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from aftercare.engine import graph
from aftercare.engine.loader import Library
from aftercare.engine.spec import ProcessSpec

from . import report_charts
from .report_format import figure, human_date, human_duration, human_moment, percent

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE = "report.html.j2"
GRID = 5
CELL = 60
CELL_STEP = 64


def render_html(report: Mapping[str, Any], diagrams: Mapping[str, str] | None = None, *, only: str | None = None) -> str:
    """The report's HTML page.

    Args:
        report: ``build_report``'s dict.
        diagrams: process id → its diagram as inline SVG (trusted markup); a process
            without one says so in its section.
        only: the process the report was limited to (``--process``), named in the header.
    """
    processes = list(report.get("processes", {}).items())
    return _environment().get_template(TEMPLATE).render(
        report=report,
        processes=processes,
        only=only,
        totals={key: sum(int(p.get(key) or 0) for _, p in processes) for key in ("opened", "closed", "open", "cancelled")},
        charts=[{"id": chart_id, "title": title, "svg": _markup(draw(report))} for chart_id, (title, draw) in report_charts.CHARTS.items()],
        risk_cells=risk_cells(report.get("risks", {}).get("heatmap", [])),
        risks_open=sorted(report.get("risks", {}).get("open", []), key=lambda risk: -int(risk.get("score") or 0)),
        diagrams={name: Markup(svg) for name, svg in (diagrams or {}).items() if svg},
        font_stack=report_charts.FONT_STACK,
    )


def process_diagrams(library: Library | None, report: Mapping[str, Any]) -> dict[str, str]:
    """Each reported process's diagram as inline SVG, drawn from the folder's definition (none without a folder)."""
    if library is None:
        return {}
    return {name: process_diagram(library.definitions[name].spec) for name in report.get("processes", {}) if name in library.definitions}


def process_diagram(spec: ProcessSpec) -> str:
    """One process's diagram as a standalone inline ``<svg>`` (no script, no external reference)."""
    return graph.svg(spec)


def risk_cells(heatmap: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The 25 cells of the heat map (likelihood × impact, 1–5 each) with their counts, places and colours."""
    counts = {(int(c["likelihood"]), int(c["impact"])): int(c["count"]) for c in heatmap}
    return [
        {"likelihood": likelihood, "impact": impact, "count": counts.get((likelihood, impact), 0),
         "x": 40 + (likelihood - 1) * CELL_STEP, "y": 10 + (GRID - impact) * CELL_STEP, "size": CELL,
         "colour": _risk_colour(likelihood * impact)}
        for impact in range(GRID, 0, -1) for likelihood in range(1, GRID + 1)
    ]


def _risk_colour(score: int) -> str:
    if score >= 15:
        return "#c53030"
    if score >= 10:
        return "#dd6b20"
    if score >= 5:
        return "#d69e2e"
    return "#38a169"


def _markup(svg: str | None) -> Markup | None:
    return Markup(svg) if svg else None


def _days(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} d"


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(duration=human_duration, moment=human_moment, day=human_date, percent=percent, figure=figure, days=_days)
    return environment
