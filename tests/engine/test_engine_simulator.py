"""The simulator: scripted answers on a simulated clock, escalations, refusals, linked cases."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from aftercare.engine.errors import AnswerError, DefinitionError, StepError
from aftercare.engine.loader import Library, validate_shape
from aftercare.engine.simulator import Simulator
from aftercare.engine.spec import ProcessSpec
from aftercare.engine.team import TeamSpec
from aftercare.engine.yaml_source import parse_yaml
from aftercare.notifications import Composer, MessageTemplates

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
TEAM: TeamSpec = validate_shape(
    parse_yaml(
        """
team:
  people:
    ann: {name: Ann, email: ann@example.com}
    bob: {name: Bob, email: bob@example.com}
    cid: {name: Cid, email: cid@example.com}
  roles:
    support: [ann, bob]
    manager: [cid]
""",
        "team.yaml",
    ),
    TeamSpec,
)
SPEC: ProcessSpec = validate_shape(
    parse_yaml(
        """
process: waiting
title: Waiting
version: 1
key: WAI
inputs:
  owner: {type: person}
steps:
  - id: cool-down
    type: wait
    duration: 7d
  - id: check
    type: approval
    assignee: role:support
    quorum: 2
    due: 4h
    escalate_to: role:manager
    on_timeout: expired
  - id: tell-owner
    type: notify
    to: ["person:{{ inputs.owner }}"]
    message: "{{ check.approved_by | join(', ') }} approved {{ case.key }}"
  - {id: done, type: end, outcome: done}
  - {id: expired, type: end, outcome: expired}
