"""Language v2 in the simulator: parallel splits and joins, inclusive decisions, for_each, waited-for cases.

Each test names the exact path (steps as entered, by the ordering rules) and the withdrawn set.
"""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from aftercare.engine.errors import AnswerError
from aftercare.engine.library import load_library, validate
from aftercare.engine.simulator import SimulationResult, Simulator
from aftercare.notifications import Composer

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
TEAM = """
team:
  people:
    ann: {name: Ann, email: ann@example.com}
    bob: {name: Bob, email: bob@example.com}
    cid: {name: Cid, email: cid@example.com}
    dan: {name: Dan, email: dan@example.com}
  roles:
    engineering: [ann]
    customer: [bob]
    manager: [cid]
"""


def simulate(tmp_path: Path, body: str, answers: dict[str, Any], inputs: dict[str, Any] | None = None) -> SimulationResult:
    (tmp_path / "team.yaml").write_text(TEAM, encoding="utf-8")
    file = tmp_path / "p.yaml"
    file.write_text("process: p\ntitle: P\nversion: 1\nkey: PP\n" + textwrap.dedent(body), encoding="utf-8")
    loaded, problems = validate([tmp_path])
    assert not problems, "\n".join(map(str, problems))
    library = load_library(tmp_path)
    catalog = {name: item.spec for name, item in library.definitions.items()}
    simulator = Simulator(library.get("p").spec, library.team, answers, composer=Composer.for_library(library), catalog=catalog, start=START)
    return simulator.run(inputs or {})


REVIEWS = """
steps:
  - id: reviews
    type: parallel
    branches: [tech-review, customer-review]
  - id: tech-review
    type: approval
    assignee: role:engineering
    on_reject: rejected
    next: reviewed
  - id: customer-review
    type: approval
    assignee: role:customer
    next: reviewed
  - id: reviewed
    type: join
    wait: {wait}
    next: done
  - {{id: done, type: end, outcome: approved}}
  - {{id: rejected, type: end, outcome: rejected}}
"""


def test_parallel_all_waits_for_both_in_branch_order(tmp_path: Path) -> None:
    result = simulate(tmp_path, REVIEWS.format(wait="all"), {
        "tech-review": {"decision": "approve", "by": "ann", "after": "2h"},
        "customer-review": {"decision": "approve", "by": "bob", "after": "1h"},
    })
    assert result.path == ["reviews", "tech-review", "customer-review", "reviewed", "done"]
    assert result.outcome == "approved"
    assert result.withdrawn == []
    assert result.case.results["reviewed"] == {"arrived": True}
    assert result.as_json()["withdrawn"] == []


def test_any_join_withdraws_the_slower_branch(tmp_path: Path) -> None:
    result = simulate(tmp_path, REVIEWS.format(wait="any"), {
        "tech-review": {"decision": "approve", "by": "ann", "after": "2h"},
        "customer-review": {"decision": "approve", "by": "bob", "after": "1h"},
    })
    assert result.path == ["reviews", "tech-review", "customer-review", "reviewed", "done"]
    assert result.withdrawn == ["tech-review"]
    assert result.case.results["tech-review"] == {"withdrawn": True}
    assert [a.by for _, _, a in result.answers] == ["bob"]


def test_a_race_is_decided_by_after(tmp_path: Path) -> None:
    result = simulate(tmp_path, REVIEWS.format(wait="any"), {
        "tech-review": {"decision": "approve", "by": "ann", "after": "30m"},
        "customer-review": {"decision": "approve", "by": "bob", "after": "1h"},
    })
    assert result.withdrawn == ["customer-review"]


def test_an_end_in_one_branch_withdraws_the_other(tmp_path: Path) -> None:
    result = simulate(tmp_path, REVIEWS.format(wait="all"), {
        "tech-review": {"decision": "reject", "by": "ann", "after": "1h"},
        "customer-review": {"decision": "approve", "by": "bob", "after": "3h"},
    })
    assert result.path == ["reviews", "tech-review", "customer-review", "rejected"]
    assert result.outcome == "rejected"
    assert result.withdrawn == ["customer-review"]


