"""Personal answer codes and operators' one-time tokens: issued, checked, voided; the register keeps only salted hashes.

A person's code (``mail``) is sent in the step's waiting message; it proves that the one
answering in the Prefect UI as that person read that person's mail. One live code per
person and step visit: a new one voids the last. ``aftercare answer`` (the operator's
shell, which holds the register's URL) issues an ``operator`` token instead, for one
answer, with the operating-system user, and submits it through the same form.

A code is good only while the step visit is open and names the person (its ``eligible``
now, so a person reassigned away holds a void code); :data:`MAX_FAILURES` wrong codes void
the person's code, and the caller sends a new one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..clock import utc_now
from ..errors import AnswerError
from .column_types import require_utc
from .history import add_audit
from .models import AnswerCode, StepRun
from .records import OPEN_STEP_STATUSES, CodeCheck
from .rows import case_row
from .steps import pause_attempt_at_least, step_row
from .store import SYSTEM_ACTOR, Store

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
"""Letters and digits nobody misreads (no 0/O, 1/I/L)."""
CODE_LENGTH = 8
MAX_FAILURES = 5
"""Wrong codes a person may try on one code before it is replaced."""
KIND_MAIL = "mail"
KIND_OPERATOR = "operator"
OPERATOR_PREFIX = "op-"
REFUSED_EVENT = "answer.refused"
ISSUED_EVENT = "answer_code.issued"


def new_code() -> str:
    """A fresh personal code, shown as ``ABCD-EFGH``."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return f"{raw[:4]}-{raw[4:]}"


def normalised(code: str) -> str:
    """A code as typed, made comparable: an operator token as given; a person's code without spaces or dashes, upper case."""
    text = code.strip()
    if text.startswith(OPERATOR_PREFIX):
        return text
    return "".join(ch for ch in text.upper() if ch not in " -")


def code_digest(salt: str, code: str) -> str:
    """The stored hash of a code: scrypt with the row's own salt (hex)."""
    return hashlib.scrypt(normalised(code).encode("utf-8"), salt=bytes.fromhex(salt), n=2**14, r=8, p=1, dklen=32).hex()


def _matches(row: AnswerCode, code: str) -> bool:
    return hmac.compare_digest(row.digest, code_digest(row.salt, code))


def _base_step(row: str) -> str:
    """The step of a register row (``review[2]`` is an instance of ``review``); the rows' format is the runtime's."""
    return row.split("[", 1)[0]


def _open_rows(session: Session, case_id: int, step_id: str, visit: int) -> list[StepRun]:
    rows = session.scalars(select(StepRun).where(StepRun.case_id == case_id, StepRun.visit == visit, StepRun.step_id.startswith(step_id)))
    return [row for row in rows if _base_step(row.step_id) == step_id and row.status in OPEN_STEP_STATUSES]


def _live(session: Session, case_id: int, step_id: str, visit: int, person: str | None = None) -> list[AnswerCode]:
    statement = select(AnswerCode).where(
        AnswerCode.case_id == case_id, AnswerCode.step_id == step_id, AnswerCode.visit == visit, AnswerCode.voided_at.is_(None)
    )
    if person is not None:
        statement = statement.where(AnswerCode.person == person)
    return list(session.scalars(statement.order_by(AnswerCode.id)))


def _add(session: Session, case_id: int, step_id: str, visit: int, person: str, kind: str, code: str, when: datetime, os_user: str | None = None) -> None:
    salt = secrets.token_hex(16)
    session.add(AnswerCode(
        case_id=case_id, step_id=step_id, visit=visit, person=person, kind=kind, salt=salt,
        digest=code_digest(salt, code), os_user=os_user, failures=0, issued_at=when,
    ))


def void_stale_codes(session: Session, case_id: int, step_id: str, visit: int, when: datetime) -> int:
    """Void the live codes of a step visit whose person no open row of it names any more (decided, withdrawn, reassigned)."""
    base = _base_step(step_id)
    named = {person for row in _open_rows(session, case_id, base, visit) for person in row.eligible or ()}
    stale = [code for code in _live(session, case_id, base, visit) if code.person not in named]
    for code in stale:
        code.voided_at = when
    return len(stale)


