"""A case's messages: composed from the definition's templates, queued in the outbox, delivered at once when a channel answers.

:class:`Composer` builds the messages of steps; a real run queues them (:class:`Messenger`),
a simulation only shows them (it is the simulator's ``MessageComposer``), so both compose
every message with the same code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aftercare.engine import expressions
from aftercare.engine.answers import HumanPlan
from aftercare.engine.case import CaseState
from aftercare.engine.clock import utc_now
from aftercare.engine.errors import AftercareError
from aftercare.engine.loader import Library
from aftercare.engine.register import CaseRecord, MessageDraft, MessageRecord, Register, StepRunRecord
from aftercare.engine.spec import HumanStep, NotifyStep, ProcessSpec
from aftercare.engine.team import TeamSpec

from .delivery import deliver_pending
from .escalation import case_comments, case_scope
from .outbox import (
    OutboxMessage,
    case_cancelled_messages,
    case_closed_messages,
    case_opened_messages,
    enqueue,
    escalation_messages,
    notify_messages,
    notify_result,
    step_withdrawn_messages,
    waiting_messages,
)
from .rendering import MessageTemplates

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Composer:
    """Composes the messages of a folder's definitions with its team and templates."""

    team: TeamSpec
    templates: MessageTemplates

    @classmethod
    def for_library(cls, library: Library) -> Composer:
        """The composer of a loaded folder (its ``templates/`` before the built-ins)."""
        return cls(library.team, MessageTemplates.for_library(library))

    def notify(
        self, scope: dict[str, Any], step: NotifyStep, recipients: Sequence[str], visit: int, links: Mapping[str, Any] | None = None
    ) -> list[OutboxMessage]:
        """A notify step's messages, one per recipient and channel."""
        return notify_messages(self.team, scope, step, recipients, visit=visit, templates=self.templates, links=links)

    def escalation(self, scope: dict[str, Any], step: HumanStep, plan: HumanPlan, visit: int) -> list[OutboxMessage]:
        """A passed due: the escalation to ``escalate_to`` and the overdue reminder to the assignees."""
        return escalation_messages(self.team, scope, step, plan, visit=visit, templates=self.templates)


