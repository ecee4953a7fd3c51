"""The report's HTML file in headless Chromium with the network blocked: drawn, quiet, self-contained.

The register is filled with the shipped library's scenarios on the simulated clock
(``tests/cli/report_register.py``); ``aftercare report`` writes the file; Chromium opens it
from ``file://`` with every other request aborted and recorded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from aftercare.engine.register import Register
from tests.cli.report_register import PROCESSES, START, UNTIL, fill_from_scenarios
from tests.e2e.conftest import SCREENSHOTS

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

# The data shapes of a chart: pygal's series (bars, lines, dots) and the heat map's cells.
DRAWN_SHAPES = """figure => [...figure.querySelectorAll(
    'svg .series rect, svg .series path, svg .series circle, svg g.cell rect')]
  .filter(shape => { const box = shape.getBBox(); return box.width > 0 && box.height > 0; }).length"""


@pytest.fixture
def report_file(tmp_path: Path) -> Path:
    """``aftercare report`` over a register of every shipped scenario, some cases open and one cancelled."""
    url = f"sqlite:///{tmp_path / 'register.db'}"
    register = Register(url)
    try:
        fill_from_scenarios(register)
    finally:
        register.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AFTERCARE_"))}
    env.update(AFTERCARE_DATABASE_URL=url, AFTERCARE_PROCESSES=str(PROCESSES), PREFECT_HOME=str(tmp_path / "prefect"))
    out = tmp_path / "report.html"
    done = subprocess.run(
        [sys.executable, "-m", "aftercare.flows.cli", "report", "--since", START.isoformat(), "--until", UNTIL.isoformat(), "--out", str(out)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {out}: ")
    return out


def test_the_report_opens_offline_with_every_chart_drawn(browser_page: Page, report_file: Path) -> None:
    page = browser_page
    address = report_file.as_uri()
    attempted: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: attempted.append(request.url))
    page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}") if message.type in ("error", "warning") else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def only_the_file(route: Any) -> None:
        route.continue_() if route.request.url == address else route.abort()

    page.context.route("**/*", only_the_file)
    page.goto(address, wait_until="load")
    page.wait_for_timeout(500)  # anything late (a font, an image) would ask now

    assert attempted == [address], f"requests beyond the file: {[url for url in attempted if url != address]}"
    assert problems == []
    assert page.locator("script").count() == 0

    charts = page.locator("figure.chart")
    assert charts.count() >= 13
    for index in range(charts.count()):
        chart = charts.nth(index)
        name = chart.get_attribute("data-chart")
        assert chart.get_attribute("data-empty") is None, f"{name}: nothing drawn for the filled register"
        assert chart.evaluate(DRAWN_SHAPES) > 0, f"{name}: no drawn shape of non-zero size"
        assert chart.locator("svg").first.bounding_box()["width"] > 200, name  # type: ignore[index]

    practices = page.locator("[data-practice]")
    assert practices.count() == 17
    for index in range(17):
        values = practices.nth(index).locator("tr.figure td.num").all_inner_texts()
        assert any(value.strip() not in ("—", "0") for value in values), f"practice {index + 1} shows no figure: {values}"

    # Each process's diagram, inside its collapsed <details>, is drawn once opened.
    details = page.locator("details.process")
    assert details.count() == 23
    for index in range(details.count()):
        details.nth(index).evaluate("element => { element.open = true; }")
    drawn = page.locator("details.process").evaluate_all(
        "all => all.map(d => [...d.querySelectorAll('.diagram svg g.node')].filter(n => n.getBBox().width > 0).length)"
    )
    assert all(count > 0 for count in drawn), drawn
    assert page.get_by_text("问题管理 Issue management").count() >= 1

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("() => document.querySelectorAll('details.process').forEach((d, i) => { d.open = i < 2; })")
    page.screenshot(path=str(SCREENSHOTS / "report.png"), full_page=True)
    page.screenshot(path=str(SCREENSHOTS / "report-top.png"))
    assert (SCREENSHOTS / "report.png").stat().st_size > 50_000
