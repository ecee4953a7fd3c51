"""``aftercare test``: the shipped scenarios pass at full coverage; failures and shortfalls exit 1 and say why."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from aftercare.engine import answers
from aftercare.engine.errors import DefinitionError
from aftercare.engine.scenarios import load_scenarios
from aftercare.engine.spec import ChecklistStep
from aftercare.flows.cli import main

PROCESSES = Path(__file__).resolve().parents[1] / "processes"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A small library to break: the team, knowledge-capture and its scenarios."""
    target = tmp_path / "processes"
    target.mkdir()
    for name in ("team.yaml", "knowledge-capture.yaml", "knowledge-capture.scenarios.yaml"):
        shutil.copy(PROCESSES / name, target / name)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


class TestShippedLibrary:
    def test_every_step_and_exit_is_walked(self, capsys: pytest.CaptureFixture[str]) -> None:
        code = main(["test", str(PROCESSES), "--min-coverage", "100"])
        out, err = capsys.readouterr()
        assert code == 0, out + err
        total = out.strip().splitlines()[-1]
        assert re.match(r"total: \d+ definition\(s\), \d+ scenario\(s\): \d+ passed, 0 failed; steps 100\.0% .*branches 100\.0%", total), total
        assert "FAIL" not in out
        assert err == ""

    def test_one_definition_by_its_file(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["test", str(PROCESSES / "risk-response.yaml"), "--min-coverage", "100"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("risk-response (")
        assert "total: 1 definition(s)" in out

    def test_one_definition_by_its_scenario_file(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["test", str(PROCESSES / "maintenance-check.scenarios.yaml")]) == 0
        assert "maintenance-check (" in capsys.readouterr().out

    def test_default_folder_is_aftercare_processes(self, monkeypatch: pytest.MonkeyPatch, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
        monkeypatch.setenv("AFTERCARE_PROCESSES", str(folder))
        assert main(["test", "--min-coverage", "100"]) == 0
        assert "total: 1 definition(s), 2 scenario(s): 2 passed, 0 failed" in capsys.readouterr().out


class TestFailures:
    def test_small_library_passes_before_it_is_broken(self, folder: Path) -> None:
        assert main(["test", str(folder), "--min-coverage", "100"]) == 0

    def test_wrong_outcome_fails_with_the_position(self, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
        scenarios = folder / "knowledge-capture.scenarios.yaml"
        _edit(scenarios, "    outcome: published\n    fields:", "    outcome: rejected\n    fields:")
        line = _line_of(scenarios, "outcome: rejected")
        assert main(["test", str(folder)]) == 1
        out, err = capsys.readouterr()
        assert (
            f"FAIL {scenarios}:{line}:14: scenarios[0].outcome: scenario 'Article on background exports, reworked after peer review': "
            "expected outcome 'rejected', got 'published'"
        ) in out
        assert "1 passed, 1 failed" in out
        assert "aftercare test: 1 scenario(s) failed" in err

    def test_wrong_path_names_the_first_difference(self, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
        scenarios = folder / "knowledge-capture.scenarios.yaml"
        _edit(scenarios, "path: [draft, peer-review, draft, peer-review, publish", "path: [draft, peer-review, publish, announce, publish")
        assert main(["test", str(folder)]) == 1
        out = capsys.readouterr().out
        assert "path differs at step 3: expected 'publish', got 'draft'" in out

    def test_wrong_started_cases_fail(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        target = tmp_path / "p"
        shutil.copytree(PROCESSES, target)
        _edit(target / "maintenance-check.scenarios.yaml", "started: [issue-resolution, issue-resolution]", "started: [issue-resolution]")
        assert main(["test", str(target / "maintenance-check.yaml")]) == 1
        out = capsys.readouterr().out
        assert "expected the case to open ['issue-resolution'], it opened ['issue-resolution', 'issue-resolution']" in out

    def test_coverage_shortfall_exits_1_and_lists_what_is_missing(self, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
        scenarios = folder / "knowledge-capture.scenarios.yaml"
        text = scenarios.read_text(encoding="utf-8")
        scenarios.write_text(text[: text.index("  - name: Article on background exports")] + text[text.index("  - name: Short how-to"):], encoding="utf-8")
        assert main(["test", str(folder)]) == 0  # no threshold: a shortfall is reported, not failed
        capsys.readouterr()
        assert main(["test", str(folder), "--min-coverage", "100"]) == 1
        out, err = capsys.readouterr()
        assert "steps 100.0% (5/5), branches 83.3% (5/6)" in out
        assert "exits not taken: peer-review:reject" in out
        assert "aftercare test: coverage below 100%: total (steps 100.0%, branches 83.3%); knowledge-capture (steps 100.0%, branches 83.3%)" in err
        assert main(["test", str(folder), "--min-coverage", "80"]) == 0

    def test_missing_scenario_file_is_zero_coverage(self, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
        (folder / "knowledge-capture.scenarios.yaml").unlink()
        assert main(["test", str(folder), "--min-coverage", "50"]) == 1
        out = capsys.readouterr().out
        assert f"no scenarios: write {folder / 'knowledge-capture.scenarios.yaml'}" in out
        assert "steps 0.0% (0/5)" in out

    def test_unused_answers_fail(self, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
        _edit(folder / "knowledge-capture.scenarios.yaml", "      peer-review: {decision: approve, by: liu.yang}\n",
              "      peer-review:\n        - {decision: approve, by: liu.yang}\n        - {decision: approve, by: sarah.jones}\n")
        assert main(["test", str(folder)]) == 1
        assert "answers left unused: peer-review (1); the case never asked for them" in capsys.readouterr().out

    def test_an_answer_the_step_refuses_fails_the_scenario(self, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
        _edit(folder / "knowledge-capture.scenarios.yaml", "peer-review: {decision: approve, by: liu.yang}", "peer-review: {decision: approve, by: zhao.min}")
        assert main(["test", str(folder)]) == 1
        out = capsys.readouterr().out
        assert "AnswerError: 'zhao.min' may not answer step 'peer-review'" in out
        assert "(after draft → peer-review)" in out


class TestBadScenarioFiles:
    def test_unknown_field_points_at_it(self, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
        scenarios = folder / "knowledge-capture.scenarios.yaml"
        _edit(scenarios, "    outcome: published\n    fields:", "    outcome: published\n    outcomes: [published]\n    fields:")
        line = _line_of(scenarios, "outcomes: [published]")
        assert main(["test", str(folder)]) == 1
        out, err = capsys.readouterr()
        # (the loader's "did you mean" does not yet reach models inside a list of models)
        assert f"{scenarios}:{line}:5: scenarios[0].outcomes: unknown field 'outcomes'" in out
        assert "problem(s) in scenario files" in err

    def test_unknown_step_in_answers_points_at_it(self, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
        scenarios = folder / "knowledge-capture.scenarios.yaml"
        _edit(scenarios, "      peer-review: {decision: approve, by: liu.yang}", "      peer-reveiw: {decision: approve, by: liu.yang}")
        line = _line_of(scenarios, "peer-reveiw:")
        assert main(["test", str(folder)]) == 1
        out = capsys.readouterr().out
        assert f"{scenarios}:{line}:20: scenarios[1].answers.peer-reveiw: unknown step 'peer-reveiw'; did you mean 'peer-review'?" in out

    def test_bad_yaml_points_at_the_line(self, folder: Path) -> None:
        scenarios = folder / "knowledge-capture.scenarios.yaml"
        _edit(scenarios, "  - name: Short how-to published first time\n", "  - name: Short how-to published first time\n   inputs: [\n")
        line = _line_of(scenarios, "   inputs: [")
        with pytest.raises(DefinitionError) as caught:
            load_scenarios(scenarios)
        problem = caught.value.problems[0]
        assert problem.file == str(scenarios)
        assert problem.line in (line, line + 1)
        assert "invalid YAML" in problem.message

    def test_scenarios_without_a_definition_are_reported(self, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
        shutil.copy(folder / "knowledge-capture.scenarios.yaml", folder / "knowledge-capure.scenarios.yaml")
        assert main(["test", str(folder)]) == 1
        assert f"{folder / 'knowledge-capure.scenarios.yaml'}:1:1: no definition knowledge-capure.yaml beside these scenarios" in capsys.readouterr().out

    def test_definition_problems_stop_the_run(self, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
        _edit(folder / "knowledge-capture.yaml", "on_reject: draft", "on_reject: drfat")
        assert main(["test", str(folder)]) == 1
        err = capsys.readouterr().err
        assert "unknown step 'drfat' in on_reject; did you mean 'draft'?" in err


def test_checklist_with_a_form_takes_item_verdicts_and_fields() -> None:
    """The router took a checklist's item verdicts for an unknown form field (fixed with the scenarios)."""
    step = ChecklistStep.model_validate(
        {
            "id": "check",
            "type": "checklist",
            "assignee": "role:on-call",
            "items": [{"id": "backups", "label": "Backups"}, {"id": "disk", "label": "Disk"}],
            "form": {"notes": {"type": "text", "required": False}},
        }
    )
    answer = answers.accept_answer(
        step, answers.Submission(by="chen.jie", fields={"items": {"backups": "pass", "disk": "fail"}, "notes": "/data 88 %"}),
        eligible=["chen.jie"],
    )
    assert answer.fields == {"notes": "/data 88 %", "items": {"backups": True, "disk": False}}
    result = answers.human_result(step, [answer], "submit")
    assert (result["score"], result["passed"], result["failed"]) == (50.0, False, ["disk"])
    bare = step.model_copy(update={"form": {}})
    assert answers.accept_answer(bare, answers.Submission(by="chen.jie", fields={"backups": "pass", "disk": "pass"}), eligible=["chen.jie"]).fields == {
        "items": {"backups": True, "disk": True}
    }