@dataclass
class Messenger:
    """Queues a case's outbox messages and delivers them; delivery never fails a case."""

    register: Register
    library: Library
    spec: ProcessSpec
    on_retry: Callable[[datetime], object] | None = None
    """Told when the earliest message waiting out a backoff is due (the flow sets a timer for it)."""
    composer: Composer = field(init=False)
    unsent: bool = field(init=False, default=False)
    """Messages were enqueued since the last delivery."""

    def __post_init__(self) -> None:
        self.composer = Composer.for_library(self.library)

    @property
    def templates(self) -> MessageTemplates:
        """The definition folder's templates and the built-ins."""
        return self.composer.templates

    def _scope(self, case: CaseState) -> dict[str, Any]:
        scope = case.scope(utc_now())
        scope["case"]["comments"] = case_comments(self.register, case.key)
        return scope

    def requesters(self, case: CaseState) -> list[str]:
        """Who hears that a case opened or closed: the people its person-typed inputs name."""
        return [
            f"person:{case.inputs[name]}"
            for name, spec in self.spec.inputs.items()
            if spec.type == "person" and case.inputs.get(name)
        ]

    def opened(self, case: CaseState, links: dict[str, str]) -> None:
        """Tell the requesters a case opened (once: the key repeats on a replay)."""
        if recipients := self.requesters(case):
            enqueue(self.register, case_opened_messages(self.library.team, self._scope(case), recipients, templates=self.templates, links=links))
            self.unsent = True

    def waiting(
        self, case: CaseState, step: HumanStep, visit: int, plan: HumanPlan, links: Mapping[str, str],
        *, recipients: Sequence[str] | None = None, kind: str = "waiting",
    ) -> None:
        """Tell the eligible people (or ``recipients``) a step waits for them: the link, their answer code, the answer command.

        ``kind`` keys the messages: another kind sends them again (a new code after too many wrong ones).
        """
        messages = waiting_messages(
            self.library.team, self._scope(case), step, plan, visit=visit, templates=self.templates, links=links, recipients=recipients, kind=kind
        )
        enqueue(self.register, messages)
        self.deliver()

    def resender(self, case: CaseState, step: HumanStep, visit: int, plan: HumanPlan, links: Mapping[str, str]) -> Callable[[str, str], None]:
        """``resend(person, kind)``: the waiting message again to one person under a new kind (a human step's form uses it for a new code)."""

        def resend(person: str, kind: str) -> None:
            self.waiting(case, step, visit, plan, links, recipients=[f"person:{person}"], kind=kind)

        return resend

    def for_notify_step(
        self, case: CaseState, step: NotifyStep, visit: int, recipients: list[str], scope: dict[str, Any], links: dict[str, str]
    ) -> tuple[list[MessageDraft], dict[str, Any]]:
        """A notify step's drafts (written with its result) and the result itself."""
        scope = {**scope, "case": {**scope["case"], "comments": case_comments(self.register, case.key)}}
        messages = self.composer.notify(scope, step, recipients, visit, links)
        return [message.draft() for message in messages], notify_result(messages, utc_now())

    def closed(self, case: CaseState, outcome: str, links: dict[str, str]) -> None:
        """Tell the requesters a case closed with its outcome."""
        if recipients := self.requesters(case):
            enqueue(
                self.register,
                case_closed_messages(self.library.team, self._scope(case), recipients, outcome=outcome, templates=self.templates, links=links),
            )
            self.unsent = True

    def cancelled(
        self,
        case: CaseState | CaseRecord,
        withdrawn: Sequence[StepRunRecord],
        by: str,
        reason: str,
        links: Mapping[str, str] | None = None,
        *,
        deliver: bool = True,
    ) -> list[MessageRecord]:
        """Tell the people a cancelled case waited on that it was cancelled, by whom and why.

        One message per person of the withdrawn steps' ``eligible`` (however many of the
        steps named them), keyed per case and person: told once, whoever notices the
        cancel (``aftercare cancel``, the run's hook, the housekeeping run).

        Args:
            case: the case (its state in a run, or its register record).
            withdrawn: its step runs the cancel withdrew (``CancelOutcome.withdrawn``).
            by: who cancelled (a person id, or ``prefect-ui``).
            reason: why.
            links: ``{"run": URL}`` of the case's run.
            deliver: send at once; False leaves them to :meth:`deliver_unsent`.

        Returns:
            The outbox rows (the stored ones on a repeat).
        """
        scope = self._any_scope(case)
        waited: dict[str, list[dict[str, Any]]] = {}
        for run in withdrawn:
            view = self._step_view(scope, run)
            for person in run.eligible:
                waited.setdefault(person, []).append(view)
        messages = case_cancelled_messages(self.library.team, scope, waited, by=by, reason=reason, templates=self.templates, links=links)
        return self._send(messages, deliver)

    def withdrawn(
        self,
        case: CaseState | CaseRecord,
        step_id: str,
        visit: int,
        eligible: Sequence[str],
        reason: str,
        links: Mapping[str, str] | None = None,
        *,
        deliver: bool = True,
    ) -> list[MessageRecord]:
        """Tell the people a withdrawn step visit waited for that it no longer needs them (a join fired, an ``end`` elsewhere).

        One message per person of ``eligible``, keyed per case, step, visit and person: told once.

        Args:
            case: the case.
            step_id: the withdrawn step.
            visit: its visit.
            eligible: who it waited for (``StepRunRecord.eligible``).
            reason: why, in a sentence (``the join 'reviewed' fired``).
            links: ``{"run": URL}`` of the case's run.
            deliver: send at once; False leaves them to :meth:`deliver_unsent`.
        """
        scope = self._any_scope(case)
        view = self._step_view(scope, step_id, visit)
        messages = step_withdrawn_messages(self.library.team, scope, view, eligible, reason=reason, templates=self.templates, links=links)
        return self._send(messages, deliver)

    def _send(self, messages: Sequence[OutboxMessage], deliver: bool) -> list[MessageRecord]:
        if not messages:
            return []
        stored = enqueue(self.register, messages)
        self.unsent = True
        if deliver:
            self.deliver()
        return stored

    def _any_scope(self, case: CaseState | CaseRecord) -> dict[str, Any]:
        if isinstance(case, CaseState):
            return self._scope(case)
        return case_scope(self.register, case, utc_now())

    def _step_view(self, scope: Mapping[str, Any], run: StepRunRecord | str, visit: int = 1) -> dict[str, Any]:
        """``{id, title, visit}`` of a step visit, its title rendered (its id when the definition lost it or it fails)."""
        step_id, visit = (run.step_id, run.visit) if isinstance(run, StepRunRecord) else (run, visit)
        title = step_id
        if step_id in self.spec.step_ids:
            template = self.spec.step(step_id).title
            try:
                title = expressions.render(template, dict(scope)) if template else step_id
            except AftercareError as error:
                log.warning("the title of step %r did not render for a message: %s", step_id, error)
        return {"id": step_id, "title": title or step_id, "visit": visit}

    def deliver(self) -> None:
        """Send what is pending now; what fails is retried at its backoff (``on_retry`` hears when)."""
        now = utc_now()
        report = deliver_pending(self.register, now=now, limit=50)
        self.unsent = False
        if report.retrying and self.on_retry is not None:
            next_at = self.register.next_message_at(now)
            if next_at is not None:
                self.on_retry(next_at)

    def deliver_unsent(self) -> None:
        """Deliver when this run enqueued messages it has not delivered yet."""
        if self.unsent:
            self.deliver()
