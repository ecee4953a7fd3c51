"""A broken definition never produces a traceback: random mutations of the shipped definitions
give DefinitionError problems (or pass), from the library, the loader and the CLI alike."""

from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from aftercare.engine.errors import DefinitionError, Problem
from aftercare.engine.library import validate
from aftercare.engine.loader import definition_files, parse_definition
from aftercare.engine.yaml_source import parse_yaml
from aftercare.flows.cli import main
from tests.engine.yaml_paths import at, containers, edit_lines

PROCESSES = Path(__file__).resolve().parents[2] / "processes"
DEFINITIONS = definition_files([PROCESSES])
TEXTS = {p.name: p.read_text(encoding="utf-8") for p in DEFINITIONS}
DATA = {name: parse_yaml(text, name).data for name, text in TEXTS.items()}
FIELD_NAMES = sorted(
    {"process", "title", "version", "key", "inputs", "steps", "schedule", "sla", "id", "type", "next", "assignee", "form",
     "quorum", "due", "escalate_to", "on_reject", "on_timeout", "branches", "when", "otherwise", "to", "template", "message",
     "set", "process", "duration", "until", "outcome", "items", "pass_mark", "choices", "default", "required", "cron"}
)
PUNCTUATION = list(":{}[],&*!|>'\"#%@-?\t\n `~=")
SETTINGS = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

texts = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
    st.sampled_from(["role:nobody", "person:{{ inputs.x }}", "{{ ", "{% if %}", "3 days", "0d", "*/5 * *", "steps['x-y'].z", "end"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(texts, scalars, max_size=3))


def _mutate_data(draw: st.DrawFn, data: Any) -> Any:
    if not isinstance(data, (dict, list)):
        return draw(values)
    operation = draw(st.sampled_from(["delete", "rename", "retype", "text", "swap-ids", "duplicate-item"]))
    if operation == "swap-ids" and isinstance(data, dict) and isinstance(data.get("steps"), list) and len(data["steps"]) >= 2:
        steps = [s for s in data["steps"] if isinstance(s, dict) and "id" in s]
        if len(steps) >= 2:
            first, second = draw(st.permutations(range(len(steps))))[:2]
            if draw(st.booleans()):
                steps[first]["id"], steps[second]["id"] = steps[second]["id"], steps[first]["id"]
            else:
                steps[first]["id"] = steps[second]["id"]  # a duplicate id
            return data
    node = at(data, draw(st.sampled_from(containers(data))))
    if not node:
        return data
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    key = draw(st.sampled_from(keys))
    if operation == "delete":
        del node[key]
    elif operation == "rename" and isinstance(node, dict):
        node[draw(st.one_of(st.sampled_from(FIELD_NAMES), texts, st.integers(0, 9)))] = node.pop(key)
    elif operation == "duplicate-item" and isinstance(node, list):
        node.insert(key, copy.deepcopy(node[key]))
    elif operation == "text":
        node[key] = draw(texts)
    else:
        node[key] = draw(values)
    return data


def _mutate_text(draw: st.DrawFn, text: str) -> str:
    operation = draw(st.sampled_from(["truncate", "punctuation", "duplicate-line", "delete-line", "swap-lines", "random"]))
    if operation == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    if operation == "punctuation":
        at = draw(st.integers(0, len(text)))
        return text[:at] + "".join(draw(st.lists(st.sampled_from(PUNCTUATION), min_size=1, max_size=4))) + text[at:]
    if operation == "random":
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(texts) + text[at:]
    return edit_lines(draw, text, operation)


def _dump(data: Any) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    stream = io.StringIO()
    yaml.dump(data, stream)
    return stream.getvalue()


@st.composite
def mutants(draw: st.DrawFn) -> str:
    """The text of a shipped definition after one to three random mutations."""
    name = draw(st.sampled_from(sorted(TEXTS)))
    if draw(st.booleans()):
        data = copy.deepcopy(DATA[name])
        for _ in range(draw(st.integers(1, 3))):
            data = _mutate_data(draw, data)
        return _dump(data)
    text = TEXTS[name]
    for _ in range(draw(st.integers(1, 3))):
        text = _mutate_text(draw, text)
    return text


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the shipped team file, where each mutant is written."""
    root = tmp_path_factory.mktemp("mutants")
    (root / "team.yaml").write_text((PROCESSES / "team.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    return root


def test_there_are_definitions_to_mutate() -> None:
    assert DEFINITIONS, f"no definitions in {PROCESSES}"


@SETTINGS
@given(text=mutants())
def test_mutants_give_problems_not_tracebacks(folder: Path, text: str) -> None:
    file = folder / "mutant.yaml"
    file.write_text(text, encoding="utf-8")

    loaded, problems = validate([file])  # anything raised here fails the test
    assert all(isinstance(p, Problem) and p.file == str(file) and p.message for p in problems)

    try:
        parse_definition(file)
    except DefinitionError as error:
        assert error.problems

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(file)])
    assert code in (0, 1)
    assert "Traceback" not in err.getvalue()
    assert (code == 1) == bool(problems)
    if problems:
        assert f"{file}:{problems[0].line}:{problems[0].column}: " in err.getvalue()
