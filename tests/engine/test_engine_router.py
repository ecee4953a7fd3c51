"""The router: who may answer, when a human step is decided, checklist scores, and where a case goes next."""

from __future__ import annotations

import pytest

from aftercare.engine import answers, router
from aftercare.engine.errors import AnswerError, StepError
from aftercare.engine.loader import validate_shape
from aftercare.engine.spec import ApprovalStep, ChecklistStep, DecisionStep, FormStep, ProcessSpec
from aftercare.engine.team import TeamSpec
from aftercare.engine.yaml_source import parse_yaml


def spec_from(text: str) -> ProcessSpec:
    return validate_shape(parse_yaml(text, "test.yaml"), ProcessSpec)  # type: ignore[no-any-return]


def team_from(text: str) -> TeamSpec:
    return validate_shape(parse_yaml(text, "team.yaml"), TeamSpec)  # type: ignore[no-any-return]


TEAM = team_from(
    """
team:
  people:
    ann: {name: Ann, email: ann@example.com}
    bob: {name: Bob, email: bob@example.com}
    cid: {name: Cid, email: cid@example.com}
  roles:
    lead: [ann]
    support: [ann, bob]
"""
)

SPEC = spec_from(
    """
process: routing
title: Routing
version: 1
key: RTG
inputs:
  owner: {type: person}
  size: {type: integer}
steps:
  - id: approve
    type: approval
    assignee: role:support
    quorum: 2
    form: {priority: {type: choice, choices: [P1, P2]}}
    due: 4h
    on_reject: rework
    on_timeout: expired
  - id: route
    type: decision
    branches:
      - when: "approve.priority == 'P1'"
        next: urgent
      - when: "inputs.size > 10"
        next: big
    otherwise: inspect
  - id: urgent
    type: form
    assignee: "person:{{ inputs.owner }}"
    form: {fix: {type: text}}
  - id: inspect
    type: checklist
    assignee: [role:lead, person:cid]
    pass_mark: 75
    items:
      - {id: tests, label: Tests pass, weight: 3}
      - {id: docs, label: Docs updated}
    on_fail: rework
  - id: sign-off
    type: approval
    assignee: person:ann
  - {id: big, type: end, outcome: big}
  - {id: rework, type: end, outcome: rework}
  - {id: expired, type: end, outcome: expired}
"""
)
APPROVE: ApprovalStep = SPEC.step("approve")  # type: ignore[assignment]
ROUTE: DecisionStep = SPEC.step("route")  # type: ignore[assignment]
URGENT: FormStep = SPEC.step("urgent")  # type: ignore[assignment]
INSPECT: ChecklistStep = SPEC.step("inspect")  # type: ignore[assignment]
SIGN_OFF: ApprovalStep = SPEC.step("sign-off")  # type: ignore[assignment]


def answer(step, by, decision=None, eligible=("ann", "bob"), earlier=(), **fields):  # type: ignore[no-untyped-def]
    return answers.accept_answer(step, answers.Submission(by=by, decision=decision, fields=fields), eligible=eligible, earlier=earlier, people=list(TEAM.people))


class TestEligibility:
    def test_role_and_person_assignees_name_people_in_order_without_repeats(self) -> None:
        assert router.eligible_people(APPROVE, TEAM, {}) == ("ann", "bob")
        assert router.eligible_people(INSPECT, TEAM, {}) == ("ann", "cid")

    def test_person_template_assignee(self) -> None:
        assert router.eligible_people(URGENT, TEAM, {"inputs": {"owner": "bob"}}) == ("bob",)

    def test_template_giving_no_team_member_is_a_step_error(self) -> None:
        with pytest.raises(StepError, match=r"step 'urgent': assignee .* gave 'person:zed'"):
            router.eligible_people(URGENT, TEAM, {"inputs": {"owner": "zed"}})

    def test_refusal_names_the_person_and_the_step(self) -> None:
        with pytest.raises(AnswerError) as caught:
            answer(APPROVE, "cid", "approve")
        message = str(caught.value)
        assert "'cid' may not answer step 'approve'" in message
        assert "ann, bob" in message

    def test_one_answer_per_person(self) -> None:
        first = answer(APPROVE, "ann", "approve", priority="P1")
        with pytest.raises(AnswerError, match="'ann' has already answered step 'approve'"):
            answer(APPROVE, "ann", "approve", earlier=[first], priority="P1")


class TestApproval:
    def test_quorum_needs_distinct_approvals(self) -> None:
        first = answer(APPROVE, "ann", "approve", priority="P2")
        assert answers.tally(APPROVE, [first]) is None
        second = answer(APPROVE, "bob", "approve", earlier=[first], priority="P2")
        assert answers.tally(APPROVE, [first, second]) == "approve"

    def test_first_rejection_vetoes(self) -> None:
        first = answer(APPROVE, "ann", "approve", priority="P2")
        veto = answer(APPROVE, "bob", "reject", earlier=[first], priority="P2")
        assert answers.tally(APPROVE, [first, veto]) == "reject"
        assert answers.tally(APPROVE, [answer(APPROVE, "bob", "reject", priority="P1")]) == "reject"

    def test_rejection_goes_to_on_reject_or_ends_rejected(self) -> None:
        assert router.route(SPEC, APPROVE, {"decision": "reject"}) == router.Goto("rework", "reject")
        assert router.route(SPEC, SIGN_OFF, {"decision": "reject"}) == router.Finish("rejected", "reject")

    def test_approval_falls_through(self) -> None:
        assert router.route(SPEC, APPROVE, {"decision": "approve"}) == router.Goto("route", "approve")

    def test_an_approval_needs_approve_or_reject(self) -> None:
        with pytest.raises(AnswerError, match="answer with decision approve or reject"):
            answer(APPROVE, "ann", None, priority="P1")

    def test_form_fields_are_checked(self) -> None:
        with pytest.raises(AnswerError, match=r"step 'approve': field 'priority': 'P9' is not one of \['P1', 'P2'\]"):
            answer(APPROVE, "ann", "approve", priority="P9")

    def test_result_names_who_approved(self) -> None:
        first = answer(APPROVE, "ann", "approve", priority="P1")
        second = answer(APPROVE, "bob", "approve", earlier=[first], priority="P2")
        result = answers.human_result(APPROVE, [first, second], "approve")
        assert result["approved_by"] == ["ann", "bob"]
        assert result["priority"] == "P2"  # the deciding answer's fields
        assert result["by"] == "bob"


