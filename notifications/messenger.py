"""A case's messages: composed from the definition's templates, queued in the outbox, delivered at once when a channel answers.

:class:`Composer` builds the messages of steps; a real run queues them (:class:`Messenger`),
a simulation only shows them (it is the simulator's ``MessageComposer``), so both compose
every message with the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aftercare.engine.answers import HumanPlan
from aftercare.engine.case import CaseState
from aftercare.engine.clock import utc_now
from aftercare.engine.loader import Library
from aftercare.engine.register import MessageDraft, Register
from aftercare.engine.spec import HumanStep, NotifyStep, ProcessSpec
from aftercare.engine.team import TeamSpec

from .delivery import deliver_pending
from .outbox import (
    OutboxMessage,
    case_closed_messages,
    case_opened_messages,
    enqueue,
    escalation_messages,
    notify_messages,
    notify_result,
    waiting_messages,
)
from .rendering import MessageTemplates


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
        return case.scope(utc_now())

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

    def waiting(self, case: CaseState, step: HumanStep, visit: int, plan: HumanPlan, links: dict[str, str]) -> None:
        """Tell the eligible people a step waits for them, with the link and the answer command."""
        messages = waiting_messages(self.library.team, self._scope(case), step, plan, visit=visit, templates=self.templates, links=links)
        enqueue(self.register, messages)
        self.deliver()

    def for_notify_step(
        self, case: CaseState, step: NotifyStep, visit: int, recipients: list[str], scope: dict[str, Any], links: dict[str, str]
    ) -> tuple[list[MessageDraft], dict[str, Any]]:
        """A notify step's drafts (written with its result) and the result itself."""
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
