"""Plain, frozen records the register hands out; callers never see sessions or ORM rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

STEP_ACTIVE = "active"
STEP_WAITING = "waiting"
STEP_DONE = "done"
STEP_FAILED = "failed"
STEP_WITHDRAWN = "withdrawn"
"""A step run ended without an answer because the case no longer needs it (a cancel, a
join that fired, an ``end`` in another branch); its result is ``{"withdrawn": true}``."""
OPEN_STEP_STATUSES = (STEP_ACTIVE, STEP_WAITING)
"""A step run in one of these is still running; any other status is final."""
WITHDRAWN_RESULT = {"withdrawn": True}
"""The result a withdrawn step keeps (expressions test ``steps['x'].withdrawn``)."""

WAIT_PERSON = "person"
"""``StepRunRecord.wait_kind`` of a human step: it waits for people to answer."""
WAIT_TIMER = "timer"
"""``StepRunRecord.wait_kind`` of a ``wait`` step: it waits for its timer."""
WAIT_KINDS = (WAIT_PERSON, WAIT_TIMER)

CASE_OPEN = "open"
CASE_CLOSED = "closed"
CASE_QUEUED = "queued"
"""A linked case opened by a ``start`` step, waiting for its flow run."""
CASE_FAILED = "failed"
"""A case whose run failed and will not go on (``Register.fail_case``)."""
CASE_CANCELLED = "cancelled"
"""A case somebody cancelled (``Register.cancel_case``): its status and its outcome."""

MESSAGE_PENDING = "pending"
MESSAGE_SENDING = "sending"
MESSAGE_DELIVERED = "delivered"
MESSAGE_FAILED = "failed"


@dataclass(frozen=True)
class CaseRecord:
    """One case: a run of a process."""

    id: int
    key: str
    process: str
    version: int
    definition_hash: str
    title: str
    status: str
    outcome: str | None
    inputs: dict[str, Any]
    fields: dict[str, Any]
    current_step: str | None
    opened_at: datetime
    closed_at: datetime | None
    due_at: datetime | None
    escalated_at: datetime | None
    parent_key: str | None
    started_by_step: str | None
    flow_run_id: str | None
    idempotency_key: str | None

    @property
    def is_open(self) -> bool:
        """True until the case is closed."""
        return self.closed_at is None


@dataclass(frozen=True)
class StepRunRecord:
    """One visit of a case to a step.

    Attributes:
        eligible: the ids of the people who may answer a human step (``li.na``), in
            the order the step named them; empty for automatic steps.
        wait_kind: what the step waits for while open: :data:`WAIT_PERSON`,
            :data:`WAIT_TIMER`, or ``None`` (an automatic step).
        timed_out_at: when the step's due passed for a step that leaves by
            ``on_timeout`` (see :meth:`Register.mark_timed_out`); ``None`` until then.
        pause_attempt: how many waits for input the flow run has used up on this
            visit (each answer taken or refused consumes one).
    """

    id: int
    case_key: str
    step_id: str
    visit: int
    status: str
    result: dict[str, Any] | None
    started_at: datetime
    finished_at: datetime | None
    due_at: datetime | None
    escalated_at: datetime | None
    eligible: tuple[str, ...] = ()
    wait_kind: str | None = None
    timed_out_at: datetime | None = None
    pause_attempt: int = 0

    @property
    def is_open(self) -> bool:
        """True while the step is active or waiting (not yet done or decided)."""
        return self.status in OPEN_STEP_STATUSES


@dataclass(frozen=True)
class CancelOutcome:
    """What :meth:`Register.cancel_case` did, in its one transaction.

    Attributes:
        case: the case, now closed with status and outcome ``cancelled``.
        withdrawn: its step runs that were open and are withdrawn now, in the order they started.
        children: the linked cases it waited for (opened by a step withdrawn now), each
            cancelled in the same transaction, with what that did (recursively).
    """

    case: CaseRecord
    withdrawn: tuple[StepRunRecord, ...]
    children: tuple[CancelOutcome, ...] = ()

    def every(self) -> tuple[CancelOutcome, ...]:
        """This outcome and every child's, parents before their children."""
        return (self, *(outcome for child in self.children for outcome in child.every()))


@dataclass(frozen=True)
class AnswerRecord:
    """A person's answer to a human step."""

    id: int
    case_key: str
    step_id: str
    visit: int
    person: str
    decision: str
    comment: str | None
    fields: dict[str, Any]
    answered_at: datetime
    operator: str | None = None
    """The operating-system user, when the answer was given at the operator's shell."""


@dataclass(frozen=True)
class CodeCheck:
    """What :meth:`Register.check_answer_code` found.

    Attributes:
        accepted: the code is a live one of this person for this step visit.
        operator: the operating-system user of an operator's token (None for a person's own code).
        reason: why a code was refused (empty when accepted).
        failures: the wrong codes tried against the person's current code.
        replaced: this refusal was one too many: the person's code is void and a new one must be sent.
    """

    accepted: bool
    operator: str | None = None
    reason: str = ""
    failures: int = 0
    replaced: bool = False


@dataclass(frozen=True)
class AnswerOutcome:
    """What :meth:`Register.answer` did.

    Attributes:
        answer: the answer just recorded.
        answers: every answer of the step visit so far, oldest first.
        decision: the step's decision, or ``None`` while it waits for more answers.
        step: the step run after the answer (done when decided).
    """

    answer: AnswerRecord
    answers: tuple[AnswerRecord, ...]
    decision: str | None
    step: StepRunRecord

    @property
    def decided(self) -> bool:
        """True when this answer decided the step."""
        return self.decision is not None


@dataclass(frozen=True)
class MessageDraft:
    """A message to put in the outbox together with a step's completion."""

    recipient: str
    channel: str
    subject: str
    body: str
    idempotency_key: str
    html: str | None = None


@dataclass(frozen=True)
class MessageRecord:
    """A message in the outbox, with its delivery state."""

    id: int
    case_key: str | None
    step_id: str | None
    visit: int | None
    recipient: str
    channel: str
    subject: str
    body: str
    html: str | None
    idempotency_key: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    claimed_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None


@dataclass(frozen=True)
class AuditRecord:
    """An audit event: who did what, with the state before and after."""

    id: int
    case_key: str | None
    event: str
    actor: str
    at: datetime
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    detail: str | None


@dataclass(frozen=True)
class TimelineEntry:
    """One line of a case's history."""

    at: datetime
    kind: str
    summary: str
    step_id: str | None = None
    visit: int | None = None


@dataclass(frozen=True)
class Timeline:
    """A case with everything that happened to it (``aftercare show CASE``).

    Attributes:
        case: the case.
        steps: its step runs, in the order they started.
        answers: people's answers, in the order given.
        messages: its outbox messages, in the order queued.
        events: its audit events, in time order.
        children: cases its ``start`` steps opened.
        entries: all of the above merged into one list in time order.
    """

    case: CaseRecord
    steps: tuple[StepRunRecord, ...]
    answers: tuple[AnswerRecord, ...]
    messages: tuple[MessageRecord, ...]
    events: tuple[AuditRecord, ...]
    children: tuple[CaseRecord, ...] = ()
    entries: tuple[TimelineEntry, ...] = field(default=())


@dataclass(frozen=True)
class StatusCount:
    """Open cases of one process in one status."""

    process: str
    status: str
    count: int


@dataclass(frozen=True)
class CycleTime:
    """Average time from opening to closing of one process's closed cases."""

    process: str
    closed: int
    average: timedelta