def test_any_join_withdraws_a_branch_waiting_on_a_timer_and_one_on_a_person(tmp_path: Path) -> None:
    body = """
    steps:
      - id: search
        type: parallel
        branches: [warehouse-a, cool-off, ask-cid]
      - id: warehouse-a
        type: form
        assignee: role:engineering
        form: {found: {type: boolean}}
        next: found
      - id: cool-off
        type: wait
        duration: 2d
        next: found
      - id: ask-cid
        type: form
        assignee: role:manager
        next: found
      - id: found
        type: join
        wait: any
    """
    result = simulate(tmp_path, body, {"warehouse-a": {"by": "ann", "found": True, "after": "3h"}})
    assert result.path == ["search", "warehouse-a", "cool-off", "ask-cid", "found"]
    assert result.withdrawn == ["cool-off", "ask-cid"]
    assert result.outcome == "completed"
    assert result.case.results["warehouse-a"]["found"] is True


def test_the_timer_wins_when_it_comes_first(tmp_path: Path) -> None:
    body = """
    steps:
      - id: search
        type: parallel
        branches: [ask, cool-off]
      - id: ask
        type: form
        assignee: role:engineering
        next: found
      - id: cool-off
        type: wait
        duration: 2h
        next: gave-up
      - id: gave-up
        type: notify
        to: [role:manager]
        message: "Nobody answered {{ case.key }}"
        next: found
      - id: found
        type: join
        wait: any
    """
    result = simulate(tmp_path, body, {"ask": {"by": "ann", "after": "3h"}})
    assert result.path == ["search", "ask", "cool-off", "gave-up", "found"]
    assert result.withdrawn == ["ask"]
    assert result.answers == []


DECIDE_ALL = """
inputs:
  cost: {type: number}
  security: {type: boolean}
steps:
  - id: who-reviews
    type: decision
    mode: all
    branches:
      - {when: "inputs.cost > 10000", next: finance-review}
      - {when: "inputs.security", next: security-review}
    otherwise: reviewed
  - id: finance-review
    type: approval
    assignee: role:manager
    next: reviewed
  - id: security-review
    type: approval
    assignee: role:engineering
    next: reviewed
  - id: reviewed
    type: join
  - id: log
    type: record
    set: {security: "{{ steps['security-review'].withdrawn }}"}
"""


@pytest.mark.parametrize(
    ("cost", "security", "answers", "path"),
    [
        (20000, True, {"finance-review": {"decision": "approve", "by": "cid"}, "security-review": {"decision": "approve", "by": "ann"}},
         ["who-reviews", "finance-review", "security-review", "reviewed", "log"]),
        (20000, False, {"finance-review": {"decision": "approve", "by": "cid"}}, ["who-reviews", "finance-review", "reviewed", "log"]),
        (10, False, {}, ["who-reviews", "reviewed", "log"]),
    ],
)
def test_an_inclusive_decision_waits_for_the_branches_that_started(
    tmp_path: Path, cost: int, security: bool, answers: dict[str, Any], path: list[str]
) -> None:
    result = simulate(tmp_path, DECIDE_ALL, answers, {"cost": cost, "security": security})
    assert result.path == path
    assert result.outcome == "completed"
    assert result.withdrawn == []


def test_splits_nest(tmp_path: Path) -> None:
    body = """
    steps:
      - id: outer
        type: parallel
        branches: [inner, c]
      - id: inner
        type: parallel
        branches: [a, b]
      - {id: a, type: form, assignee: role:engineering, next: inner-join}
      - {id: b, type: form, assignee: role:customer, next: inner-join}
      - {id: inner-join, type: join, next: outer-join}
      - {id: c, type: form, assignee: role:manager, next: outer-join}
      - {id: outer-join, type: join, wait: any}
    """
    result = simulate(tmp_path, body, {
        "a": {"by": "ann", "after": "1h"}, "b": {"by": "bob", "after": "2h"}, "c": {"by": "cid", "after": "90m"},
    })
    assert result.path == ["outer", "inner", "a", "b", "c", "outer-join"]
    assert result.withdrawn == ["b"]


FOR_EACH = """
inputs:
  stakeholders: {type: list}
steps:
  - id: stakeholder-review
    type: KIND
    for_each: "{{ inputs.stakeholders }}"
    title: "Review by {{ item }}"
    assignee: "person:{{ item }}"
    wait: WAIT
    EXTRA
  - id: tally
    type: record
    set: {completed: "{{ steps['stakeholder-review'].completed }}"}
"""


