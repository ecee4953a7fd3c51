"""People at work on a case: a waiting step handed on to another person, comments on a case."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from ..clock import utc_now
from ..errors import AnswerError
from .column_types import require_utc
from .history import add_audit
from .models import AuditEvent
from .records import AuditRecord, StepRunRecord
from .rows import case_row, to_audit_record, to_step_record
from .steps import step_row
from .store import Store

STEP_REASSIGNED = "step.reassigned"
CASE_COMMENT = "case.comment"


@dataclass(frozen=True)
class Reassignment:
    """What :meth:`HandoverStore.reassign_step` did: the visit before and after, and its audit event."""

    before: StepRunRecord
    after: StepRunRecord
    audit: AuditRecord


class HandoverStore(Store):
    """The handing-on and comment part of :class:`Register`."""

    def reassign_step(
        self, key: str, step_id: str, visit: int, *, eligible: Sequence[str], by: str, reason: str | None = None, at: datetime | None = None
    ) -> Reassignment:
        """Replace who may answer an open step visit, under its row lock, with the audit event ``step.reassigned``.

        The audit keeps who (``actor``), the people before and after and the reason (``detail``).

        Raises:
            NotFoundError: no such case or step visit.
            AnswerError: the visit is no longer open (answered, withdrawn) or ``eligible`` is empty.
        """
        if isinstance(eligible, str) or not eligible:
            raise AnswerError("a step is handed on to at least one person")
        when = require_utc(at, "at") if at else utc_now()
        with self._write() as session:
            case = case_row(session, key, lock=True)
            row = step_row(session, case.id, step_id, visit, lock=True)
            before = to_step_record(row, case.key)
            if not before.is_open or case.closed_at is not None:
                raise AnswerError(f"step {step_id!r} of {key} is {before.status}; only a waiting step is handed on")
            row.eligible = list(dict.fromkeys(eligible))
            detail = f"{step_id} #{visit} from {', '.join(before.eligible) or 'nobody'} to {', '.join(row.eligible)}"
            if reason:
                detail += f": {reason}"
            after_people = {"step": step_id, "visit": visit, "eligible": list(row.eligible)}
            before_people = {"step": step_id, "visit": visit, "eligible": list(before.eligible)}
            audit_id = add_audit(session, case.id, STEP_REASSIGNED, by, when, before_people, after_people, detail)
            after = to_step_record(row, case.key)
        audit = AuditRecord(audit_id, key, STEP_REASSIGNED, by, when, before_people, after_people, detail)
        return Reassignment(before, after, audit)

    def add_comment(self, key: str, *, by: str, text: str, at: datetime | None = None) -> AuditRecord:
        """Keep a comment on a case (audit event ``case.comment``, the text as its detail); it decides nothing.

        Raises:
            NotFoundError: no such case.
            AnswerError: the text is empty.
        """
        text = text.strip()
        if not text:
            raise AnswerError("the comment is empty: say something with -m TEXT")
        when = require_utc(at, "at") if at else utc_now()
        with self._write() as session:
            case = case_row(session, key)
            audit_id = add_audit(session, case.id, CASE_COMMENT, by, when, None, None, text)
        return AuditRecord(audit_id, key, CASE_COMMENT, by, when, None, None, text)

    def comments(self, key: str) -> list[AuditRecord]:
        """A case's comments, oldest first.

        Raises:
            NotFoundError: no such case.
        """
        with self._read() as session:
            case = case_row(session, key)
            rows = session.scalars(
                select(AuditEvent).where(AuditEvent.case_id == case.id, AuditEvent.event == CASE_COMMENT).order_by(AuditEvent.at, AuditEvent.id)
            )
            return [to_audit_record(row, case.key) for row in rows]


__all__ = ["CASE_COMMENT", "STEP_REASSIGNED", "HandoverStore", "Reassignment"]
