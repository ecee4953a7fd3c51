"""The Register: the runtime's replay-safe API over cases, steps, answers, outbox and audit."""

from __future__ import annotations

from .answers import AnswerStore
from .cancelling import CancelStore
from .cases import CaseStore
from .codes import CodeStore
from .dashboard import Dashboard
from .definitions import DefinitionStore
from .handover import HandoverStore
from .history import History
from .metrics import Metrics
from .outbox import Outbox
from .steps import StepStore


class Register(CaseStore, StepStore, AnswerStore, CodeStore, CancelStore, Outbox, History, Dashboard, Metrics, DefinitionStore, HandoverStore):
    """Every case, step, answer, message and audit event, on SQLite or PostgreSQL.

    Each method runs in its own transaction and returns frozen records, never ORM
    rows. Writes the runtime repeats on a replay are idempotent: opening a case
    with the same idempotency key or flow run, beginning or completing the same
    step visit, enqueueing the same message key, closing a closed case,
    withdrawing a finished step, all return what the first call stored (or
    ``None``) and write nothing; cancelling a closed case is refused.

    A step run's facts are typed columns, never strings to split or audit rows to
    scan: ``eligible`` (the person ids who may answer), ``wait_kind`` (people or a
    timer), ``timed_out_at`` (the ``on_timeout`` mark, set once by
    ``mark_timed_out``) and ``pause_attempt`` (the waits for input the flow run has
    used, raised with each answer taken or refused). ``open_steps(person=...)``
    and ``cases(person=...)`` test ``eligible`` in SQL.

    One Register may be shared by every thread of a process: each call opens its
    own session, and engines are cached per URL. The schema is migrated on first
    use (once per process and URL). Its parts:

    - cases (:class:`CaseStore`): ``open_case``, ``case``, ``case_for_run``,
      ``cases``, ``update_case``, ``close_case``, ``fail_case``, ``overdue_cases``,
      ``mark_case_escalated``, ``open_case_runs``, ``cancelled_case_runs``;
    - steps (:class:`StepStore`): ``begin_step``, ``update_step``,
      ``complete_step``, ``withdraw_step``, ``step_run``, ``step_runs``, ``open_steps``,
      ``overdue_steps``, ``mark_escalated``, ``mark_timed_out``;
    - cancelling (:class:`CancelStore`): ``cancel_case`` (its waiting steps withdrawn,
      the linked cases it waits for cancelled too, in one transaction);
    - answers (:class:`AnswerStore`): ``answer``, ``refuse_answer``, ``answers``;
    - answer codes (:class:`CodeStore`): ``issue_answer_code``, ``issue_operator_token``,
      ``check_answer_code`` (only salted hashes are stored);
    - outbox (:class:`Outbox`): ``enqueue``, ``due_messages``, ``claim_message``,
      ``mark_delivered``, ``mark_attempt_failed``, ``messages``, ``retry_now``;
    - history (:class:`History`): ``audit``, ``audit_events``, ``timeline``;
    - dashboard (:class:`Dashboard`): ``open_cases_by_status_and_process``,
      ``cycle_time_by_process`` (and ``overdue_steps``);
    - metrics (:class:`Metrics`): the report's figures over a :class:`MetricWindow`
      (``case_counts``, ``cycle_times``, ``step_figures``, ``approval_turnaround``, ...);
    - definitions (:class:`DefinitionStore`): ``save_definition``,
      ``definition_text``, ``attach_run``;
    - handing on (:class:`HandoverStore`): ``reassign_step`` (who may answer a waiting
      step, audited ``step.reassigned``), ``add_comment`` and ``comments`` (``case.comment``).

    Args:
        url: a SQLAlchemy URL (``sqlite:///path``, ``postgresql+psycopg://...``);
            ``None`` means ``AFTERCARE_DATABASE_URL`` or a SQLite file in the
            user's data directory.
        migrate: run migrations on first use; pass False to require an explicit
            :meth:`migrate` (``aftercare db upgrade``).
    """