def for_each(kind: str, wait: str, extra: str = "") -> str:
    return FOR_EACH.replace("KIND", kind).replace("WAIT", wait).replace("EXTRA", extra)


def test_for_each_form_waits_for_every_instance_in_item_order(tmp_path: Path) -> None:
    body = for_each("form", "all", "form: {score: {type: integer, minimum: 1, maximum: 5}}")
    result = simulate(tmp_path, body, {"stakeholder-review": [
        {"by": "bob", "score": 4, "after": "1h"}, {"by": "ann", "score": 5, "after": "2h"},
    ]}, {"stakeholders": ["ann", "bob"]})
    review = result.case.results["stakeholder-review"]
    assert [i["item"] for i in review["instances"]] == ["ann", "bob"]
    assert [i["score"] for i in review["instances"]] == [5, 4]
    assert review["completed"] == 2
    assert result.path == ["stakeholder-review", "tally"]
    assert result.case.fields["completed"] == 2


def test_for_each_any_withdraws_the_other_instances(tmp_path: Path) -> None:
    body = for_each("form", "any", "")
    result = simulate(tmp_path, body, {"stakeholder-review": [{"by": "cid"}]}, {"stakeholders": ["ann", "bob", "cid"]})
    review = result.case.results["stakeholder-review"]
    assert review["instances"] == [
        {"item": "ann", "withdrawn": True}, {"item": "bob", "withdrawn": True},
        {"item": "cid", "by": "cid", "decision": "submit", "comment": ""},
    ]
    assert review["completed"] == 1
    assert result.withdrawn == []  # instances withdrawn, not the step


def test_for_each_approval_is_vetoed_by_the_first_rejection(tmp_path: Path) -> None:
    body = for_each("approval", "all", "on_reject: no")
    body += "  - {id: no, type: end, outcome: rejected}\n"
    result = simulate(tmp_path, body, {"stakeholder-review": [{"by": "ann", "decision": "reject"}]}, {"stakeholders": ["ann", "bob"]})
    assert result.outcome == "rejected"
    assert result.case.results["stakeholder-review"]["instances"][1] == {"item": "bob", "withdrawn": True}


def test_for_each_answer_from_someone_no_instance_names_is_refused(tmp_path: Path) -> None:
    body = for_each("form", "all", "")
    with pytest.raises(AnswerError, match="'dan' may not answer step 'stakeholder-review'"):
        simulate(tmp_path, body, {"stakeholder-review": [{"by": "dan"}]}, {"stakeholders": ["ann"]})


def test_for_each_with_no_items_is_done_at_once(tmp_path: Path) -> None:
    body = for_each("form", "all", "")
    result = simulate(tmp_path, body, {}, {"stakeholders": []})
    assert result.path == ["stakeholder-review", "tally"]
    assert result.case.results["stakeholder-review"]["completed"] == 0