""",
        "waiting.yaml",
    ),
    ProcessSpec,
)


COMPOSER = Composer(TEAM, MessageTemplates())


def simulate(answers: dict[str, object], **inputs: object):  # type: ignore[no-untyped-def]
    return Simulator(SPEC, TEAM, answers, composer=COMPOSER, start=START).run(inputs or {"owner": "bob"})


def test_a_seven_day_wait_takes_no_real_time() -> None:
    started = time.perf_counter()
    result = simulate({"check": [{"decision": "approve", "by": "ann"}, {"decision": "approve", "by": "bob"}]})
    assert time.perf_counter() - started < 1.0
    fired = datetime.fromisoformat(result.case.results["cool-down"]["fired_at"])
    assert fired - START == timedelta(days=7)
    assert result.path == ["cool-down", "check", "tell-owner", "done"]
    assert result.outcome == "done"


def test_quorum_waits_for_the_second_approval_and_messages_render() -> None:
    result = simulate({"check": [{"decision": "approve", "by": "ann"}, {"decision": "approve", "by": "bob"}]})
    assert [a.by for step, _, a in result.answers if step == "check"] == ["ann", "bob"]
    (message,) = [m for m in result.messages if m.kind == "notify"]
    assert message.recipients == ["bob"]
    assert "ann, bob approved WAI-0001" in message.body


def test_an_answer_after_the_due_escalates_and_still_counts_without_on_timeout() -> None:
    check = SPEC.step("check").model_copy(update={"on_timeout": None})
    spec = SPEC.model_copy(update={"steps": tuple(check if step.id == "check" else step for step in SPEC.steps)})
    answers = {"check": [{"decision": "approve", "by": "ann", "after": "1d"}, {"decision": "approve", "by": "bob", "after": "1d2h"}]}
    result = Simulator(spec, TEAM, answers, composer=COMPOSER, start=START).run({"owner": "bob"})
    (escalation,) = [m for m in result.messages if m.kind == "escalation"]
    waiting_since = START + timedelta(days=7)
    assert escalation.step == "check"
    assert escalation.at == waiting_since + timedelta(hours=4)
    assert escalation.recipients == ["cid", "ann", "bob"]
    assert escalation.subject == '[WAI-0001] Escalation: "check" is overdue'
    answered = [a.answered_at for _, _, a in result.answers]
    assert answered == [waiting_since + timedelta(days=1), waiting_since + timedelta(days=1, hours=2)]
    assert result.outcome == "done"


def test_an_answer_before_the_due_does_not_escalate() -> None:
    result = simulate({"check": [{"decision": "approve", "by": "ann", "after": "1h"}, {"decision": "approve", "by": "bob", "after": "3h"}]})
    assert not [m for m in result.messages if m.kind == "escalation"]


def test_a_timeout_goes_to_on_timeout_after_escalating() -> None:
    result = simulate({"check": {"timeout": True}})
    assert result.path == ["cool-down", "check", "expired"]
    assert result.outcome == "expired"
    assert [m.kind for m in result.messages] == ["escalation"]


def test_an_answer_after_the_due_of_a_step_with_on_timeout_is_too_late() -> None:
    """DESIGN.md: the timeout wins, as at run time (the simulator took the answer before)."""
    result = simulate({"check": [{"decision": "approve", "by": "ann", "after": "1h"}, {"decision": "approve", "by": "bob", "after": "5h"}]})
    waiting_since = START + timedelta(days=7)
    assert result.path == ["cool-down", "check", "expired"]
    assert result.case.results["check"]["decision"] == "timeout"
    assert result.case.results["check"]["approved_by"] == ["ann"]
    assert [(step, late.by) for step, _, late in result.late] == [("check", "bob")]
    assert [m.kind for m in result.messages] == ["escalation"]
    (visit,) = [v for v in result.visits if v[0] == "check"]
    assert visit[4] == waiting_since + timedelta(hours=4)  # the step ended at its due


def test_answers_for_an_automatic_step_are_refused() -> None:
    with pytest.raises(DefinitionError, match="step 'tell-owner' is a notify step; answers are for approval, form and checklist steps"):
        simulate({"tell-owner": {"decision": "approve", "by": "ann"}})


def test_a_case_is_titled_by_its_topic_when_it_has_no_title() -> None:
    spec = SPEC.model_copy(update={"inputs": {**SPEC.inputs, "topic": SPEC.inputs["owner"].model_copy(update={"type": "string"})}})
    result = Simulator(spec, TEAM, {"check": {"timeout": True}}, composer=COMPOSER, start=START).run({"owner": "bob", "topic": "Slow exports"})
    assert result.case.title == "Slow exports"


def test_an_answer_from_someone_the_assignee_does_not_name_is_refused() -> None:
    with pytest.raises(AnswerError) as caught:
        simulate({"check": {"decision": "approve", "by": "cid"}})
    assert "'cid' may not answer step 'check'" in str(caught.value)


def test_a_veto_without_on_reject_ends_rejected() -> None:
    result = simulate({"check": [{"decision": "approve", "by": "ann"}, {"decision": "reject", "by": "bob", "comment": "no"}]})
    assert result.outcome == "rejected"
    assert result.case.results["check"]["rejected_by"] == ["bob"]


def test_running_out_of_answers_is_a_step_error() -> None:
    with pytest.raises(StepError, match="step 'check' .* the answers file has no more for it"):
        simulate({"check": {"decision": "approve", "by": "ann"}})


def test_answers_for_an_unknown_step_are_refused() -> None:
    with pytest.raises(DefinitionError, match="unknown step 'chek'; did you mean 'check'"):
        simulate({"chek": {"decision": "approve", "by": "ann"}})


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(AnswerError, match="inputs of waiting: input 'owner': unknown person 'bobb'; did you mean 'bob'"):
        simulate({}, owner="bobb")


def test_the_json_form_of_the_cli_contract() -> None:
    result = simulate({"check": {"timeout": True}})
    assert result.as_json() == {"case": "WAI-0001", "path": ["cool-down", "check", "expired"], "outcome": "expired", "withdrawn": []}


class TestValidLibrary:
    """tests/data/valid/release-check.yaml, which exercises every step type."""

    def run(self, library: Library, answers: dict[str, object]):  # type: ignore[no-untyped-def]
        catalog = {name: item.spec for name, item in library.definitions.items()}
        spec = library.get("release-check").spec
        composer = Composer.for_library(library)
        return Simulator(spec, library.team, answers, composer=composer, catalog=catalog, start=START).run({"title": "v2", "owner": "cid"})

    def test_rejection(self, valid_library: Library) -> None:
        result = self.run(valid_library, {"approve-release": [{"decision": "approve", "by": "bob", "priority": "P2"}, {"decision": "reject", "by": "ann"}]})
        assert (result.path, result.outcome) == (["approve-release", "rejected"], "rejected")

    def test_timeout(self, valid_library: Library) -> None:
        result = self.run(valid_library, {"approve-release": {"timeout": True}})
        assert (result.path, result.outcome) == (["approve-release", "expired"], "expired")

    def test_happy_path_through_every_step_type(self, valid_library: Library) -> None:
        answers = {
            "approve-release": [{"decision": "approve", "by": "ann", "priority": "P1"}, {"decision": "approve", "by": "bob", "priority": "P1"}],
            "hotfix": {"by": "cid", "fix": "patched"},
            "inspect": {"by": "ann", "tests": "pass", "docs": "fail"},
        }
        result = self.run(valid_library, answers)
        assert result.path == ["approve-release", "route", "hotfix", "inspect", "cool-down", "tell-owner", "log", "follow", "released"]
        assert result.case.fields["score"] == 75.0
        assert [(s.process, s.key, s.inputs) for s in result.started] == [("release-follow-up", "RFU-0001", {"title": "Follow up v2"})]
