"""``aftercare report``: its HTML file (self-contained, escaped, human units) and the command over a real SQLite register."""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from aftercare.flows import report_charts
from aftercare.flows.report_format import human_duration
from aftercare.flows.report_html import render_html, risk_cells

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests/data/report/sample_report.json"
NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


@pytest.fixture
def sample() -> dict[str, Any]:
    """A report of build_report's layout: four processes over three months, the seventeen practices."""
    return json.loads(SAMPLE.read_text(encoding="utf-8"))


class _References(HTMLParser):
    """The addresses a page would fetch: attributes that load something, and url()/@import in styles."""

    LOADING = {"src", "href", "xlink:href", "data", "poster", "srcset", "action", "background"}

    def __init__(self) -> None:
        super().__init__()
        self.fetched: list[str] = []
        self._style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._style = tag == "style"
        for name, value in attrs:
            if value and (name in self.LOADING and not (tag == "a" and name == "href") or name == "style"):
                self.fetched.extend(_style_urls(value) if name == "style" else [value])

    def handle_data(self, data: str) -> None:
        if self._style:
            self.fetched.extend(_style_urls(data))

    def handle_endtag(self, tag: str) -> None:
        self._style = False


def _style_urls(css: str) -> list[str]:
    return [a or b for a, b in re.findall(r"""url\(\s*["']?([^"')]+)|@import\s+["']?([^"';\s]+)""", css)]


def outside_references(html: str) -> list[str]:
    """Every address the page would fetch (links people click excluded), other than its own anchors."""
    parser = _References()
    parser.feed(html)
    return [address for address in parser.fetched if not address.startswith("#")]


@pytest.mark.parametrize(("seconds", "said"), [
    (None, "—"), (45, "45 s"), (720, "12 min"), (3600, "1 h"), (9000, "2 h 30 min"), (86399, "24 h"),
    (3.2 * 86400, "3.2 d"), (90000, "1.0 d"),
])
def test_durations_read_as_people_say_them(seconds: float | None, said: str) -> None:
    assert human_duration(seconds) == said


def test_the_page_fetches_nothing_and_runs_no_script(sample: dict[str, Any]) -> None:
    html = render_html(sample)
    assert "<script" not in html.lower()
    assert "<link" not in html.lower() and "<img" not in html.lower()
    assert outside_references(html) == []
    every_http = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    links = {item["link"] for item in sample["attention"] if item["link"]}
    assert every_http <= NAMESPACES | links, every_http - NAMESPACES - links
    assert "<!--" not in html  # pygal's comments name its web site


def test_every_chart_is_drawn_from_the_figures(sample: dict[str, Any]) -> None:
    html = render_html(sample)
    for chart_id, (title, _draw) in report_charts.CHARTS.items():
        figure = re.search(rf'<figure[^>]*data-chart="{chart_id}"[^>]*>(.*?)</figure>', html, re.S)
        assert figure is not None, chart_id
        assert "<svg" in figure.group(1) and 'data-empty' not in figure.group(0), (chart_id, title)
    opened = report_charts.opened_closed(sample)
    assert opened is not None
    # the periods' sums over the processes are the printed values: 12, 16 and 6 opened
    assert [int(v) for v in re.findall(r'class="value[^"]*"[^>]*>(\d+)<', opened)][:3] == [12, 16, 6]


def test_an_empty_window_says_so_instead_of_drawing(sample: dict[str, Any]) -> None:
    empty = {**sample, "processes": {}, "attention": [], "stale": [], "approvals": {"people": {}, "roles": {}},
             "satisfaction": {"by_period": {}, "sources": []}, "quality": {"by_period": {}},
             "improvements": {"adopted": 0, "replanned": 0, "other": 0, "by_period": {}},
             "cancellations": {"total": 0, "by_process": {}}, "risks": {"heatmap": [], "open": []}}
    html = render_html(empty)
    assert html.count('data-empty="true"') == len(report_charts.CHARTS)
    assert "No open case is overdue" in html and "No stale case." in html


def test_titles_are_text_never_markup(sample: dict[str, Any]) -> None:
    hostile = copy.deepcopy(sample)
    hostile["processes"]["issue-resolution"]["title"] = '<img src="http://evil.example/x.png">问题'
    hostile["stale"][0]["title"] = "<script>alert(1)</script>"
    html = render_html(hostile)
    assert "<script>alert" not in html and '<img src="http://evil' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "订单导出 Excel 超时 &lt;Order export&gt; times out" in html
    assert outside_references(html) == []


def test_the_header_names_the_window_and_the_practices_show_their_figures(sample: dict[str, Any]) -> None:
    html = render_html(sample)
    assert "2026-09-01 00:00 UTC" in html and "2026-12-01 00:00 UTC" in html and "(exclusive)" in html
    practices = re.findall(r'data-practice="(\d+)"', html)
    assert practices == [str(n) for n in range(1, 18)]
    assert ">5. 问题管理 Issue management<" in html
    assert "1.1 d" in html and "45 min" in html and "87.5 %" in html


def test_the_heat_map_places_each_risk_by_likelihood_and_impact(sample: dict[str, Any]) -> None:
    cells = risk_cells(sample["risks"]["heatmap"])
    assert len(cells) == 25
    assert {(c["likelihood"], c["impact"]): c["count"] for c in cells if c["count"]} == {(4, 5): 1, (2, 3): 2, (1, 1): 1}
    top_right = next(c for c in cells if (c["likelihood"], c["impact"]) == (5, 5))
    bottom_left = next(c for c in cells if (c["likelihood"], c["impact"]) == (1, 1))
    assert top_right["x"] > bottom_left["x"] and top_right["y"] < bottom_left["y"]
