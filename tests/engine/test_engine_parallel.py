"""Language v2 in the simulator: parallel splits and joins, inclusive decisions, for_each, waited-for cases.

Each test names the exact path (steps as entered, by the ordering rules) and the withdrawn set.
"""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone
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
