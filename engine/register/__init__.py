"""The register: every case, step, answer, message and audit event, kept in SQL."""

from .database import default_url, dispose, engine_for
from .migrate import current_revision, head_revision, upgrade
from .records import (
    CASE_CLOSED,
    CASE_OPEN,
    MESSAGE_DELIVERED,
    MESSAGE_FAILED,
    MESSAGE_PENDING,
    MESSAGE_SENDING,
    OPEN_STEP_STATUSES,
    STEP_ACTIVE,
    STEP_DONE,
    STEP_WAITING,
    WAIT_PERSON,
    WAIT_TIMER,
    AnswerOutcome,
    AnswerRecord,
    AuditRecord,
    CaseRecord,
    CycleTime,
    MessageDraft,
    MessageRecord,
    StatusCount,
    StepRunRecord,
    Timeline,
    TimelineEntry,
)
from .answers import Decide
from .repository import Register
from .store import UNSET
from .timeline import render_timeline

__all__ = [
    "CASE_CLOSED",
    "CASE_OPEN",
    "MESSAGE_DELIVERED",
    "MESSAGE_FAILED",
    "MESSAGE_PENDING",
    "MESSAGE_SENDING",
    "OPEN_STEP_STATUSES",
    "STEP_ACTIVE",
    "STEP_DONE",
    "STEP_WAITING",
    "UNSET",
    "WAIT_PERSON",
    "WAIT_TIMER",
    "AnswerOutcome",
    "AnswerRecord",
    "AuditRecord",
    "CaseRecord",
    "CycleTime",
    "Decide",
    "MessageDraft",
    "MessageRecord",
    "Register",
    "StatusCount",
    "StepRunRecord",
    "Timeline",
    "TimelineEntry",
    "current_revision",
    "default_url",
    "dispose",
    "engine_for",
    "head_revision",
    "render_timeline",
    "upgrade",
]
