"""``aftercare report``: its HTML file (self-contained, escaped, human units) and the command over a real SQLite register."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from aftercare.engine.register import Register
from aftercare.flows import report_charts
from aftercare.flows.report_format import human_duration
from aftercare.flows.report_html import render_html, risk_cells
from tests.cli.report_register import START, UNTIL, FilledRegister, fill_from_scenarios

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


# --- the command over a real SQLite register --------------------------------------------------------

AFTERCARE = [sys.executable, "-m", "aftercare.flows.cli"]
WINDOW = ["--since", START.date().isoformat(), "--until", UNTIL.date().isoformat()]


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, FilledRegister]:
    """A SQLite register with every shipped scenario as a case over three months, some left open, one cancelled."""
    url = f"sqlite:///{tmp_path_factory.mktemp('report') / 'register.db'}"
    register = Register(url)
    try:
        return url, fill_from_scenarios(register)
    finally:
        register.close()


@pytest.fixture
def filled_env(user_env: dict[str, str], filled: tuple[str, FilledRegister]) -> dict[str, str]:
    return {**user_env, "AFTERCARE_DATABASE_URL": filled[0]}


def aftercare(env: dict[str, str], *args: str, cwd: Path = ROOT) -> tuple[int, str, str]:
    done = subprocess.run([*AFTERCARE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr.strip()


def test_json_counts_every_case_of_the_window(filled_env: dict[str, str], filled: tuple[str, FilledRegister]) -> None:
    code, out, err = aftercare(filled_env, "report", *WINDOW, "--json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    cases = filled[1]
    assert report["since"] == "2026-08-03T00:00:00+00:00" and report["until"] == "2026-11-02T00:00:00+00:00"
    assert set(report["processes"]) == cases.processes
    assert sum(p["opened"] for p in report["processes"].values()) == len(cases.closed) + len(cases.open) + len(cases.cancelled)
    closing_later = [key for key, at in cases.closed_at.items() if at >= UNTIL]  # open as the window ends
    assert sum(p["open"] for p in report["processes"].values()) == len(cases.open) + len(closing_later)
    assert report["cancellations"]["total"] == len(cases.cancelled) == report["processes"]["issue-resolution"]["cancelled"]
    for key in ("opened", "closed", "open", "cancelled", "outcomes", "cycle_time", "sla", "rework", "steps"):
        assert all(key in p for p in report["processes"].values()), key


def test_the_html_file_is_written_where_asked_and_said_in_one_line(filled_env: dict[str, str], tmp_path: Path) -> None:
    code, out, err = aftercare(filled_env, "report", *WINDOW, "--process", "issue-resolution.yaml", "--out", str(tmp_path / "iss.html"))
    assert (code, err) == (0, "")
    html = (tmp_path / "iss.html").read_text(encoding="utf-8")
    assert out.splitlines() == [f"wrote {tmp_path / 'iss.html'}: 5 cases opened from 2026-08-03T00:00:00+00:00 until 2026-11-02T00:00:00+00:00, 1 processes"]
    assert re.findall(r'<tr data-process="([^"]+)"', html) == ["issue-resolution"]
    assert "process issue-resolution only" in html and '<details class="process" data-process="issue-resolution">' in html
    assert '<g class="node"' in html  # its diagram, drawn by engine.graph


def test_by_default_report_html_lands_in_the_current_folder(user_env: dict[str, str], tmp_path: Path) -> None:
    code, out, err = aftercare(user_env, "report", cwd=tmp_path)  # an empty register: a report with nothing in it
    assert (code, err) == (0, "")
    assert out.startswith(f"wrote {tmp_path / 'report.html'}: 0 cases opened from ")
    assert "No case of any process in this window." in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_a_naive_moment_is_utc_and_an_offset_is_kept(filled_env: dict[str, str]) -> None:
    code, out, _ = aftercare(filled_env, "report", "--since", "2026-08-03T09:30", "--until", "2026-11-02T08:00+08:00", "--json")
    report = json.loads(out)
    assert datetime.fromisoformat(report["since"]) == datetime(2026, 8, 3, 9, 30, tzinfo=timezone.utc)
    assert datetime.fromisoformat(report["until"]) == datetime(2026, 11, 2, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("args", "said"), [
    (["--since", "2026-13-01"], "aftercare report: --since '2026-13-01' is not an ISO 8601 date or date-time (e.g. 2026-11-01 or 2026-11-01T09:00+08:00)"),
    (["--until", "last week"], "aftercare report: --until 'last week' is not an ISO 8601 date or date-time (e.g. 2026-11-01 or 2026-11-01T09:00+08:00)"),
    (["--since", "2026-11-02", "--until", "2026-11-01"], "aftercare report: --since 2026-11-02 is not before --until 2026-11-01 (--until is exclusive)"),
    (["--process", "issue-resolutoin"], f"aftercare report: no process 'issue-resolutoin' in {ROOT / 'processes'}; did you mean 'issue-resolution'?"),
])
def test_a_mistake_is_one_line_and_exit_1(user_env: dict[str, str], tmp_path: Path, args: list[str], said: str) -> None:
    assert aftercare(user_env, "report", *args, cwd=tmp_path)[::2] == (1, said)
    assert not (tmp_path / "report.html").exists()


def test_an_unreachable_register_is_one_line(user_env: dict[str, str], tmp_path: Path) -> None:
    env = {**user_env, "AFTERCARE_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/aftercare"}
    code, _, said = aftercare(env, "report", "--json", cwd=tmp_path)
    assert code == 1 and len(said.splitlines()) == 1
    assert said.startswith("aftercare report: the register at postgresql+psycopg://postgres@127.0.0.1:1/aftercare failed: ")
