""""Did you mean" keeps its suggestions for ordinary definitions and stays cheap for huge ones."""

from __future__ import annotations

import difflib
import time
from pathlib import Path

import pytest

from aftercare.engine.library import validate
from aftercare.engine.suggest import FULL_SEARCH, closest, did_you_mean

ROOT = Path(__file__).resolve().parents[2]


def _ids() -> list[str]:
    from aftercare.engine.yaml_source import read_yaml

    ids: list[str] = []
    from aftercare.engine.loader import definition_files

    for path in definition_files([ROOT / "processes"]):
        ids += [step["id"] for step in read_yaml(path).data["steps"]]
    return sorted(set(ids))


def test_small_sets_are_searched_as_before() -> None:
    names = _ids()[:FULL_SEARCH]
    for name in names:
        for typo in (name[1:], name[:-1] + "x", name[::-1][:3] + name[3:], name.upper(), name + "s"):
            found = difflib.get_close_matches(typo, names, n=1, cutoff=0.6)
            assert closest(typo, names) == (found[0] if found else None)


@pytest.mark.parametrize(
    "typo",
    ["stpe-number-1234", "step-numbr-1234", "step-numberr-1234", "step-nunber-1234", "setp-number-77", "number-4999", "step_number_12"],
    ids=["swapped", "missing", "one-too-many", "changed", "swapped-early", "start-missing", "underscores"],
)
def test_many_names_get_the_suggestion_comparing_every_name_would(typo: str) -> None:
    names = [f"step-number-{i}" for i in range(5_000)]
    everyone = difflib.get_close_matches(typo, names, n=1, cutoff=0.6)
    assert everyone, "a typo difflib has a suggestion for"
    assert closest(typo, names) == everyone[0]


def test_many_names_cost_little_per_suggestion() -> None:
    names = [f"step-number-{i}" for i in range(5_000)]
    started = time.perf_counter()
    for i in range(5_000):
        assert closest(f"stpe-number-{i}", names) == f"step-number-{i}"
    assert time.perf_counter() - started < 5  # every name against every other: over a minute


def test_nothing_close_and_nonsense() -> None:
    assert did_you_mean("zzz", [f"step-number-{i}" for i in range(5_000)]) == ""
    assert did_you_mean("x" * 5_000, ["x"]) == ""
    assert did_you_mean("anything", []) == ""
    assert did_you_mean("resolv", ["resolve", "triage"]) == "; did you mean 'resolve'?"


def test_a_five_thousand_step_definition_with_every_next_misspelt(tmp_path: Path) -> None:
    """Every one of 5,000 jumps misspelt: 5,000 problems, each with its suggestion, in seconds (was over a minute)."""
    (tmp_path / "team.yaml").write_text((ROOT / "tests" / "data" / "valid" / "team.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    count = 5_000
    steps = "".join(f"  - {{id: step-number-{i}, type: record, set: {{x: '1'}}, next: stpe-number-{(i + 1) % count}}}\n" for i in range(count))
    big = tmp_path / "big.yaml"
    big.write_text(f"process: big\ntitle: Big\nversion: 1\nkey: BIG\nsteps:\n{steps}  - {{id: done, type: end, outcome: done}}\n", encoding="utf-8")
    started = time.perf_counter()
    _, problems = validate([big])
    assert time.perf_counter() - started < 30
    suggested = [p for p in problems if p.path.endswith(".next")]
    assert len(suggested) == count
    assert suggested[0].message == "unknown step 'stpe-number-1' in next; did you mean 'step-number-1'?"
    assert all("did you mean 'step-number-" in p.message for p in suggested)
