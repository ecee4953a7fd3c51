"""Mutated shipped definitions and team files load, or are refused with positions: never a traceback.

Each example takes a definition from processes/ (or the team file), mutates its data or its
text (keys deleted, duplicated or renamed; values of another type, odd text, impossible
dates, huge numbers, deeper nesting; steps dropped or duplicated; jumps retargeted; YAML
broken) and loads it in memory, against the shipped team, the other shipped definitions
and the notification templates. It must load, or raise DefinitionError whose every problem
names the file and a line; any other exception fails the test. The examples are
derandomized, so CI sees the same ones every run.
"""

from __future__ import annotations

import copy
import io
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from aftercare.engine.errors import DefinitionError
from aftercare.engine.library import check_definition
from aftercare.engine.loader import definition_files, load_team, team_from_document, validate_shape
from aftercare.engine.spec import ProcessSpec
from aftercare.engine.yaml_source import parse_yaml
from aftercare.notifications import template_sources
from tests.engine.yaml_paths import at, containers, edit_lines

PROCESSES = Path(__file__).resolve().parents[2] / "processes"
DEFINITIONS = definition_files([PROCESSES])
TEXTS = {p.name: p.read_text(encoding="utf-8") for p in DEFINITIONS}
DATA = {name: parse_yaml(text, name).data for name, text in TEXTS.items()}
TEAM_TEXT = (PROCESSES / "team.yaml").read_text(encoding="utf-8")
TEAM = load_team(PROCESSES / "team.yaml")
CATALOG = {spec.process: spec for spec in (validate_shape(parse_yaml(t, n), ProcessSpec) for n, t in TEXTS.items())}
TEMPLATES = template_sources([PROCESSES])
FILE = "processes/mutant.yaml"

MAX_EXAMPLES = 3000  # about 10 ms each: well under a minute in CI, with the team files
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

KEYS = sorted(
    {"process", "title", "version", "key", "inputs", "steps", "schedule", "sla", "id", "type", "next", "assignee", "form",
     "quorum", "due", "escalate_to", "on_reject", "on_timeout", "on_fail", "remind_every", "branches", "when", "otherwise",
     "to", "template", "message", "subject", "set", "duration", "until", "outcome", "items", "pass_mark", "weight", "label",
     "choices", "default", "required", "minimum", "maximum", "cron", "interval", "rrule", "timezone", "active", "for_each",
     "team", "people", "roles", "members", "notify", "email", "name", "locale"}
)
ODD_NAMES = ["from", "class", "due date!", "", " ", "1st", "_x", "x-y", "None", "true", "model_dump", "json", "名字", "a" * 300]
ODD_TEXT = [
    "", " ", "\t", "\n", "{{ ", "{{ inputs.nope }}", "{% for x in y %}", "{{ ''.__class__ }}", "{{ steps['x-y'].z }}",
    "role:nobody", "person:", "role:", "person:{{ inputs.title }}", "pigeon", "nosuch://x", "json://${HOOK}/x", "${X}",
    "not-an-email", "a@b", "99999999999d", "-1d", "0d", "soon", "3 days", "1d12h", "0 0 9 * * MON", "* * *", "@daily",
    "0 9 * * MON", "Asia/Shanghia", "../../etc/passwd", "A" * 5000, "not-a-date", "2026-02-30", "2026-13-01T00:00",
    "2026-01-05T09:00:00+08:00", "end", "done", "P3D", "\x00", "\u202e", "\ud7ff", "é" * 100, "*", "&a", "!!python/object",
    "9" * 5000, "1e999", "-.inf",
]
texts = st.one_of(st.sampled_from(ODD_TEXT), st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=20))
numbers = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from([0, -1, 10**12, 10**30, 2**63, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
)
moments = st.one_of(
    st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(timezone.utc)),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts, moments)
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.sampled_from(KEYS + ODD_NAMES), scalars, max_size=3))

_SAFE = YAML(typ="safe")  # the C emitter when it is there: dumping is most of the cost of a data mutation
_SAFE.default_flow_style = False
_SAFE.width = 4096


def _steps(data: Any) -> list[Any]:
    steps = data.get("steps") if isinstance(data, dict) else None
    return steps if isinstance(steps, list) else []


def _step_ids(data: Any) -> list[str]:
    return [step["id"] for step in _steps(data) if isinstance(step, dict) and isinstance(step.get("id"), str)]


