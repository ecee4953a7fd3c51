"""``validate`` checks each path as what it is: a folder of definitions, a definition, a team file, a scenario file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aftercare.engine.library import load_library, validate
from aftercare.flows.cli import main

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ROOT / "processes"
VALID = ROOT / "tests" / "data" / "valid"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """issue-resolution and what it starts, with the shipped team and the scenarios of issue-resolution."""
    for name in ("team.yaml", "issue-resolution.yaml", "issue-resolution.scenarios.yaml", "knowledge-capture.yaml"):
        shutil.copy(PROCESSES / name, tmp_path / name)
    return tmp_path


class TestFolders:
    def test_a_folder_without_definitions_is_a_problem(self, tmp_path: Path) -> None:
        loaded, problems = validate([tmp_path])
        assert not loaded
        assert [str(p) for p in problems] == [f"{tmp_path}:0:0: no definitions in {tmp_path}: a definition is a NAME.yaml beside team.yaml"]

    def test_its_team_file_is_still_checked(self, tmp_path: Path) -> None:
        (tmp_path / "team.yaml").write_text("team:\n  people:\n    ann: {name: Ann, email: nope}\n", encoding="utf-8")
        messages = [p.message for p in validate([tmp_path])[1]]
        assert messages[0].startswith("no definitions in")
        assert messages[1] == "'nope' is not an e-mail address; write NAME@DOMAIN, such as li.na@example.com"

    def test_the_cli_exits_1_for_an_empty_folder(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["validate", str(tmp_path)]) == 1
        assert f"no definitions in {tmp_path}" in capsys.readouterr().err

    def test_a_library_without_definitions_still_loads(self, tmp_path: Path) -> None:
        shutil.copy(VALID / "team.yaml", tmp_path / "team.yaml")
        assert load_library(tmp_path).definitions == {}


class TestScenarioFiles:
    def test_a_scenario_file_is_checked_against_the_definition_beside_it(self, folder: Path) -> None:
        scenarios = folder / "issue-resolution.scenarios.yaml"
        assert validate([scenarios])[1] == []
        scenarios.write_text(scenarios.read_text(encoding="utf-8").replace("path: [", "path: [triagee, ", 1), encoding="utf-8")
        problems = validate([scenarios])[1]
        assert [p.message for p in problems] == ["unknown step 'triagee'; did you mean 'triage'?"]
        assert problems[0].file == str(scenarios) and problems[0].path.endswith(".path[0]")
        assert not any("'process'" in p.message for p in problems)

    def test_a_scenario_file_without_its_definition(self, folder: Path) -> None:
        lonely = folder / "nothing.scenarios.yaml"
        shutil.copy(folder / "issue-resolution.scenarios.yaml", lonely)
        [problem] = validate([lonely])[1]
        assert problem.file == str(lonely) and problem.line > 0
        assert problem.message == "no definition nothing.yaml beside the scenarios, so they test nothing"

    def test_a_scenario_file_by_its_content_finds_the_definition_by_process(self, folder: Path) -> None:
        other = folder / "more-tests.yaml"
        text = (folder / "issue-resolution.scenarios.yaml").read_text(encoding="utf-8")
        assert "\nprocess: issue-resolution\n" in text
        other.write_text(text.replace("path: [", "path: [triagee, ", 1), encoding="utf-8")
        problems = validate([other])[1]
        assert [p.message for p in problems] == ["unknown step 'triagee'; did you mean 'triage'?"]

    def test_a_broken_scenario_file_gets_its_own_shape_problems(self, folder: Path) -> None:
        scenarios = folder / "issue-resolution.scenarios.yaml"
        scenarios.write_text("scenarios:\n  - {name: x, outcom: resolved}\n", encoding="utf-8")
        messages = [p.message for p in validate([scenarios])[1]]
        assert messages == ["unknown field 'outcom'; did you mean 'outcome'?"]

    def test_the_definition_beside_it_is_checked_too(self, folder: Path) -> None:
        definition = folder / "issue-resolution.yaml"
        definition.write_text(definition.read_text(encoding="utf-8").replace("version: 1", "version: true"), encoding="utf-8")
        problems = validate([folder / "issue-resolution.scenarios.yaml"])[1]
        assert [(p.file, p.path) for p in problems] == [(str(definition), "version")]


class TestBrokenTeam:
    def test_a_broken_team_file_is_reported_once_not_as_no_team(self, folder: Path) -> None:
        team = folder / "team.yaml"
        team.write_text(team.read_text(encoding="utf-8").replace("email: li.na@example.com", "email: li.na-at-example.com"), encoding="utf-8")
        loaded, problems = validate([folder])
        assert not loaded
        assert [(p.file, p.path) for p in problems] == [(str(team), "team.people.li.na.email")]
