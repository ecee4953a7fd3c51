"""``type: call`` steps: step kinds found by entry point, ``with:`` checked at load, calls scripted in simulations, retries.

The kinds are real: ``http`` (this package's own entry point) and ``ledger-post`` from the
test package tests/data/plugin_pkg, installed by the ``step_plugin`` fixture.
"""

from __future__ import annotations

import json
import logging
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from aftercare.engine import kinds
from aftercare.engine.answers_file import ScriptedAnswers
from aftercare.engine.errors import AnswerError, DefinitionError, NotFoundError, StepError
from aftercare.engine.library import load_library, validate
from aftercare.engine.loader import Library
from aftercare.engine.schema import process_schema
from aftercare.engine.simulator import Simulator
from aftercare.notifications import Composer, MessageTemplates

PLUGINS = Path(__file__).resolve().parents[1] / "data" / "plugins"
LEDGER = PLUGINS / "ledger-payment.yaml"
INPUTS = {"ledger": "/nowhere/ledger.jsonl", "account": "ops", "amount": 120}
LOG = logging.getLogger("tests.call_steps")


@pytest.fixture(scope="module")
def library(step_plugin: kinds.KindRegistry) -> Library:
    return load_library(PLUGINS)


def simulate(library: Library, answers: Any, inputs: dict[str, Any] | None = None) -> Any:
    spec = library.get("ledger-payment").spec
    return Simulator(spec, library.team, answers, composer=Composer(library.team, MessageTemplates())).run(inputs or INPUTS)


# --- the registry ---------------------------------------------------------------------


def test_installed_kinds_are_found_by_their_entry_points(step_plugin: kinds.KindRegistry) -> None:
    http, ledger = step_plugin.get("http"), step_plugin.get("ledger-post")
    assert (http.package, http.target) == ("aftercare", "aftercare.flows.http_kind:HttpKind")
    assert (ledger.package, ledger.target) == ("aftercare-test-plugin", "aftercare_test_plugin:LedgerPost")
    assert sorted(ledger.input_model.model_fields) == ["account", "amount", "fail_first", "ledger", "memo", "refuse"]
    assert ledger.description == "Post an amount to a ledger file, once per idempotency key."


def test_an_unknown_kind_suggests_the_installed_ones(step_plugin: kinds.KindRegistry) -> None:
    with pytest.raises(NotFoundError) as raised:
        step_plugin.get("ledger-psot")
    assert str(raised.value) == "unknown step kind 'ledger-psot'; did you mean 'ledger-post'?; installed: http, ledger-post"


class _NoModels:
    def run(self, inputs: Any, context: Any) -> Any:
        return None


class _ReservedOutput:
    class Input(BaseModel):
        pass

    class Output(BaseModel):
        error: str

    def run(self, inputs: Any, context: Any) -> Any:
        return None


def test_a_kind_that_does_not_load_is_one_line_naming_its_package() -> None:
    here, package = __name__, __name__.split(".")[0]
    registry = kinds.load_kinds([
        EntryPoint("gone", "aftercare_no_such_plugin.kinds:Gone", kinds.ENTRY_POINT_GROUP),
        EntryPoint("bare", f"{here}:_NoModels", kinds.ENTRY_POINT_GROUP),
        EntryPoint("clash", f"{here}:_ReservedOutput", kinds.ENTRY_POINT_GROUP),
    ])
    assert registry.kinds == {}
    assert registry.broken == {
        "bare": f"step kind 'bare' of package '{package}' does not load ({here}:_NoModels): TypeError: {here}:_NoModels has no pydantic model Input",
        "clash": f"step kind 'clash' of package '{package}' does not load ({here}:_ReservedOutput): TypeError: "
        f"{here}:_ReservedOutput.Output has fields ['error'], which a call step's result keeps for itself",
        "gone": "step kind 'gone' of package 'aftercare_no_such_plugin' does not load (aftercare_no_such_plugin.kinds:Gone): "
        "ModuleNotFoundError: No module named 'aftercare_no_such_plugin'",
    }
    with pytest.raises(NotFoundError, match="^step kind 'gone' of package 'aftercare_no_such_plugin' does not load"):
        registry.get("gone")


# --- running a kind: attempts, retryable, idempotency key, secrets ------------------------


class _Flaky:
    """Fails ``fails`` times (retryable unless told), then answers; keeps every context it got."""

    contexts: list[Any] = []
    fails = 0
    retryable = True

    class Input(BaseModel):
        value: int

    class Output(BaseModel):
        doubled: int
        token: str

    def run(self, inputs: Input, context: Any) -> Output:
        type(self).contexts.append(context)
        if context.attempt <= self.fails:
            error = RuntimeError(f"attempt {context.attempt} failed")
            error.retryable = self.retryable  # type: ignore[attr-defined]
            raise error
        return self.Output(doubled=inputs.value * 2, token=context.expand("t-${FLAKY_TOKEN}"))