class CodeStore(Store):
    """The answer-code part of :class:`Register`."""

    def issue_answer_code(self, key: str, step_id: str, visit: int, person: str, *, at: datetime | None = None) -> str | None:
        """A new personal code of ``person`` for a step visit (the last one void); None when no open row of it names them.

        Returns:
            The code in clear, for the message only: the register keeps its salted hash.
        """
        when = require_utc(at, "at") if at else utc_now()
        with self._write() as session:
            case = case_row(session, key)
            if not any(person in (row.eligible or ()) for row in _open_rows(session, case.id, step_id, visit)):
                return None
            for old in _live(session, case.id, step_id, visit, person):
                if old.kind == KIND_MAIL:
                    old.voided_at = when
            code = new_code()
            _add(session, case.id, step_id, visit, person, KIND_MAIL, code, when)
            add_audit(session, case.id, ISSUED_EVENT, SYSTEM_ACTOR, when, after={"step": step_id, "visit": visit, "person": person},
                      detail=f"an answer code for {person} at {step_id} #{visit}")
        return code

    def issue_operator_token(
        self, key: str, step_id: str, visit: int, person: str, *, os_user: str, at: datetime | None = None
    ) -> str:
        """A one-time token for an answer given at the operator's shell as ``person``, tied to the step visit and ``os_user``.

        Raises:
            AnswerError: no open row of the step visit names the person.
        """
        when = require_utc(at, "at") if at else utc_now()
        token = OPERATOR_PREFIX + secrets.token_urlsafe(24)
        with self._write() as session:
            case = case_row(session, key)
            if not any(person in (row.eligible or ()) for row in _open_rows(session, case.id, step_id, visit)):
                raise AnswerError(f"{person!r} may not answer step {step_id!r} of {key} #{visit}: no open row of it names them")
            _add(session, case.id, step_id, visit, person, KIND_OPERATOR, token, when, os_user=os_user)
        return token

    def check_answer_code(
        self,
        key: str,
        row: str,
        visit: int,
        person: str,
        code: str,
        *,
        via: str,
        pause_attempt: int,
        at: datetime | None = None,
    ) -> CodeCheck:
        """Whether ``code`` lets ``person`` answer a step visit (or instance ``row``) now, in one transaction.

        Accepted: a live personal code of the person, or an operator token not used by
        another pause (it is marked used by this one, ``pause_attempt``). Refused (the
        step row no longer open, the person not named by it now, a wrong code): the
        audit gets ``answer.refused`` and the row's ``pause_attempt`` is raised, as for
        any refused answer; a wrong code counts against the person's code, and the
        :data:`MAX_FAILURES`-th voids it (``replaced``).
        """
        when = require_utc(at, "at") if at else utc_now()
        step_id = _base_step(row)
        with self._write() as session:
            case = case_row(session, key)
            step = step_row(session, case.id, row, visit, lock=True)
            failures, replaced = 0, False
            if step.status not in OPEN_STEP_STATUSES:
                reason = f"step '{row}' of {key} no longer waits (it is {step.status}): its answer codes are void"
            elif person not in (step.eligible or ()):
                reason = f"{person!r} may not answer step '{row}' of {key} now: it names {', '.join(step.eligible or ()) or 'nobody'}"
            else:
                live = _live(session, case.id, step_id, visit, person)
                for found in live:
                    if found.kind == KIND_OPERATOR and found.used_at is not None and found.used_attempt != pause_attempt:
                        continue
                    if _matches(found, code):
                        if found.kind == KIND_OPERATOR:
                            found.used_at, found.used_attempt = found.used_at or when, pause_attempt
                        return CodeCheck(True, operator=found.os_user)
                mail = [found for found in live if found.kind == KIND_MAIL]
                if mail:
                    current = mail[-1]
                    current.failures += 1
                    failures = current.failures
                    if failures >= MAX_FAILURES:
                        current.voided_at, replaced = when, True
                reason = f"wrong answer code for {person}" + (
                    f" ({MAX_FAILURES} wrong codes: that code is void, a new one is on its way)" if replaced
                    else f" ({failures} of {MAX_FAILURES} tries)" if mail else ": no code was sent to them for this step yet"
                )
            pause_attempt_at_least(step, pause_attempt)
            add_audit(session, case.id, REFUSED_EVENT, person, when, after={"step": row, "visit": visit, "via": via}, detail=reason)
        return CodeCheck(False, reason=reason, failures=failures, replaced=replaced)


__all__ = [
    "ALPHABET", "CODE_LENGTH", "KIND_MAIL", "KIND_OPERATOR", "MAX_FAILURES", "CodeStore", "code_digest", "new_code",
    "normalised", "void_stale_codes",
]
