"""practices.yaml: the shipped file names only what the definitions have, a bad one is refused
with FILE:LINE:COL, and a register filled by every shipped scenario gives each of the seventeen
practices a figure."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from aftercare.engine.errors import DefinitionError
from aftercare.engine.loader import PRACTICES_FILE, Library
from aftercare.engine.register import Register
from aftercare.flows.cli.init import shipped_library
from aftercare.flows.reporting import build_report, load_practices, practices_file
from aftercare.notifications import load_checked_library
from tests.reporting.recording import record_every_scenario

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ROOT / "processes"


@pytest.fixture(scope="module")
def library() -> Library:
    return load_checked_library(PROCESSES)


def test_the_shipped_file_names_only_what_the_definitions_have(library: Library) -> None:
    practices = load_practices(PROCESSES / PRACTICES_FILE, library)
    assert [p.number for p in practices.practices] == list(range(1, 18))
    assert all(p.figures for p in practices.practices)
    assert practices_file(library) == PROCESSES / PRACTICES_FILE


def test_it_ships_with_the_library_and_is_no_definition(library: Library) -> None:
    assert (shipped_library() / PRACTICES_FILE).is_file()
    assert "practices" not in library.definitions and len(library.definitions) == 23
    assert practices_file(Library(team=library.team)).is_file()  # a folder without one: the shipped file


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("process: knowledge-capture, measure: outcome, outcome: [published]", "process: knowledge-captur, measure: outcome, outcome: [published]",
         "practices[5].figures[0].process: unknown process 'knowledge-captur'; did you mean 'knowledge-capture'?"),
        ("outcome: [published]", "outcome: [publshed]",
         "practices[5].figures[0].outcome[0]: knowledge-capture never closes with outcome 'publshed'; did you mean 'published'?"),
        ("step: draft, visit: 2", "step: drafts, visit: 2",
         "practices[5].figures[1].step: knowledge-capture has no step 'drafts'; did you mean 'draft'?"),
        ("step: inspect, field: score}", "step: inspect, field: scores}",
         "practices[10].figures[0].field: step 'inspect' of quality-improvement has no field 'scores'; did you mean 'score'?"),
        ("measure: mean, step: answer, field: overall}", "measure: mean, step: answer}",
         "practices[7].figures[0]: measure 'mean' needs field: FIELD (a number of the step's answer or result)"),
    ],
    ids=["process", "outcome", "step", "field", "shape"],
)
def test_a_bad_name_is_refused_with_its_line(library: Library, tmp_path: Path, old: str, new: str, message: str) -> None:
    text = (PROCESSES / PRACTICES_FILE).read_text(encoding="utf-8")
    assert old in text
    bad = tmp_path / PRACTICES_FILE
    bad.write_text(text.replace(old, new, 1), encoding="utf-8")
    line = next(number for number, content in enumerate(bad.read_text(encoding="utf-8").splitlines(), 1) if new in content)
    with pytest.raises(DefinitionError) as raised:
        load_practices(bad, library)
    problems = raised.value.problems
    assert len(problems) == 1
    assert (problems[0].line, f"{problems[0].path}: {problems[0].message}") == (line, message)
    assert str(problems[0]).startswith(f"{bad}:{line}:")


def test_every_practice_gets_a_figure_from_the_shipped_scenarios(register: Register, library: Library) -> None:
    recorded = record_every_scenario(register, library)
    assert len(recorded) >= 60
    opened = sorted(at for _, at in recorded)
    report = build_report(
        register, library, since=opened[0].replace(day=1, hour=0), until=datetime(2026, 3, 1, tzinfo=timezone.utc),
        process=None, now=datetime(2026, 3, 1, tzinfo=timezone.utc),
    )
    assert [p["number"] for p in report["practices"]] == list(range(1, 18))
    for practice in report["practices"]:
        shown = [f for f in practice["figures"] if f["total"] not in (None, 0)]
        assert shown, f"practice {practice['number']} {practice['id']}: no figure has a value"
        for figure in shown:
            assert any(value not in (None, 0) for value in figure["by_period"].values()), figure["label"]
    assert set(report["processes"]) == set(library.definitions)


def test_docs_practices_lists_the_figures_of_the_file(library: Library) -> None:
    text = (ROOT / "docs" / "practices.md").read_text(encoding="utf-8").split("## The figures of each practice", 1)[1]
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    practices = load_practices(PROCESSES / PRACTICES_FILE, library).practices
    assert [(int(row[0][2:]), row[1]) for row in rows] == [(p.number, p.title) for p in practices]
    for row, practice in zip(rows, practices):
        assert row[2].rstrip(" |") == "; ".join(f"{f.label} (`{f.process}`)" for f in practice.figures)


def test_init_copies_it_and_the_copy_checks_against_the_copied_definitions(tmp_path: Path) -> None:
    import argparse

    from aftercare.flows.cli.init import init

    folder = tmp_path / "ours"
    assert init(argparse.Namespace(folder=str(folder))) == 0
    copied = load_checked_library(folder)
    assert practices_file(copied) == folder / PRACTICES_FILE
    assert len(load_practices(folder / PRACTICES_FILE, copied).practices) == 17


def test_validate_checks_the_practices_file_of_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from aftercare.flows.cli import main
    from aftercare.flows.cli.init import init

    folder = tmp_path / "ours"
    init(argparse.Namespace(folder=str(folder)))
    capsys.readouterr()
    assert main(["validate", str(folder)]) == 0
    practices = folder / PRACTICES_FILE
    practices.write_text(practices.read_text(encoding="utf-8").replace("step: inspect, field: score}", "step: inspect, field: scores}", 1), encoding="utf-8")
    for target in (folder, practices):
        assert main(["validate", str(target)]) == 1
        err = capsys.readouterr().err.splitlines()
        assert err[0].startswith(f"{practices}:") and err[0].endswith("step 'inspect' of quality-improvement has no field 'scores'; did you mean 'score'?")
        assert err[1:] == ["1 problem(s)"]