class TestForm:
    def test_a_form_takes_no_decision(self) -> None:
        with pytest.raises(AnswerError, match="is a form: it takes no decision"):
            answer(URGENT, "bob", "approve", eligible=("bob",), fix="x")

    def test_one_answer_decides_a_form(self) -> None:
        given = answer(URGENT, "bob", eligible=("bob",), fix="patched")
        assert answers.tally(URGENT, [given]) == "submit"
        assert router.route(SPEC, URGENT, answers.human_result(URGENT, [given], "submit")) == router.Goto("inspect", "next")


class TestChecklist:
    def test_weighted_score_and_pass_mark(self) -> None:
        assert answers.checklist_score(INSPECT, {"tests": True, "docs": False}) == 75.0
        assert answers.checklist_score(INSPECT, {"tests": False, "docs": True}) == 25.0

    def test_passing_goes_on_failing_goes_to_on_fail(self) -> None:
        passed = answers.Answer(by="ann", decision="submit", fields={"items": {"tests": True, "docs": False}})
        result = answers.human_result(INSPECT, [passed], "submit")
        assert (result["score"], result["passed"], result["failed"]) == (75.0, True, ["docs"])
        assert router.route(SPEC, INSPECT, result) == router.Goto("sign-off", "pass")

        failed = answers.Answer(by="cid", decision="submit", fields={"items": {"tests": False, "docs": True}})
        result = answers.human_result(INSPECT, [failed], "submit")
        assert (result["score"], result["passed"]) == (25.0, False)
        assert result["failed_items"] == [{"id": "tests", "label": "Tests pass"}]
        assert router.route(SPEC, INSPECT, result) == router.Goto("rework", "fail")

    def test_checklist_answers_are_accepted(self) -> None:
        given = answer(INSPECT, "ann", eligible=("ann", "cid"), items={"tests": "pass", "docs": "fail"})
        assert given.fields["items"] == {"tests": True, "docs": False}
        given = answer(INSPECT, "cid", eligible=("ann", "cid"), tests="fail", docs="pass")
        assert given.fields["items"] == {"tests": False, "docs": True}

    def test_every_item_needs_a_verdict(self) -> None:
        with pytest.raises(AnswerError, match="item 'docs' has no verdict"):
            answer(INSPECT, "ann", eligible=("ann",), items={"tests": "pass"})
        with pytest.raises(AnswerError, match="unknown item 'test'; did you mean 'tests'"):
            answer(INSPECT, "ann", eligible=("ann",), items={"tests": "pass", "docs": "pass", "test": "pass"})
        with pytest.raises(AnswerError, match="item 'tests': answer pass or fail"):
            answer(INSPECT, "ann", eligible=("ann",), items={"tests": "maybe", "docs": "pass"})


class TestDecision:
    @pytest.mark.parametrize(
        ("priority", "size", "label", "target"),
        [("P1", 1, "when[0]", "urgent"), ("P1", 50, "when[0]", "urgent"), ("P2", 50, "when[1]", "big"), ("P2", 1, "otherwise", "inspect")],
    )
    def test_first_true_branch_else_otherwise(self, priority: str, size: int, label: str, target: str) -> None:
        chosen = router.choose_branch(ROUTE, {"approve": {"priority": priority}, "inputs": {"size": size}})
        assert chosen == router.Exit(label, target)
        assert router.route(SPEC, ROUTE, {"exit": chosen.label, "next": chosen.target}) == router.Goto(target, label)


class TestTimeout:
    def test_timeout_routes_to_on_timeout(self) -> None:
        result = answers.human_result(APPROVE, [], "timeout")
        assert router.route(SPEC, APPROVE, result) == router.Goto("expired", "timeout")

    def test_timeout_without_on_timeout_is_a_step_error(self) -> None:
        with pytest.raises(StepError, match="timed out but has no on_timeout"):
            router.route(SPEC, SIGN_OFF, {"decision": "timeout"})


def test_exits_list_every_way_out() -> None:
    assert [(e.label, e.target) for e in router.exits(SPEC, APPROVE)] == [("approve", "route"), ("reject", "rework"), ("timeout", "expired")]
    assert [(e.label, e.target) for e in router.exits(SPEC, INSPECT)] == [("pass", "sign-off"), ("fail", "rework")]
    assert [e.label for e in router.exits(SPEC, ROUTE)] == ["when[0]", "when[1]", "otherwise"]
    assert router.exits(SPEC, SPEC.step("big")) == [router.Exit("end", None)]
    assert router.following(SPEC, SPEC.step("expired")) is None
