"""Every file in tests/data/invalid/ breaks one rule; its ``# expect:`` lines say how the loader must report it.

An expect line reads ``# expect: LINE:COL: FIELD_PATH: MESSAGE`` (the field path is left
out for problems of the whole file, as the CLI prints them); MESSAGE is a substring of
the reported message. Every expected problem must be reported at exactly that line,
column and path, and nothing else may be reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from aftercare.engine.errors import Problem
from aftercare.engine.library import validate

INVALID = Path(__file__).resolve().parents[1] / "data" / "invalid"
CASES = sorted(p for p in INVALID.glob("*.yaml") if p.name != "team.yaml")
_EXPECT = re.compile(r"^# expect: (?P<line>\d+):(?P<column>\d+): (?:(?P<path>[A-Za-z_][\w\-]*(?:\[\d+\]|\.[\w\-]+)*): )?(?P<message>.+)$")


@dataclass(frozen=True)
class Expected:
    line: int
    column: int
    path: str
    message: str

    def matches(self, problem: Problem) -> bool:
        return (problem.line, problem.column, problem.path) == (self.line, self.column, self.path) and self.message in problem.message

    def __str__(self) -> str:
        return f"{self.line}:{self.column}: {self.path + ': ' if self.path else ''}{self.message}"


def expectations(file: Path) -> list[Expected]:
    """The ``# expect:`` lines at the top of a case file."""
    out = []
    for text in file.read_text(encoding="utf-8").splitlines():
        if not text.startswith("# expect:"):
            break
        found = _EXPECT.match(text)
        assert found, f"{file.name}: malformed expect line {text!r}"
        out.append(Expected(int(found["line"]), int(found["column"]), found["path"] or "", found["message"]))
    return out


def test_every_case_has_expectations() -> None:
    assert len(CASES) >= 40
    for file in CASES:
        assert expectations(file), f"{file.name} has no '# expect:' line on its first line"


@pytest.mark.parametrize("file", CASES, ids=lambda p: p.stem)
def test_invalid_definition(file: Path) -> None:
    expected = expectations(file)
    loaded, problems = validate([file])
    assert not loaded, f"{file.name} loaded although it is broken"
    assert all(problem.file == str(file) for problem in problems)
    unmatched = list(problems)
    missing = []
    for item in expected:
        hit = next((problem for problem in unmatched if item.matches(problem)), None)
        if hit is None:
            missing.append(str(item))
        else:
            unmatched.remove(hit)
    reported = "\n".join(str(problem) for problem in problems)
    assert not missing, "expected but not reported:\n" + "\n".join(missing) + "\nreported:\n" + reported
    assert not unmatched, "reported but not expected:\n" + "\n".join(str(p) for p in unmatched)


def test_many_problems_reported_at_once() -> None:
    _, problems = validate([INVALID / "many-problems.yaml"])
    assert len(problems) >= 3
    _, problems = validate([INVALID / "many-shape-problems.yaml"])
    assert len(problems) >= 3
