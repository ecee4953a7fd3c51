"""The flow's messenger: outbox messages for steps and case events, delivered at once when a channel answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aftercare.engine.case import CaseState
from aftercare.engine.driver import HumanPlan
from aftercare.engine.loader import Library
from aftercare.engine.register import MessageDraft, Register
from aftercare.engine.spec import HumanStep, NotifyStep, ProcessSpec
from aftercare.notifications import (
    MessageTemplates,
    case_closed_messages,
    case_opened_messages,
    deliver_pending,
    enqueue,
    notify_messages,
    notify_result,
    waiting_messages,
)

from .clock import utc_now


@dataclass
class Messenger:
    """Builds a case's outbox messages with the notification templates; delivery never fails a case."""

    register: Register
    library: Library
    spec: ProcessSpec
    templates: MessageTemplates = field(init=False)
    unsent: bool = field(init=False, default=False)
    """Messages were enqueued since the last delivery."""

    def __post_init__(self) -> None:
        self.templates = MessageTemplates.for_library(self.library)

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
        messages = notify_messages(self.library.team, scope, step, recipients, visit=visit, templates=self.templates, links=links)
        return [message.draft() for message in messages], notify_result(messages, utc_now())

    def closed(self, case: CaseState, outcome: str, links: dict[str, str]) -> None:
        """Tell the requesters a case closed with its outcome."""
        if recipients := self.requesters(case):
            enqueue(
                self.register,
                case_closed_messages(self.library.team, self._scope(case), recipients, outcome=outcome, templates=self.templates, links=links),
            )
            self.unsent = True

    def deliver(self, case_key: str | None = None) -> None:
        """Send what is pending now; what fails is retried by the outbox flow."""
        deliver_pending(self.register, now=utc_now(), limit=50)
        self.unsent = False

    def deliver_unsent(self) -> None:
        """Deliver when this run enqueued messages it has not delivered yet."""
        if self.unsent:
            self.deliver()
