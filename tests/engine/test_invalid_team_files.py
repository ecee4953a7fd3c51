"""Every file in tests/data/invalid/teams/ is a team file that breaks a rule; its ``# expect:`` lines say how.

The format is that of tests/data/invalid/ (see test_invalid_definitions.py). Each file is
checked twice: by ``load_team`` and through ``validate`` given the file itself, which must
check it as a team file ("missing required field 'process'" would be a definition's complaint).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aftercare.engine.errors import DefinitionError, Problem
from aftercare.engine.library import validate
from aftercare.engine.loader import load_team

from tests.engine.test_invalid_definitions import Expected, expectations

TEAMS = Path(__file__).resolve().parents[1] / "data" / "invalid" / "teams"
CASES = sorted(TEAMS.glob("*.yaml"))


def _compare(file: Path, problems: list[Problem]) -> None:
    unmatched = list(problems)
    missing: list[Expected] = []
    for item in expectations(file):
        hit = next((problem for problem in unmatched if item.matches(problem)), None)
        if hit is None:
            missing.append(item)
        else:
            unmatched.remove(hit)
    reported = "\n".join(str(problem) for problem in problems)
    assert not missing, "expected but not reported:\n" + "\n".join(map(str, missing)) + "\nreported:\n" + reported
    assert not unmatched, "reported but not expected:\n" + "\n".join(str(p) for p in unmatched)


def test_there_are_cases() -> None:
    assert len(CASES) >= 4
    for file in CASES:
        assert expectations(file), f"{file.name} has no '# expect:' line on its first line"


@pytest.mark.parametrize("file", CASES, ids=lambda p: p.stem)
def test_load_team_reports_every_problem(file: Path) -> None:
    with pytest.raises(DefinitionError) as refused:
        load_team(file)
    _compare(file, refused.value.problems)


@pytest.mark.parametrize("file", CASES, ids=lambda p: p.stem)
def test_validate_checks_a_team_file_as_a_team_file(file: Path, tmp_path: Path) -> None:
    """Given by name, whatever the name: ``team:`` at the top makes it a team file."""
    copy = tmp_path / file.name
    shutil.copy(file, copy)
    loaded, problems = validate([copy])
    assert not loaded
    assert not any("'process'" in problem.message for problem in problems), problems
    assert all(problem.file == str(copy) for problem in problems)
    _compare(copy, problems)


def test_a_team_file_named_team_yaml_is_a_team_file_too(tmp_path: Path) -> None:
    team = tmp_path / "team.yaml"
    team.write_text("team:\n  people:\n    ann: {name: Ann, email: ann@example.com}\n", encoding="utf-8")
    assert validate([team]) == ({}, [])


def test_a_good_team_keeps_working() -> None:
    team = load_team(Path(__file__).resolve().parents[2] / "processes" / "team.yaml")
    assert team.people and team.roles
