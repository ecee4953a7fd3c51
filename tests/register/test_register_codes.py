"""Answer codes: issued per person and step visit, kept as salted hashes, checked, voided, replaced after 5 wrong tries."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select

from aftercare.engine.errors import AnswerError
from aftercare.engine.register import CaseRecord, Register, engine_for
from aftercare.engine.register.codes import ALPHABET, MAX_FAILURES, normalised
from aftercare.engine.register.models import AnswerCode

from .conftest import T0
from .test_register_answers import quorum

OpenCase = Callable[..., CaseRecord]


@pytest.fixture
def waiting(register: Register, open_case: OpenCase) -> CaseRecord:
    case = open_case()
    register.begin_step(case.key, "review", 1, started_at=T0, status="waiting", eligible=["li.na", "wang.fang"])
    return case


def test_a_code_is_eight_unambiguous_characters_and_only_its_salted_hash_is_stored(register: Register, waiting: CaseRecord) -> None:
    code = register.issue_answer_code(waiting.key, "review", 1, "li.na")
    assert code is not None
    assert len(normalised(code)) == 8 and set(normalised(code)) <= set(ALPHABET)
    with engine_for(register.url).connect() as connection:
        rows = connection.execute(select(AnswerCode.person, AnswerCode.kind, AnswerCode.salt, AnswerCode.digest)).all()
    assert [(r.person, r.kind) for r in rows] == [("li.na", "mail")]
    assert normalised(code) not in rows[0].digest and code not in rows[0].digest
    assert len(rows[0].salt) == 32 and len(rows[0].digest) == 64
    assert [e.event for e in register.audit_events(waiting.key)][-1] == "answer_code.issued"


def test_the_right_code_is_accepted_in_any_case_with_or_without_its_dash(register: Register, waiting: CaseRecord) -> None:
    code = register.issue_answer_code(waiting.key, "review", 1, "li.na")
    assert code is not None
    typed = code.replace("-", "").lower()
    assert register.check_answer_code(waiting.key, "review", 1, "li.na", typed, via="prefect", pause_attempt=1).accepted
    # another person's code is not theirs
    other = register.issue_answer_code(waiting.key, "review", 1, "wang.fang")
    assert other is not None
    check = register.check_answer_code(waiting.key, "review", 1, "li.na", other, via="prefect", pause_attempt=1)
    assert (check.accepted, check.failures, check.reason) == (False, 1, f"wrong answer code for li.na (1 of {MAX_FAILURES} tries)")
    assert register.step_run(waiting.key, "review", 1).pause_attempt == 1  # type: ignore[union-attr]


def test_a_new_code_voids_the_last_and_nobody_the_step_does_not_name_gets_one(register: Register, waiting: CaseRecord) -> None:
    first = register.issue_answer_code(waiting.key, "review", 1, "li.na")
    second = register.issue_answer_code(waiting.key, "review", 1, "li.na")
    assert first is not None and second is not None and first != second
    assert not register.check_answer_code(waiting.key, "review", 1, "li.na", first, via="prefect", pause_attempt=1).accepted
    assert register.check_answer_code(waiting.key, "review", 1, "li.na", second, via="prefect", pause_attempt=2).accepted
    assert register.issue_answer_code(waiting.key, "review", 1, "zhang.wei") is None


def test_five_wrong_codes_void_the_code(register: Register, waiting: CaseRecord) -> None:
    code = register.issue_answer_code(waiting.key, "review", 1, "li.na")
    assert code is not None
    checks = [register.check_answer_code(waiting.key, "review", 1, "li.na", "WRONG-CODE", via="prefect", pause_attempt=n) for n in range(1, 6)]
    assert [(c.failures, c.replaced) for c in checks] == [(1, False), (2, False), (3, False), (4, False), (5, True)]
    assert checks[-1].reason == f"wrong answer code for li.na ({MAX_FAILURES} wrong codes: that code is void, a new one is on its way)"
    assert not register.check_answer_code(waiting.key, "review", 1, "li.na", code, via="prefect", pause_attempt=6).accepted
    refused = [e for e in register.audit_events(waiting.key) if e.event == "answer.refused"]
    assert len(refused) == 6 and refused[0].after == {"step": "review", "visit": 1, "via": "prefect"}


def test_codes_are_void_once_the_step_is_decided(register: Register, waiting: CaseRecord) -> None:
    code = register.issue_answer_code(waiting.key, "review", 1, "wang.fang")
    assert code is not None
    register.answer(waiting.key, "review", 1, person="li.na", decision="approve", decide=quorum(1))
    check = register.check_answer_code(waiting.key, "review", 1, "wang.fang", code, via="prefect", pause_attempt=1)
    assert (check.accepted, check.reason) == (False, f"step 'review' of {waiting.key} no longer waits (it is done): its answer codes are void")
    with engine_for(register.url).connect() as connection:
        assert connection.execute(select(AnswerCode.voided_at)).scalar_one() is not None


def test_a_code_is_void_once_its_person_is_no_longer_named(register: Register, waiting: CaseRecord) -> None:
    code = register.issue_answer_code(waiting.key, "review", 1, "wang.fang")
    assert code is not None
    register.update_step(waiting.key, "review", 1, eligible=["li.na", "zhang.wei"])  # reassigned away
    check = register.check_answer_code(waiting.key, "review", 1, "wang.fang", code, via="prefect", pause_attempt=1)
    assert (check.accepted, check.reason) == (False, f"'wang.fang' may not answer step 'review' of {waiting.key} now: it names li.na, zhang.wei")


def test_an_operator_token_answers_once_with_its_os_user(register: Register, waiting: CaseRecord) -> None:
    token = register.issue_operator_token(waiting.key, "review", 1, "li.na", os_user="ops")
    ok = register.check_answer_code(waiting.key, "review", 1, "li.na", token, via="prefect", pause_attempt=1)
    assert (ok.accepted, ok.operator) == (True, "ops")
    again = register.check_answer_code(waiting.key, "review", 1, "li.na", token, via="prefect", pause_attempt=1)
    assert again.accepted  # the same pause seen again (a replay)
    assert not register.check_answer_code(waiting.key, "review", 1, "li.na", token, via="prefect", pause_attempt=2).accepted
    assert not register.check_answer_code(waiting.key, "review", 1, "wang.fang", token, via="prefect", pause_attempt=3).accepted
    with pytest.raises(AnswerError, match="'zhang.wei' may not answer step 'review'"):
        register.issue_operator_token(waiting.key, "review", 1, "zhang.wei", os_user="ops")


def test_an_answer_at_the_shell_keeps_its_os_user_in_the_row_and_the_audit(register: Register, waiting: CaseRecord) -> None:
    outcome = register.answer(waiting.key, "review", 1, person="li.na", decision="approve", decide=quorum(2), operator="ops")
    assert outcome.answer.operator == "ops"
    assert register.answers(waiting.key, "review", 1)[0].operator == "ops"
    audit = [e for e in register.audit_events(waiting.key) if e.event == "answer.operator"]
    assert [(e.actor, e.after) for e in audit] == [("li.na", {"step": "review", "visit": 1, "os_user": "ops"})]


def test_codes_of_instances_are_per_step_visit_and_checked_against_the_instance(register: Register, open_case: OpenCase) -> None:
    case = open_case()
    register.begin_step(case.key, "review", 1, started_at=T0, status="waiting", eligible=[])
    register.begin_step(case.key, "review[0]", 1, started_at=T0, status="waiting", eligible=["li.na"])
    register.begin_step(case.key, "review[1]", 1, started_at=T0, status="waiting", eligible=["wang.fang"])
    code = register.issue_answer_code(case.key, "review", 1, "li.na")
    assert code is not None
    assert register.check_answer_code(case.key, "review[0]", 1, "li.na", code, via="prefect", pause_attempt=1).accepted
    assert not register.check_answer_code(case.key, "review[1]", 1, "li.na", code, via="prefect", pause_attempt=1).accepted