def _mutate_data(draw: st.DrawFn, data: Any) -> Any:
    """One mutation of the data: of a key, a value, a step or a jump."""
    operation = draw(
        st.sampled_from(["delete", "rename", "retype", "odd-text", "moment", "number", "nest", "drop-step", "duplicate-step",
                         "retarget", "duplicate-item"])
    )
    steps = _steps(data)
    if operation == "drop-step" and steps:
        del steps[draw(st.integers(0, len(steps) - 1))]
        return data
    if operation == "duplicate-step" and steps:
        index = draw(st.integers(0, len(steps) - 1))
        steps.insert(draw(st.integers(0, len(steps))), copy.deepcopy(steps[index]))
        return data
    if operation == "retarget" and steps:
        step = steps[draw(st.integers(0, len(steps) - 1))]
        if isinstance(step, dict):
            field = draw(st.sampled_from(["next", "on_reject", "on_timeout", "on_fail", "otherwise"]))
            ids = _step_ids(data) or ["nowhere"]
            step[field] = draw(st.one_of(st.sampled_from(ids), texts, st.just(step.get("id"))))
        return data
    node = at(data, draw(st.sampled_from(containers(data))))
    if not node:
        return data
    key = draw(st.sampled_from(list(node) if isinstance(node, dict) else list(range(len(node)))))
    if operation == "delete":
        del node[key]
    elif operation == "rename" and isinstance(node, dict):
        node[draw(st.one_of(st.sampled_from(KEYS + ODD_NAMES), texts, st.integers(-1, 9), st.booleans()))] = node.pop(key)
    elif operation == "duplicate-item" and isinstance(node, list):
        node.insert(key, copy.deepcopy(node[key]))
    elif operation == "odd-text":
        node[key] = draw(texts)
    elif operation == "moment":
        node[key] = draw(moments)
    elif operation == "number":
        node[key] = draw(numbers)
    elif operation == "nest":
        for _ in range(draw(st.sampled_from([1, 2, 70]))):
            node[key] = [node[key]] if draw(st.booleans()) else {draw(st.sampled_from(KEYS)): node[key]}
    else:
        node[key] = draw(values)
    return data


def _mutate_text(draw: st.DrawFn, text: str) -> str:
    """One mutation of the text: YAML broken, lines moved, aliases and tags added."""
    operation = draw(st.sampled_from(["truncate", "insert", "duplicate-line", "delete-line", "swap-lines", "indent", "alias", "tag"]))
    at = draw(st.integers(0, len(text)))
    if operation == "truncate":
        return text[:at]
    if operation == "insert":
        return text[:at] + draw(st.one_of(texts, st.sampled_from([":", "- ", "{", "[", "]", "}", "'", '"', "#", "&", "*", "\t", "? ", "|", ">"]))) + text[at:]
    if operation == "alias":
        return text[:at] + draw(st.sampled_from(["*nope", "&a ", "&a [1] ", "<<: *a\n", "*a"])) + text[at:]
    if operation == "tag":
        return text[:at] + draw(st.sampled_from(["!!str ", "!!int ", "!!binary ", "!!timestamp ", "!!set ", "!!omap ", "!custom ", "!!float ", "9" * 5000])) + text[at:]
    return edit_lines(draw, text, operation)


def _dump(data: Any) -> str:
    stream = io.StringIO()
    _SAFE.dump(data, stream)
    return stream.getvalue()


SOURCES = {"definitions": TEXTS, "team": {"team.yaml": TEAM_TEXT}}


@st.composite
def mutants(draw: st.DrawFn, kind: str) -> str:
    """The text of a shipped file (of ``SOURCES[kind]``) after one to three mutations of its data or its text."""
    source = SOURCES[kind]
    name = draw(st.sampled_from(sorted(source)))
    if draw(st.integers(0, 3)):  # data mutations three times in four: they reach past the YAML into the checks
        data = copy.deepcopy(DATA[name]) if name in DATA else parse_yaml(source[name], name).data
        for _ in range(draw(st.integers(1, 3))):
            data = _mutate_data(draw, data)
        return _dump(data)
    text = source[name]
    for _ in range(draw(st.integers(1, 3))):
        text = _mutate_text(draw, text)
    return text


def _refused_with_positions(error: DefinitionError) -> None:
    assert error.problems, "a DefinitionError without problems"
    for problem in error.problems:
        assert problem.file == FILE, problem
        assert problem.line > 0 and problem.column > 0, problem
        assert problem.message and "\n" not in problem.message.strip("\n"), problem


def test_there_are_definitions_to_mutate() -> None:
    assert len(DEFINITIONS) >= 20


@FUZZ
@given(text=mutants("definitions"))
def test_mutated_definitions_load_or_are_refused_with_positions(text: str) -> None:
    try:
        document = parse_yaml(text, FILE)
        spec = validate_shape(document, ProcessSpec)
        check_definition(document, TEAM, {**CATALOG, spec.process: spec}, TEMPLATES)
    except DefinitionError as error:
        _refused_with_positions(error)


@settings(FUZZ, max_examples=MAX_EXAMPLES // 5)
@given(text=mutants("team"))
def test_mutated_team_files_load_or_are_refused_with_positions(text: str) -> None:
    try:
        team_from_document(parse_yaml(text, FILE))
    except DefinitionError as error:
        _refused_with_positions(error)


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_the_shipped_definitions_load_unmutated(name: str) -> None:
    document = parse_yaml(TEXTS[name], FILE)
    check_definition(document, TEAM, CATALOG, TEMPLATES)
