"""Answers files, read once for simulate, run and scenarios: every mistake a problem with its place."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from aftercare.engine.answers_file import ScriptedAnswers
from aftercare.engine.errors import DefinitionError
from aftercare.engine.loader import Library
from aftercare.engine.yaml_source import read_mapping_file


def problems(library: Library, tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "answers.yaml"
    path.write_text(text, encoding="utf-8")
    document = read_mapping_file(path, "answers")
    with pytest.raises(DefinitionError) as caught:
        ScriptedAnswers.parse(document.data, library.get("release-check").spec, document=document)
    return [str(p).replace(str(path), "answers.yaml") for p in caught.value.problems]


def test_good_answers_are_queued_per_step(valid_library: Library) -> None:
    spec = valid_library.get("release-check").spec
    answers = ScriptedAnswers.parse(
        {"approve-release": [{"decision": "approve", "by": "ann", "after": "1h", "priority": "P1"}, {"timeout": True}]}, spec
    )
    first = answers.pop("approve-release")
    assert first is not None and first.after == timedelta(hours=1)
    assert (first.submission.by, first.submission.decision, dict(first.submission.fields)) == ("ann", "approve", {"priority": "P1"})
    second = answers.pop("approve-release")
    assert second is not None and second.timeout and answers.left() == {}


def test_every_mistake_at_once_with_its_line(valid_library: Library, tmp_path: Path) -> None:
    found = problems(valid_library, tmp_path, (
        "aprove-release: {decision: approve, by: ann}\n"   # 1 unknown step
        "route: {by: ann}\n"                                # 2 a decision step
        "hotfix: just do it\n"                              # 3 not a mapping
        "inspect:\n"
        "  - {decision: approve}\n"                         # 5 no by
        "  - {by: ann, after: -1d}\n"                       # 6 negative
        "  - {by: ann, after: soon}\n"                      # 7 not a duration
        "  - {by: ann, timeout: maybe}\n"                   # 8 not a boolean
    ))
    assert [p.split(": ", 1)[0] for p in found] == [
        "answers.yaml:1:17", "answers.yaml:2:8", "answers.yaml:3:9", "answers.yaml:5:5",
        "answers.yaml:6:22", "answers.yaml:7:22", "answers.yaml:8:24",
    ]
    assert "unknown step 'aprove-release'; did you mean 'approve-release'?" in found[0]
    assert "step 'route' is a decision step; answers are for approval, form and checklist steps" in found[1]
    assert "an answer must be a mapping" in found[2]
    assert "an answer needs 'by': the person who answers" in found[3]
    assert "is not a" in found[4] and "is not a" in found[5]
    assert "timeout: expected true or false, got 'maybe'" in found[6]


def test_a_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "answers.yaml"
    path.write_text("- approve\n", encoding="utf-8")
    with pytest.raises(DefinitionError, match="the answers file must hold a mapping"):
        read_mapping_file(path, "answers")
    with pytest.raises(DefinitionError, match="no such answers file"):
        read_mapping_file(tmp_path / "missing.yaml", "answers")
