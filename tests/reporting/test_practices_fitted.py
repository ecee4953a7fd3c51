"""A folder without its own practices.yaml (another team's vocabulary) gets the shipped figures its definitions carry, never an error."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

from aftercare.engine.loader import PRACTICES_FILE
from aftercare.engine.register import Register
from aftercare.flows.reporting import build_report, practices_for
from aftercare.notifications import load_checked_library

PROCESSES = Path(__file__).resolve().parents[2] / "processes"


def _folder(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "processes"
    folder.mkdir()
    shutil.copy(PROCESSES / "team.yaml", folder / "team.yaml")
    for name in names:
        shutil.copy(PROCESSES / f"{name}.yaml", folder / f"{name}.yaml")
    return folder


def test_a_folder_of_its_own_gets_only_the_figures_its_definitions_have(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "knowledge-capture", "cost-review")
    text = (folder / "cost-review.yaml").read_text(encoding="utf-8")
    (folder / "cost-review.yaml").write_text(text.replace("corrective-plan", "plan-corrections"), encoding="utf-8")
    library = load_checked_library(folder)
    assert not (folder / PRACTICES_FILE).exists()

    practices = practices_for(library)

    assert len(practices.practices) == 17
    kept = {(figure.process, figure.outcome) for practice in practices.practices for figure in practice.figures}
    assert {process for process, _ in kept} <= {"knowledge-capture", "cost-review"}
    assert ("knowledge-capture", ("published",)) in kept
    assert ("cost-review", ("within-budget",)) in kept
    assert ("cost-review", ("corrective-plan",)) not in kept  # renamed in this folder: that figure is left out
    assert practices.risks is None and practices.improvements is None


def test_its_report_is_built(tmp_path: Path) -> None:
    library = load_checked_library(_folder(tmp_path, "issue-resolution", "knowledge-capture"))
    register = Register(f"sqlite:///{tmp_path / 'register.db'}")
    try:
        report = build_report(register, library, since=None, until=None, process=None, now=datetime(2026, 12, 1, tzinfo=timezone.utc))
    finally:
        register.close()
    assert len(report["practices"]) == 17
    shown = {figure["process"] for practice in report["practices"] for figure in practice["figures"]}
    assert shown == {"issue-resolution", "knowledge-capture"}