def flaky(fails: int, retryable: bool = True) -> kinds.StepKind:
    _Flaky.contexts, _Flaky.fails, _Flaky.retryable = [], fails, retryable
    return kinds.StepKind("flaky", "tests", "tests:_Flaky", _Flaky, _Flaky.Input, _Flaky.Output, "")


def call(kind: kinds.StepKind, attempts: int, given: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> tuple[dict[str, Any], list[float]]:
    from aftercare.engine.spec import RetrySpec

    slept: list[float] = []
    result = kinds.run_call(
        kind, given or {"value": 21}, case_key="LED-0001", step_id="post", visit=2, retry=RetrySpec(attempts=attempts, delay="2s"),
        logger=LOG, sleep=slept.append, environ={"FLAKY_TOKEN": "abc"} if environ is None else environ,
    )
    return result, slept


def test_a_failing_attempt_is_tried_again_with_a_doubling_delay_and_the_same_idempotency_key() -> None:
    result, slept = call(flaky(2), attempts=3)
    assert result == {"doubled": 42, "token": "t-abc"}
    assert slept == [2.0, 4.0]
    assert [c.attempt for c in _Flaky.contexts] == [1, 2, 3]
    assert {c.idempotency_key for c in _Flaky.contexts} == {"aftercare:LED-0001:post:2"}
    assert {(c.case_key, c.step_id, c.visit) for c in _Flaky.contexts} == {("LED-0001", "post", 2)}


def test_the_last_failed_attempt_is_the_steps_error() -> None:
    assert call(flaky(5), attempts=3) == ({"error": "attempt 3 failed"}, [2.0, 4.0])


def test_an_error_that_is_not_retryable_is_not_tried_again() -> None:
    assert call(flaky(5, retryable=False), attempts=3) == ({"error": "attempt 1 failed"}, [])
    assert len(_Flaky.contexts) == 1


def test_a_missing_secret_is_not_retried_and_says_which() -> None:
    result, slept = call(flaky(0), attempts=3, environ={})
    assert result == {"error": "environment variable FLAKY_TOKEN is not set (step 'post' asks for it)"}
    assert slept == [] and len(_Flaky.contexts) == 1


def test_inputs_that_do_not_fit_are_an_error_without_a_call() -> None:
    result, _ = call(flaky(0), attempts=3, given={"value": "many"})
    assert result == {"error": "with: does not fit 'flaky': value: Input should be a valid integer, unable to parse string as an integer"}
    assert _Flaky.contexts == []


# --- loading: the kind and with: ----------------------------------------------------------


def definition(tmp_path: Path, step: str, inputs: str = "") -> Path:
    (tmp_path / "team.yaml").write_text((PLUGINS / "team.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    path = tmp_path / "calls.yaml"
    path.write_text(
        "process: calls\ntitle: Calls\nversion: 1\nkey: CAL\n"
        f"inputs:\n  count: {{type: integer}}\n  title: {{type: string}}\n{inputs}"
        f"steps:\n{step}  - {{id: done, type: end, outcome: done}}\n",
        encoding="utf-8",
    )
    return path


def problems(path: Path) -> list[str]:
    return [str(problem) for problem in validate([path])[1]]


LOAD_CASES = {
    "a typo in the kind: the installed kinds": (
        "  - id: post\n    type: call\n    call: ledger-psot\n    with: {ledger: l, account: a, amount: 1}\n",
        ["11:11: steps[0].call: unknown step kind 'ledger-psot'; did you mean 'ledger-post'?; installed: http, ledger-post"],
    ),
    "a wrong with: field: a suggestion": (
        "  - id: post\n    type: call\n    call: ledger-post\n    with: {ledger: l, acount: a, amount: 1}\n",
        ["12:23: steps[0].with.acount: step kind 'ledger-post' has no input 'acount'; did you mean 'account'?"],
    ),
    "with: values against the Input model": (
        "  - id: post\n    type: call\n    call: ledger-post\n    with: {ledger: l, amount: -5}\n"
        "  - id: ticket\n    type: call\n    call: http\n    with: {url: 'https://x.example/api', method: POTS}\n",
        [
            "12:11: steps[0].with: step kind 'ledger-post' needs input 'account' in with:",
            "12:31: steps[0].with.amount: with.amount of step kind 'ledger-post': Input should be greater than 0 (got -5)",
            "16:50: steps[1].with.method: with.method of step kind 'http': Input should be 'GET', 'POST', 'PUT', 'PATCH', "
            "'DELETE' or 'HEAD' (got 'POTS'); did you mean 'POST'?",
        ],
    ),
    "templates by the type they give": (
        "  - id: post\n    type: call\n    call: ledger-post\n    with:\n"
        "      ledger: '{{ inputs.title }}'\n"  # a string field: fine
        "      account: '{{ inputs.count }}'\n"  # an integer where text is needed
        "      amount: '{{ inputs.title }}'\n"  # text where a number is needed
        "      memo: 'paid {{ inputs.count }}'\n"  # renders to text: fine
        "      fail_first: '{{ inputs.count }}'\n"  # an integer: fine
        "      refuse: '{{ inputs.count > 3 }}'\n",  # its type is known only at run time: not checked
        [
            "14:16: steps[0].with.account: with.account of step kind 'ledger-post': Input should be a valid string ('{{ inputs.count }}' gives int here)",
            "15:15: steps[0].with.amount: with.amount of step kind 'ledger-post': Input should be a valid number, "
            "unable to parse string as a number ('{{ inputs.title }}' gives str here)",
        ],
    ),
    "later templates read the kind's outputs and error": (
        "  - id: post\n    type: call\n    call: ledger-post\n    with: {ledger: l, account: a, amount: 1}\n    on_error: failed\n"
        "  - id: tell\n    type: notify\n    to: role:lead\n    message: '{{ post.entry }} {{ post.balanse }}'\n    next: done\n"
        "  - id: failed\n    type: notify\n    to: role:lead\n    message: '{{ post.error }}'\n",
        ["17:14: steps[1].message: step 'post' has no field 'balanse'; did you mean 'balance'?; it has account, balance, entry, error, visit, withdrawn"],
    ),
    "retry is checked": (
        "  - id: post\n    type: call\n    call: ledger-post\n    with: {ledger: l, account: a, amount: 1}\n"
        "    retry: {attempts: 3, delay: 2 secs}\n",
        ["13:33: steps[0].retry.delay: '2 secs' is not a duration; write a number with a unit w, d, h, m or s, such as 3d, 4h or 1d12h; did you mean '2s'?"],
    ),
}


@pytest.mark.parametrize("case", LOAD_CASES)
def test_a_call_step_is_checked_at_load_with_file_line_and_suggestions(tmp_path: Path, step_plugin: kinds.KindRegistry, case: str) -> None:
    steps, expected = LOAD_CASES[case]
    path = definition(tmp_path, steps)
    assert problems(path) == [f"{path}:{line}" for line in expected]


# --- simulating: scripted, never run ---------------------------------------------------------


def test_a_simulation_takes_the_scripted_output(library: Library) -> None:
    result = simulate(library, {"post": {"output": {"entry": 4, "account": "ops", "balance": 360}}})
    assert (result.path, result.outcome) == (["post", "book", "posted"], "posted")
    assert result.case.results["post"] == {"entry": 4, "account": "ops", "balance": 360.0}
    assert result.case.fields == {"entry": 4, "balance": 360.0}
    assert not Path(INPUTS["ledger"]).exists()  # the kind never ran


def test_a_scripted_error_takes_on_error_with_the_message(library: Library) -> None:
    result = simulate(library, {"post": {"error": "account ops is closed"}})
    assert (result.path, result.outcome) == (["post", "tell-lead", "not-posted"], "not-posted")
    assert result.case.results["post"] == {"error": "account ops is closed"}
    assert [m.body.splitlines()[0] for m in result.messages] == ["Posting 120 to ops failed: account ops is closed"]
    assert result.case.exits[0] == ("post", "error")


def test_without_on_error_a_failed_call_ends_the_case_failed(library: Library) -> None:
    from aftercare.engine.spec import ProcessSpec

    data = library.get("ledger-payment").spec.model_dump(by_alias=True, exclude_none=True)
    del data["steps"][0]["on_error"]
    bare = ProcessSpec.model_validate(data)
    result = Simulator(bare, library.team, {"post": {"error": "down"}}, composer=Composer(library.team, MessageTemplates())).run(INPUTS)
    assert (result.path, result.outcome) == (["post"], "failed")


def test_a_template_may_not_bring_an_environment_variable_into_with(library: Library) -> None:
    result = simulate(library, {"post": {"output": {"entry": 1, "account": "x", "balance": 1}}}, {**INPUTS, "account": "${DATABASE_URL}"})
    assert (result.path, result.outcome) == (["post", "tell-lead", "not-posted"], "not-posted")
    assert result.case.results["post"] == {
        "error": "with.account: a template gave ${...}, which reads the environment; only the definition's own text may"
    }


@pytest.mark.parametrize(("written", "rendered", "found"), [
    ({"url": "${BASE}/x/{{ inputs.id }}"}, {"url": "${BASE}/x/7"}, None),
    ({"url": "${BASE}/x/{{ inputs.id }}"}, {"url": "${BASE}/x/${HOME}"}, "with.url"),
    ({"json": {"notes": ["{{ inputs.a }}"]}}, {"json": {"notes": ["${TOKEN}"]}}, "with.json.notes[0]"),
    ({"amount": "{{ inputs.n }}"}, {"amount": 5}, None),
])
def test_smuggled_secrets_are_found_where_they_are(written: Any, rendered: Any, found: str | None) -> None:
    assert kinds.smuggled_secret(written, rendered) == found


def test_a_call_step_without_a_script_is_a_clear_error(library: Library) -> None:
    with pytest.raises(StepError) as raised:
        simulate(library, {})
    assert str(raised.value) == (
        "step 'post' (visit 1) calls 'ledger-post', which a simulation never runs, but the answers file scripts nothing for it;"
        " add post: {output: {...}} or {error: MESSAGE}"
    )


def test_a_scripted_output_must_fit_the_kinds_output(library: Library) -> None:
    with pytest.raises(AnswerError) as raised:
        simulate(library, {"post": {"output": {"entry": "four", "account": "ops", "balance": 1}}})
    assert str(raised.value) == (
        "step 'post': the scripted output does not fit the Output of 'ledger-post': entry: Input should be a valid integer, "
        "unable to parse string as an integer"
    )


@pytest.mark.parametrize(("given", "message"), [
    ({"outptu": {"entry": 1}}, "a call step is scripted as {output: {FIELD: VALUE}} or {error: MESSAGE}, got {'outptu': {'entry': 1}}; did you mean 'output'?"),
    ({"output": {"entry": 1}, "error": "x"}, "a call step is scripted as {output: {FIELD: VALUE}} or {error: MESSAGE}, got {'output': {'entry': 1}, 'error': 'x'}"),
    ({"decision": "approve", "by": "ann"}, "a call step is scripted as {output: {FIELD: VALUE}} or {error: MESSAGE}, got {'decision': 'approve', 'by': 'ann'}"),
    ({"error": " "}, "a call step is scripted as {output: {FIELD: VALUE}} or {error: MESSAGE}, got {'error': ' '}"),
])
def test_a_malformed_call_script_is_refused(library: Library, given: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError) as raised:
        ScriptedAnswers.parse({"post": given}, library.get("ledger-payment").spec)
    assert [p.message for p in raised.value.problems] == [message]


# --- the schema for editors -------------------------------------------------------------------


def test_the_schema_describes_each_installed_kinds_with(step_plugin: kinds.KindRegistry) -> None:
    schema = process_schema(step_plugin)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)

    def errors(with_: dict[str, Any], kind: str = "ledger-post") -> list[str]:
        document = {"process": "x", "title": "t", "version": 1, "key": "AB",
                    "steps": [{"id": "p", "type": "call", "call": kind, "with": with_}, {"id": "e", "type": "end", "outcome": "done"}]}
        return sorted(e.message for e in validator.iter_errors(document))

    assert schema["$defs"]["CallStep"]["properties"]["call"]["examples"] == ["http", "ledger-post"]
    assert errors({"ledger": "l", "account": "a", "amount": 1}) == []
    assert errors({"ledger": "l", "account": "a", "amount": "{{ inputs.amount }}"}) == []
    assert errors({"ledger": "l", "acount": "a", "amount": 1})  # unknown field, missing account
    assert errors({"url": "https://x.example", "method": "POTS"}, kind="http")
    assert "kind-http-with" not in process_schema()["$defs"]  # the language alone knows no kinds


def test_kinds_command_lists_the_installed_kinds(step_plugin: kinds.KindRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    from aftercare.flows.cli import main

    assert main(["kinds"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "http         aftercare  Send one HTTP request; the answer's status, JSON body and text are the step's output.",
        "ledger-post  aftercare-test-plugin  Post an amount to a ledger file, once per idempotency key.",
    ]
    assert main(["kinds", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(k["name"], k["package"]) for k in listed["kinds"]] == [("http", "aftercare"), ("ledger-post", "aftercare-test-plugin")]
    assert sorted(listed["kinds"][1]["with"]["properties"]) == ["account", "amount", "fail_first", "ledger", "memo", "refuse"]
    assert sorted(listed["kinds"][0]["output"]["properties"]) == ["json", "status", "text"]
    assert listed["broken"] == []
