"""The command line contract of DESIGN.md: validate, schema and simulate."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from aftercare.flows.cli import main

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
VALID = DATA / "valid"
INVALID = DATA / "invalid"
RELEASE = VALID / "release-check.yaml"
PROBLEM_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<column>\d+): (?P<rest>.+)$")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def definitions(folder: Path) -> list[Path]:
    from aftercare.engine.loader import definition_files

    return definition_files([folder])


def plain(path: Path) -> Any:
    """A YAML file as JSON data, the way an editor's schema check sees it."""
    return json.loads(json.dumps(YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")), default=str))


class TestValidate:
    def test_a_valid_folder(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, err = run(capsys, "validate", str(VALID))
        assert (code, out, err) == (0, "2 definition(s) valid\n", "")

    def test_the_shipped_definitions_are_valid(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, err = run(capsys, "validate", str(ROOT / "processes"))
        assert err == ""
        assert (code, out) == (0, f"{len(definitions(ROOT / 'processes'))} definition(s) valid\n")

    def test_problems_as_file_line_column_message(self, capsys: pytest.CaptureFixture[str]) -> None:
        file = INVALID / "many-problems.yaml"
        code, out, err = run(capsys, "validate", str(file))
        lines = err.splitlines()
        assert code == 1 and out == ""
        assert lines[-1] == "3 problem(s)"
        assert lines[:-1] == [
            f"{file}:13:15: steps[0].assignee: unknown role 'leed'; did you mean 'lead'?",
            f"{file}:14:16: steps[0].on_reject: unknown step 'closd' in on_reject; did you mean 'closed'?",
            f"{file}:18:14: steps[1].message: unknown input 'titel'; did you mean 'title'?",
        ]

    def test_every_problem_of_every_file(self, capsys: pytest.CaptureFixture[str]) -> None:
        files = [INVALID / "yaml-syntax.yaml", INVALID / "bad-cron.yaml", RELEASE]
        code, _, err = run(capsys, "validate", *map(str, files))
        lines = err.splitlines()
        assert code == 1 and lines[-1] == "2 problem(s)"
        assert all(PROBLEM_LINE.match(line) for line in lines[:-1])
        assert {PROBLEM_LINE.match(line)["file"] for line in lines[:-1]} == {str(files[0]), str(files[1])}  # type: ignore[index]

    def test_a_missing_path(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        code, _, err = run(capsys, "validate", str(tmp_path / "nope.yaml"), str(RELEASE))
        assert code == 1
        assert err.splitlines() == [f"{tmp_path / 'nope.yaml'}:0:0: no such file or folder", "1 problem(s)"]

    def test_no_team_file(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        lonely = tmp_path / "lonely" / "release-follow-up.yaml"
        lonely.parent.mkdir()
        shutil.copy(VALID / "release-follow-up.yaml", lonely)
        if (Path(tmp_path.anchor) / "team.yaml").exists():  # pragma: no cover - a team file above /tmp
            pytest.skip("a team.yaml above the temporary folder")
        code, _, err = run(capsys, "validate", str(lonely))
        assert code == 1
        assert "no team.yaml beside the definition or in a folder above it" in err


class TestSchema:
    @pytest.fixture(scope="class")
    def schema(self) -> dict[str, Any]:
        from aftercare.flows.cli import main as cli

        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli(["schema"]) == 0
        return json.loads(out.getvalue())  # type: ignore[no-any-return]

    def test_is_a_valid_json_schema(self, schema: dict[str, Any]) -> None:
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"

    @pytest.mark.parametrize("file", [*definitions(ROOT / "processes"), *definitions(VALID)], ids=lambda p: p.name)
    def test_accepts_every_definition(self, schema: dict[str, Any], file: Path) -> None:
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in Draft202012Validator(schema).iter_errors(plain(file))]
        assert not errors

    @pytest.mark.parametrize(
        "wrong",
        [
            {"process": "x"},
            {"process": "Not Kebab", "title": "t", "version": 1, "key": "AB", "steps": [{"id": "e", "type": "end", "outcome": "done"}]},
            {"process": "x", "title": "t", "version": 1, "key": "AB", "steps": "not a list"},
            {"process": "x", "title": "t", "version": 1, "key": "AB", "steps": [{"id": "e", "type": "aproval", "assignee": "role:x"}]},
            {"process": "x", "title": "t", "version": 1, "key": "AB", "stpes": [], "steps": [{"id": "e", "type": "end", "outcome": "done"}]},
            ["a", "list"],
        ],
    )
    def test_rejects_wrong_definitions(self, schema: dict[str, Any], wrong: Any) -> None:
        assert list(Draft202012Validator(schema).iter_errors(wrong))


class TestSimulate:
    def files(self, tmp_path: Path, inputs: dict[str, Any], answers: dict[str, Any]) -> tuple[str, str]:
        inputs_file, answers_file = tmp_path / "inputs.yaml", tmp_path / "answers.json"
        inputs_file.write_text("\n".join(f"{k}: {v}" for k, v in inputs.items()) + "\n", encoding="utf-8")
        answers_file.write_text(json.dumps(answers), encoding="utf-8")
        return str(inputs_file), str(answers_file)

    def test_prints_each_step_then_the_outcome(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        inputs, answers = self.files(tmp_path, {"title": "v2", "owner": "cid"}, {"approve-release": {"timeout": True}})
        code, out, err = run(capsys, "simulate", str(RELEASE), "--inputs", inputs, "--answers", answers)
        assert (code, err) == (0, "")
        assert out == "approve-release\nexpired\noutcome: expired\n"

    def test_json(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        answers = {"approve-release": [{"decision": "approve", "by": "ann", "priority": "P2"}, {"decision": "reject", "by": "bob"}]}
        inputs, answers_file = self.files(tmp_path, {"title": "v2", "owner": "cid"}, answers)
        code, out, _ = run(capsys, "simulate", str(RELEASE), "--inputs", inputs, "--answers", answers_file, "--json")
        assert code == 0
        assert json.loads(out) == {"case": "REL-0001", "path": ["approve-release", "rejected"], "outcome": "rejected", "withdrawn": []}

    def test_an_answer_from_someone_not_named_is_refused(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        inputs, answers = self.files(tmp_path, {"title": "v2", "owner": "cid"}, {"approve-release": {"decision": "approve", "by": "cid"}})
        code, out, err = run(capsys, "simulate", str(RELEASE), "--inputs", inputs, "--answers", answers)
        assert code == 1
        assert "'cid' may not answer step 'approve-release'" in err
        assert "Traceback" not in err

    def test_bad_inputs(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        inputs, answers = self.files(tmp_path, {"title": "v2", "owner": "zed"}, {})
        code, _, err = run(capsys, "simulate", str(RELEASE), "--inputs", inputs, "--answers", answers)
        assert code == 1
        assert "input 'owner': unknown person 'zed'" in err

    def test_a_broken_definition_gives_file_line_column(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        shutil.copy(INVALID / "team.yaml", tmp_path / "team.yaml")
        broken = tmp_path / "broken.yaml"
        shutil.copy(INVALID / "unknown-target-next.yaml", broken)
        code, out, err = run(capsys, "simulate", str(broken))
        assert (code, out) == (1, "")
        assert err.splitlines() == [f"{broken}:10:11: steps[0].next: unknown step 'resolv' in next; did you mean 'resolve'?"]

    def test_an_answers_file_that_is_not_a_mapping(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        answers = tmp_path / "answers.yaml"
        answers.write_text("- a\n- list\n", encoding="utf-8")
        code, _, err = run(capsys, "simulate", str(RELEASE), "--answers", str(answers))
        assert code == 1
        assert err.startswith(f"{answers}:1:1: the answers file must hold a mapping")