def test_start_with_wait_gathers_the_outcomes(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(
        "process: child\ntitle: C\nversion: 1\nkey: CH\ninputs: {title: {type: string}}\nsteps:\n  - {id: e, type: end, outcome: fixed}\n",
        encoding="utf-8",
    )
    body = """
    inputs:
      failed: {type: list}
    steps:
      - id: fix-findings
        type: start
        process: child
        for_each: "{{ inputs.failed }}"
        inputs: {title: "{{ item }}"}
        wait: all
      - id: done
        type: record
        set: {outcomes: "{{ steps['fix-findings'].outcomes }}"}
    """
    result = simulate(tmp_path, body, {"fix-findings": [{"outcome": "fixed", "after": "1d"}, {"outcome": "wont-fix", "after": "2d"}]},
                      {"failed": ["fan", "disk"]})
    found = result.case.results["fix-findings"]
    assert found["cases"] == ["CH-0001", "CH-0002"]
    assert found["outcomes"] == ["fixed", "wont-fix"]
    assert found["outcome"] == "fixed"
    assert result.case.fields["outcomes"] == ["fixed", "wont-fix"]


# --- the precise rules of DESIGN.md, one by one ---------------------------------------------


def entered_at(result: SimulationResult, step_id: str) -> list[datetime]:
    """When each finished visit of a step began, in visit order."""
    return [started for step, _, _, started, _ in result.visits if step == step_id]


def answered(result: SimulationResult) -> list[tuple[str, str, datetime | None]]:
    """Every accepted answer as (step, person, when), in the order the case took them."""
    return [(step, answer.by, answer.answered_at) for step, _, answer in result.answers]


def hours(n: float) -> datetime:
    return START + timedelta(hours=n)


OTHERWISE_A_BRANCH = """
inputs:
  cost: {type: number}
  security: {type: boolean}
steps:
  - id: who-reviews
    type: decision
    mode: all
    branches:
      - {when: "inputs.cost > 10000", next: finance-review}
      - {when: "inputs.security", next: security-review}
    otherwise: security-review
  - id: finance-review
    type: approval
    assignee: role:manager
    next: reviewed
  - id: security-review
    type: approval
    assignee: role:engineering
    next: reviewed
  - id: reviewed
    type: join
  - {id: done, type: end, outcome: reviewed}
"""


def test_otherwise_of_an_inclusive_decision_names_a_branch_that_counts_as_started(tmp_path: Path) -> None:
    result = simulate(tmp_path, OTHERWISE_A_BRANCH, {"security-review": {"decision": "approve", "by": "ann", "after": "2h"}},
                      {"cost": 10, "security": False})
    assert result.path == ["who-reviews", "security-review", "reviewed", "done"]
    assert result.withdrawn == []
    assert result.case.results["who-reviews"]["exit"] == "otherwise"
    assert entered_at(result, "reviewed") == [hours(2)]  # the join waited for the branch otherwise started
    assert ("who-reviews", "otherwise") in result.case.exits


def test_otherwise_is_not_taken_when_a_branch_holds(tmp_path: Path) -> None:
    result = simulate(tmp_path, OTHERWISE_A_BRANCH, {"finance-review": {"decision": "approve", "by": "cid", "after": "1h"}},
                      {"cost": 20000, "security": False})
    assert result.path == ["who-reviews", "finance-review", "reviewed", "done"]
    assert result.withdrawn == []
    assert "security-review" not in result.case.results


THREE_REVIEWS = """
steps:
  - id: reviews
    type: parallel
    branches: [tech-review, customer-review, site-visit]
  - id: tech-review
    type: approval
    assignee: role:engineering
    next: reviewed
  - id: customer-review
    type: approval
    assignee: role:customer
    next: reviewed
  - id: site-visit
    type: form
    assignee: role:manager
    next: reviewed
  - id: reviewed
    type: join
    wait: 2
  - id: route
    type: decision
    branches:
      - {when: "steps['customer-review'].withdrawn", next: tell-customer}
    otherwise: done
  - id: tell-customer
    type: notify
    to: [role:customer]
    message: "{{ case.key }} went ahead without your review"
  - {id: done, type: end, outcome: reviewed}
"""


def test_a_join_waiting_for_2_of_3_withdraws_the_third(tmp_path: Path) -> None:
    result = simulate(tmp_path, THREE_REVIEWS, {
        "tech-review": {"decision": "approve", "by": "ann", "after": "1h"},
        "customer-review": {"decision": "approve", "by": "bob", "after": "3h"},
        "site-visit": {"by": "cid", "after": "2h"},
    })
    assert result.path == ["reviews", "tech-review", "customer-review", "site-visit", "reviewed", "route", "tell-customer", "done"]
    assert result.withdrawn == ["customer-review"]
    assert result.case.results["customer-review"] == {"withdrawn": True}
    assert entered_at(result, "reviewed") == [hours(2)]
    assert answered(result) == [("tech-review", "ann", hours(1)), ("site-visit", "cid", hours(2))]


def test_withdrawn_routes_a_later_decision(tmp_path: Path) -> None:
    """``steps['customer-review'].withdrawn`` is true after the join withdrew it, empty when it answered."""
    withdrawn = simulate(tmp_path, THREE_REVIEWS, {
        "tech-review": {"decision": "approve", "by": "ann", "after": "1h"},
        "customer-review": {"decision": "approve", "by": "bob", "after": "3h"},
        "site-visit": {"by": "cid", "after": "2h"},
    })
    assert withdrawn.case.results["route"]["next"] == "tell-customer"
    assert withdrawn.path == ["reviews", "tech-review", "customer-review", "site-visit", "reviewed", "route", "tell-customer", "done"]
    answered_in_time = simulate(tmp_path, THREE_REVIEWS, {
        "tech-review": {"decision": "approve", "by": "ann", "after": "1h"},
        "customer-review": {"decision": "approve", "by": "bob", "after": "90m"},
        "site-visit": {"by": "cid", "after": "2h"},
    })
    assert answered_in_time.path == ["reviews", "tech-review", "customer-review", "site-visit", "reviewed", "route", "done"]
    assert answered_in_time.withdrawn == ["site-visit"]
    assert answered_in_time.case.results["route"]["next"] == "done"


LOOP_IN_A_BRANCH = """
steps:
  - id: reviews
    type: parallel
    branches: [tech-review, customer-review]
  - id: tech-review
    type: approval
    assignee: role:engineering
    on_reject: rework
    next: reviewed
  - id: rework
    type: form
    assignee: role:engineering
    form: {change: {type: text}}
    next: tech-review
  - id: customer-review
    type: approval
    assignee: role:customer
    next: reviewed
  - id: reviewed
    type: join
  - {id: done, type: end, outcome: approved}
"""


def test_a_rejection_loops_inside_its_branch_then_the_join(tmp_path: Path) -> None:
    result = simulate(tmp_path, LOOP_IN_A_BRANCH, {
        "tech-review": [{"decision": "reject", "by": "ann", "after": "1h"}, {"decision": "approve", "by": "ann", "after": "1h"}],
        "rework": {"by": "ann", "change": "smaller pump", "after": "30m"},
        "customer-review": {"decision": "approve", "by": "bob", "after": "5h"},
    })
    assert result.path == ["reviews", "tech-review", "customer-review", "rework", "tech-review", "reviewed", "done"]
    assert result.withdrawn == []
    assert result.case.visits["tech-review"] == 2
    assert entered_at(result, "tech-review") == [hours(0), hours(1.5)]
    assert entered_at(result, "reviewed") == [hours(5)]
    assert answered(result) == [
        ("tech-review", "ann", hours(1)), ("rework", "ann", hours(1.5)), ("tech-review", "ann", hours(2.5)), ("customer-review", "bob", hours(5)),
    ]


LOOP_AFTER_THE_JOIN = """
steps:
  - id: prepare
    type: form
    assignee: role:manager
  - id: reviews
    type: parallel
    branches: [tech-review, customer-review]
  - id: tech-review
    type: approval
    assignee: role:engineering
    next: reviewed
  - id: customer-review
    type: approval
    assignee: role:customer
    next: reviewed
  - id: reviewed
    type: join
    wait: WAIT
  - id: sign-off
    type: approval
    assignee: role:manager
    on_reject: prepare
  - {id: done, type: end, outcome: approved}
"""
ROUND = ["prepare", "reviews", "tech-review", "customer-review", "reviewed", "sign-off"]


def test_the_same_parallel_twice_through_a_loop_after_the_join(tmp_path: Path) -> None:
    result = simulate(tmp_path, LOOP_AFTER_THE_JOIN.replace("WAIT", "all"), {
        "prepare": [{"by": "cid"}, {"by": "cid", "after": "1h"}],
        "tech-review": [{"decision": "approve", "by": "ann", "after": "1h"}, {"decision": "approve", "by": "ann", "after": "3h"}],
        "customer-review": [{"decision": "approve", "by": "bob", "after": "2h"}, {"decision": "approve", "by": "bob", "after": "1h"}],
        "sign-off": [{"decision": "reject", "by": "cid"}, {"decision": "approve", "by": "cid"}],
    })
    assert result.path == [*ROUND, *ROUND, "done"]
    assert result.withdrawn == []
    assert {step: result.case.visits[step] for step in ("reviews", "tech-review", "customer-review", "reviewed")} == {
        "reviews": 2, "tech-review": 2, "customer-review": 2, "reviewed": 2,
    }
    # round 2 starts at 3h (prepare answered 1h after the rejection at 2h); its join waits for both again
    assert entered_at(result, "reviews") == [hours(0), hours(3)]
    assert entered_at(result, "reviewed") == [hours(2), hours(6)]


def test_an_any_join_visited_twice_lists_each_withdrawn_step_once(tmp_path: Path) -> None:
    """The slower review is withdrawn each round; its one scripted answer waits for the round it answers in."""
    result = simulate(tmp_path, LOOP_AFTER_THE_JOIN.replace("WAIT", "any"), {
        "prepare": [{"by": "cid"}, {"by": "cid"}, {"by": "cid"}],
        "tech-review": [{"decision": "approve", "by": "ann", "after": "5h"}],
        "customer-review": [
            {"decision": "approve", "by": "bob", "after": "1h"}, {"decision": "approve", "by": "bob", "after": "1h"},
            {"decision": "approve", "by": "bob", "after": "9h"},
        ],
        "sign-off": [{"decision": "reject", "by": "cid"}, {"decision": "reject", "by": "cid"}, {"decision": "approve", "by": "cid"}],
    })
    assert result.path == [*ROUND, *ROUND, *ROUND, "done"]
    assert result.withdrawn == ["tech-review", "customer-review"]
    assert [(step, by) for step, by, _ in answered(result)] == [
        ("prepare", "cid"), ("customer-review", "bob"), ("sign-off", "cid"),
        ("prepare", "cid"), ("customer-review", "bob"), ("sign-off", "cid"),
        ("prepare", "cid"), ("tech-review", "ann"), ("sign-off", "cid"),
    ]


LATE_IN_A_BRANCH = """
steps:
  - id: reviews
    type: parallel
    branches: [tech-review, customer-review]
  - id: tech-review
    type: approval
    assignee: role:engineering
    due: 4h
    on_timeout: manager-review
    next: reviewed
  - id: manager-review
    type: approval
    assignee: role:manager
    next: reviewed
  - id: customer-review
    type: approval
    assignee: role:customer
    next: reviewed
  - id: reviewed
    type: join
  - {id: done, type: end, outcome: approved}
"""


def test_an_answer_after_the_due_in_a_branch_is_too_late(tmp_path: Path) -> None:
    result = simulate(tmp_path, LATE_IN_A_BRANCH, {
        "tech-review": {"decision": "approve", "by": "ann", "after": "5h"},
        "manager-review": {"decision": "approve", "by": "cid", "after": "1h"},
        "customer-review": {"decision": "approve", "by": "bob", "after": "1h"},
    })
    assert result.path == ["reviews", "tech-review", "customer-review", "manager-review", "reviewed", "done"]
    assert result.withdrawn == []  # a step that timed out is not withdrawn
    assert result.case.results["tech-review"]["decision"] == "timeout"
    assert [(step, visit, submission.by) for step, visit, submission in result.late] == [("tech-review", 1, "ann")]
    assert answered(result) == [("customer-review", "bob", hours(1)), ("manager-review", "cid", hours(5))]
    assert entered_at(result, "manager-review") == [hours(4)]
    assert ("tech-review", "timeout") in result.case.exits


def test_an_answer_before_the_due_in_a_branch_is_taken(tmp_path: Path) -> None:
    result = simulate(tmp_path, LATE_IN_A_BRANCH, {
        "tech-review": {"decision": "approve", "by": "ann", "after": "3h"},
        "customer-review": {"decision": "approve", "by": "bob", "after": "1h"},
    })
    assert result.path == ["reviews", "tech-review", "customer-review", "reviewed", "done"]
    assert result.withdrawn == []
    assert result.late == []


ROUND_CHECK = """
inputs:
  sites: {type: list}
steps:
  - id: site-check
    type: checklist
    for_each: "{{ inputs.sites }}"
    title: "Maintenance round: {{ item }}"
    assignee: role:engineering
    items:
      - {id: power, label: Power supply}
      - {id: cooling, label: Cooling}
    on_fail: open-issues
  - {id: all-good, type: end, outcome: passed}
  - id: open-issues
    type: record
    set:
      failed_sites: "{{ steps['site-check'].instances | rejectattr('passed') | map(attribute='item') | list }}"
"""


def test_a_for_each_checklist_fails_when_one_instance_fails(tmp_path: Path) -> None:
    """Ann inspects both sites: her answers go to the first open instance that names her, in item order."""
    result = simulate(tmp_path, ROUND_CHECK, {"site-check": [
        {"by": "ann", "power": "pass", "cooling": "pass", "after": "1h"},
        {"by": "ann", "power": "pass", "cooling": "fail", "after": "2h"},
    ]}, {"sites": ["north", "south"]})
    assert result.path == ["site-check", "open-issues"]
    assert result.withdrawn == []
    check = result.case.results["site-check"]
    assert check["instances"] == [
        {"item": "north", "by": "ann", "decision": "submit", "comment": "", "score": 100.0, "passed": True, "failed": [],
         "items": {"power": True, "cooling": True}},
        {"item": "south", "by": "ann", "decision": "submit", "comment": "", "score": 50.0, "passed": False, "failed": ["cooling"],
         "items": {"power": True, "cooling": False}},
    ]
    assert check["passed"] is False
    assert check["completed"] == 2
    assert result.case.fields["failed_sites"] == ["south"]
    assert ("site-check", "fail") in result.case.exits


def test_a_for_each_checklist_passes_when_every_instance_passes(tmp_path: Path) -> None:
    result = simulate(tmp_path, ROUND_CHECK, {"site-check": [
        {"by": "ann", "power": "pass", "cooling": "pass"}, {"by": "ann", "power": "pass", "cooling": "pass"},
    ]}, {"sites": ["north", "south"]})
    assert result.path == ["site-check", "all-good"]
    assert result.withdrawn == []
    assert result.outcome == "passed"


QUORUM_BESIDE_A_BRANCH = """
steps:
  - id: reviews
    type: parallel
    branches: [sign-off, customer-review]
  - id: sign-off
    type: approval
    assignee: [role:engineering, role:manager]
    quorum: 2
    next: reviewed
  - id: customer-review
    type: approval
    assignee: role:customer
  - id: tell-engineering
    type: notify
    to: [role:engineering]
    message: "The customer approved {{ case.key }}"
    next: reviewed
  - id: reviewed
    type: join
  - {id: done, type: end, outcome: approved}
"""


def test_a_quorum_of_2_takes_the_other_branchs_answer_between_its_two(tmp_path: Path) -> None:
    result = simulate(tmp_path, QUORUM_BESIDE_A_BRANCH, {
        "sign-off": [{"decision": "approve", "by": "ann", "after": "1h"}, {"decision": "approve", "by": "cid", "after": "3h"}],
        "customer-review": {"decision": "approve", "by": "bob", "after": "2h"},
    })
    assert result.path == ["reviews", "sign-off", "customer-review", "tell-engineering", "reviewed", "done"]
    assert result.withdrawn == []
    assert answered(result) == [("sign-off", "ann", hours(1)), ("customer-review", "bob", hours(2)), ("sign-off", "cid", hours(3))]
    assert entered_at(result, "tell-engineering") == [hours(2)]
    assert entered_at(result, "reviewed") == [hours(3)]
    assert result.case.results["sign-off"]["approved_by"] == ["ann", "cid"]


def test_a_for_each_form_waiting_for_2_withdraws_the_third_instance(tmp_path: Path) -> None:
    body = for_each("form", "2", "form: {score: {type: integer, minimum: 1, maximum: 5}}")
    result = simulate(tmp_path, body, {"stakeholder-review": [
        {"by": "cid", "score": 3, "after": "1h"}, {"by": "ann", "score": 5, "after": "2h"},
    ]}, {"stakeholders": ["ann", "bob", "cid"]})
    assert result.path == ["stakeholder-review", "tally"]
    assert result.withdrawn == []  # instances withdrawn, not the step
    assert result.case.results["stakeholder-review"]["instances"] == [
        {"item": "ann", "by": "ann", "decision": "submit", "comment": "", "score": 5},
        {"item": "bob", "withdrawn": True},
        {"item": "cid", "by": "cid", "decision": "submit", "comment": "", "score": 3},
    ]
    assert result.case.fields["completed"] == 2


def test_a_timed_out_for_each_step_marks_its_open_instances(tmp_path: Path) -> None:
    body = """
    inputs:
      sites: {type: list}
    steps:
      - id: site-report
        type: form
        for_each: "{{ inputs.sites }}"
        assignee: role:engineering
        due: 1d
        on_timeout: chase
      - {id: done, type: end, outcome: reported}
      - {id: chase, type: end, outcome: chased}
    """
    result = simulate(tmp_path, body, {"site-report": [{"by": "ann", "after": "2h"}, {"timeout": True}]}, {"sites": ["north", "south"]})
    assert result.path == ["site-report", "chase"]
    assert result.withdrawn == []
    report = result.case.results["site-report"]
    assert report["decision"] == "timeout"
    assert report["completed"] == 1
    assert report["instances"] == [{"item": "north", "by": "ann", "decision": "submit", "comment": ""}, {"item": "south", "timed_out": True}]


def test_a_for_each_step_assigned_by_item_passes_its_due(tmp_path: Path) -> None:
    body = for_each("form", "all", "due: 1d\n    on_timeout: chase")
    body += "  - {id: chase, type: end, outcome: chased}\n"
    result = simulate(tmp_path, body, {"stakeholder-review": [{"by": "bob", "after": "2h"}, {"timeout": True}]},
                      {"stakeholders": ["ann", "bob"]})
    assert result.path == ["stakeholder-review", "chase"]
    assert result.withdrawn == []
    review = result.case.results["stakeholder-review"]
    assert review["decision"] == "timeout"
    assert review["instances"] == [{"item": "ann", "timed_out": True}, {"item": "bob", "by": "bob", "decision": "submit", "comment": ""}]


CHILD = "process: child\ntitle: C\nversion: 1\nkey: CH\ninputs: {title: {type: string}}\nsteps:\n  - {id: e, type: end, outcome: fixed}\n"
FIRST_WAREHOUSE = """
inputs:
  warehouses: {type: list}
steps:
  - id: find-part
    type: start
    process: child
    for_each: "{{ inputs.warehouses }}"
    inputs: {title: "Spare pump from {{ item }}"}
    wait: any
  - id: done
    type: record
    set: {outcome: "{{ steps['find-part'].outcome }}"}
"""


def test_a_start_with_for_each_and_wait_any_takes_the_first_case_to_end(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(CHILD, encoding="utf-8")
    result = simulate(tmp_path, FIRST_WAREHOUSE, {"find-part": [{"outcome": "found", "after": "1d"}]},
                      {"warehouses": ["shanghai", "suzhou", "ningbo"]})
    assert result.path == ["find-part", "done"]
    assert result.withdrawn == []  # its other cases are withdrawn, not the step
    found = result.case.results["find-part"]
    assert found["cases"] == ["CH-0001", "CH-0002", "CH-0003"]
    assert found["outcomes"] == ["found", None, None]
    assert found["outcome"] == "found"
    assert found["completed"] == 1
    assert entered_at(result, "done") == [hours(24)]


def test_an_unscripted_linked_case_ends_completed_at_once(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(CHILD, encoding="utf-8")
    result = simulate(tmp_path, FIRST_WAREHOUSE.replace("wait: any", "wait: all"), {}, {"warehouses": ["shanghai", "suzhou"]})
    assert result.path == ["find-part", "done"]
    assert result.withdrawn == []
    assert result.case.results["find-part"]["outcomes"] == ["completed", "completed"]
    assert entered_at(result, "done") == [hours(0)]


def test_an_any_join_drops_the_branches_that_had_not_started(tmp_path: Path) -> None:
    """Branches run in order: the first reaches the any-join at once, so the second never starts (nor is withdrawn)."""
    body = """
    steps:
      - id: search
        type: parallel
        branches: [tell-lead, ask]
      - id: tell-lead
        type: notify
        to: [role:manager]
        message: "Looking for a spare part for {{ case.key }}"
        next: found
      - id: ask
        type: form
        assignee: role:engineering
        next: found
      - id: found
        type: join
        wait: any
    """
    result = simulate(tmp_path, body, {})
    assert result.path == ["search", "tell-lead", "found"]
    assert result.withdrawn == []
    assert "ask" not in result.case.results


def test_simulate_json_prints_the_withdrawn_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from aftercare.flows.cli import main

    (tmp_path / "team.yaml").write_text(TEAM, encoding="utf-8")
    definition = tmp_path / "p.yaml"
    definition.write_text("process: p\ntitle: P\nversion: 1\nkey: PP\n" + textwrap.dedent(REVIEWS.format(wait="any")), encoding="utf-8")
    given = tmp_path / "given"  # beside the definition, they would be read as definitions too
    given.mkdir()
    inputs = given / "inputs.yaml"
    inputs.write_text("{}\n", encoding="utf-8")
    answers = given / "answers.yaml"
    answers.write_text(textwrap.dedent("""
        tech-review: {decision: approve, by: ann, after: 2h}
        customer-review: {decision: approve, by: bob, after: 1h}
    """), encoding="utf-8")
    code = main(["simulate", str(definition), "--inputs", str(inputs), "--answers", str(answers), "--json"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "case": "PP-0001", "path": ["reviews", "tech-review", "customer-review", "reviewed", "done"], "outcome": "approved",
        "withdrawn": ["tech-review"],
    }
