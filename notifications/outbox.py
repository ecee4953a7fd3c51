"""The outbox rows: what a notify step, a waiting human step, a reminder, a breach, a case's start and end send.

Each builder renders one message per (recipient, channel) and gives it an idempotency
key made of the case, the step, the visit, the kind of message and the recipient and
channel (:func:`idempotency_key`). The register stores a key once, so a replayed step,
two escalators racing or a crash between two writes never produce a second message.
The runtime writes notify-step messages with ``Register.complete_step(...,
messages=[m.draft() for m in ...])`` (one transaction with the step) and the others
with :func:`enqueue`; :func:`~aftercare.notifications.delivery.deliver_pending` sends them.

Every builder takes the case scope (``CaseState.scope(now)``: ``inputs``, ``case``,
``now``, ``steps`` and each step id; a run's and the register's scopes also give
``case.comments``, ``[{by, at, text}]`` of ``aftercare comment``) and adds the notification names
(``aftercare.engine.checks.NOTIFICATION_NAMES``):

``recipient``
    ``{id, name, email, locale, kind (person|role|channel), people}``
``step``
    the step: ``{id, type, title, visit}``; for human steps also ``description``,
    ``due_at``, ``started_at``, ``assignees`` (names), ``eligible`` (ids),
    ``escalate_to`` (names), ``form`` (``[{name, type, title, description, choices,
    required}]``), ``checklist`` (``[{id, label}]``), ``quorum``, ``reminder`` (its number) and
    ``overdue_by`` (text, once due passed)
    A cancel's ``step`` is the first step the recipient waited at, with ``titles`` (every
    one of them) and ``cancelled_by`` (a name); its ``case`` has ``status`` and
    ``outcome`` ``cancelled``.
``links``
    ``{run}``: the Prefect UI page of the case's flow run (of the step's form run), or None;
    in a waiting step's messages to a person also ``tasks``: the Prefect UI's runs view of
    that person's waiting work (``links.tasks_url``)
``answer_command``
    the ``aftercare answer CASE STEP --as PERSON ...`` line for this recipient
``answer_code``
    in a waiting message to a person the step names, when the team keeps answer codes on:
    that person's code for the Prefect UI's form (put in as the message is sent,
    :mod:`.answer_codes`); None otherwise
``message``
    an inline ``message:`` rendered (notify steps); why, for a cancel or a withdrawn step
``reason``
    ``waiting``, ``reminder``, ``overdue``, ``sla``, ``cancelled`` or ``withdrawn``
``subject``
    the subject, once rendered (bodies and layouts may show it)
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from markupsafe import escape

from aftercare.engine import expressions, results, router
from aftercare.engine.clock import utc_now
from aftercare.engine.answers import HumanPlan
from aftercare.engine.errors import StepError
from aftercare.engine.register import MessageDraft, MessageRecord, Register
from aftercare.engine.spec import ApprovalStep, ChecklistStep, HumanStepBase, NotifyStep
from aftercare.engine.team import TeamSpec

from . import answer_codes
from .addressing import Target, targets
from .channels import message_format
from .links import answer_command, tasks_url
from .rendering import MessageTemplates, RenderedMessage

log = logging.getLogger(__name__)

# Built-in message templates (notifications/templates/NAME.LOCALE.PART.j2).
MESSAGE = "message"
STEP_WAITING = "step-waiting"
STEP_REMINDER = "step-reminder"
STEP_ESCALATION = "step-escalation"
CASE_OPENED = "case-opened"
CASE_CLOSED = "case-closed"
CASE_ESCALATION = "case-escalation"
CASE_CANCELLED = "case-cancelled"
STEP_WITHDRAWN = "step-withdrawn"
STEP_REASSIGNED = "step-reassigned"
BUILTIN_MESSAGES = (
    MESSAGE, STEP_WAITING, STEP_REMINDER, STEP_ESCALATION, CASE_OPENED, CASE_CLOSED, CASE_ESCALATION, CASE_CANCELLED, STEP_WITHDRAWN,
    STEP_REASSIGNED,
)
WEEKLY_DIGEST = "weekly-digest"
"""The weekly digest (no case): :func:`digest_messages`."""

_MAX_KEY = 255


@dataclass(frozen=True)
class OutboxMessage:
    """One message for one recipient on one channel, ready for the outbox.

    ``body`` is what the channel shows: the plain text for mail, the console and
    webhooks, Markdown for chat; ``html`` is the mail's HTML alternative (mail only).
    """

    recipient: str
    channel: str
    subject: str
    body: str
    html: str | None
    idempotency_key: str
    kind: str = "notify"
    case_key: str | None = None
    step_id: str | None = None
    visit: int | None = None

    def draft(self) -> MessageDraft:
        """The register's form, for ``Register.complete_step(..., messages=...)``."""
        return MessageDraft(self.recipient, self.channel, self.subject, self.body, self.idempotency_key, self.html)


def idempotency_key(case_key: str | None, step_id: str | None, visit: int | None, kind: str, recipient: str, channel: str) -> str:
    """The outbox key of a message: case, step, visit, kind, recipient and channel (hashed, it may be long)."""
    digest = hashlib.sha256(channel.encode("utf-8")).hexdigest()[:16]
    key = f"{case_key or '-'}/{step_id or '-'}/{visit or 0}/{kind}/{recipient}/{digest}"
    if len(key) > _MAX_KEY:
        key = f"{key[:200]}~{hashlib.sha256(key.encode('utf-8')).hexdigest()[:48]}"
    return key


@lru_cache(maxsize=1)
def builtin_templates() -> MessageTemplates:
    """The built-in templates alone (what a runtime without definition templates uses)."""
    return MessageTemplates()


# --- building blocks -------------------------------------------------------------------------


def _case(scope: Mapping[str, Any]) -> Mapping[str, Any]:
    case = scope.get("case")
    return case if isinstance(case, Mapping) else {}


def _case_key(scope: Mapping[str, Any]) -> str:
    key = _case(scope).get("key")
    if not key:
        raise ValueError("the scope has no case.key; pass CaseState.scope(now)")
    return str(key)


def _now(scope: Mapping[str, Any]) -> datetime:
    now = scope.get("now")
    return now if isinstance(now, datetime) else utc_now()


def _recipient(target: Target) -> dict[str, Any]:
    kind = "person" if target.person else ("role" if target.recipient.startswith("role:") else "channel")
    return {
        "id": target.person or target.recipient,
        "name": target.name,
        "email": target.email,
        "locale": target.locale,
        "kind": kind,
        "people": list(target.people),
    }


def _links(scope: Mapping[str, Any], links: Mapping[str, Any] | None) -> dict[str, Any]:
    given = dict(links or {})
    given.setdefault("run", _case(scope).get("url"))
    return given


def _display(team: TeamSpec, reference: str) -> str:
    kind, sep, name = reference.partition(":")
    if sep and kind == "person":
        return team.display(name)
    if sep and kind == "role":
        return name
    return reference


def duration_text(delta: timedelta) -> str:
    """``2d 3h 5m``: a duration as messages and lists show it."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if hours:
        parts.append(f"{hours}h")
    if minutes or not parts:
        parts.append(f"{minutes}m")
    return " ".join(parts)


def human_step_view(team: TeamSpec, step: HumanStepBase, plan: HumanPlan, visit: int, now: datetime) -> dict[str, Any]:
    """What templates see as ``step`` for a human step."""
    view: dict[str, Any] = {
        "id": step.id,
        "type": getattr(step, "type", "human"),
        "visit": visit,
        "title": plan.title,
        "description": plan.description,
        "started_at": plan.started_at.isoformat(),
        "due_at": plan.due_at.isoformat() if plan.due_at else None,
        "due_shown": plan.due_shown,
        "assignees": [team.display(p) for p in plan.eligible],
        "eligible": list(plan.eligible),
        "escalate_to": [_display(team, r) for r in plan.escalate_to],
        "form": [
            {
                "name": name,
                "type": field.type,
                "title": field.title or name,
                "description": field.description,
                "choices": list(field.choices or ()),
                "required": not field.optional,
            }
            for name, field in step.form.items()
        ],
        "checklist": [{"id": i.id, "label": i.label} for i in step.items] if isinstance(step, ChecklistStep) else [],
        "quorum": step.quorum if isinstance(step, ApprovalStep) else 1,
        "approval": isinstance(step, ApprovalStep),
        "reminder": None,
        "overdue_by": duration_text(now - plan.due_at) if plan.due_at and now > plan.due_at else None,
    }
    return view


def _command_for(target: Target, case_key: str, step: HumanStepBase, eligible: Sequence[str]) -> str:
    if target.person and target.person in eligible:
        people: Sequence[str] = [target.person]
    else:
        people = [p for p in eligible if p in target.people] or list(eligible)
    return answer_command(case_key, step, people)


def _fallback(template: str, values: Mapping[str, Any], error: Exception) -> RenderedMessage:
    """A plain message when a built-in (or its override) fails: a system message is never lost to a template."""
    log.error("message template %r failed, sending a plain message instead: %s", template, error)
    case = values.get("case") or {}
    step = values.get("step") or {}
    subject = f"[{case.get('key', '')}] {step.get('title') or template}".strip()
    lines = [f"{case.get('key', '')} {case.get('title', '')}".strip(), f"{template}: {step.get('title') or ''}".strip()]
    if values.get("answer_command"):
        lines.append(str(values["answer_command"]))
    if (values.get("links") or {}).get("run"):
        lines.append(str(values["links"]["run"]))
    text = "\n".join(lines) + "\n"
    return RenderedMessage(subject=subject, text=text, html=f"<pre>{escape(text)}</pre>\n", markdown=text)


def _compose(
    team: TeamSpec,
    scope: Mapping[str, Any],
    references: Sequence[str],
    *,
    template: str,
    kind: str,
    step_id: str | None,
    visit: int | None,
    templates: MessageTemplates | None,
    extra: Mapping[str, Any],
    per_target: Callable[[Target], Mapping[str, Any]] | None = None,
    subject: str | None = None,
    strict: bool = False,
) -> list[OutboxMessage]:
    library = templates or builtin_templates()
    case_key = _case_key(scope)
    messages: list[OutboxMessage] = []
    for target in targets(team, references):
        values: dict[str, Any] = {**scope, **extra, "recipient": _recipient(target)}
        if subject is not None:
            values["subject"] = subject
        if per_target is not None:
            values.update(per_target(target))
        try:
            rendered = library.render(template, values, locale=target.locale, subject=subject)
        except StepError as error:
            if strict:
                raise
            rendered = _fallback(template, values, error)
        fmt = message_format(target.channel)
        body = rendered.markdown if fmt == "markdown" else rendered.text
        html = rendered.html if fmt == "email" else None
        messages.append(
            OutboxMessage(
                recipient=target.recipient[:500],  # the column's size; a long URL named directly is cut
                channel=target.channel,
                subject=rendered.subject,
                body=body,
                html=html,
                idempotency_key=idempotency_key(case_key, step_id, visit, kind, target.recipient, target.channel),
                kind=kind,
                case_key=case_key,
                step_id=step_id,
                visit=visit,
            )
        )
    return messages


# --- the builders ------------------------------------------------------------------------------


def notify_messages(
    team: TeamSpec,
    scope: Mapping[str, Any],
    step: NotifyStep,
    recipients: Sequence[str],
    *,
    visit: int,
    templates: MessageTemplates | None = None,
    links: Mapping[str, Any] | None = None,
) -> list[OutboxMessage]:
    """The messages of a ``notify`` step: its template, or its inline ``message`` in the shared layout.

    Args:
        team: the team file.
        scope: the case scope at the step (``CaseState.scope(now)``).
        step: the notify step.
        recipients: its ``to`` rendered (``router.resolve_recipients(step.to, team, scope)``).
        visit: the step's visit.
        templates: the definition's templates (built-ins only by default).
        links: ``{"run": URL}``; default ``case.url`` of the scope.

    Raises:
        StepError: a template fails, or a recipient is not in the team (as any step's template would).
    """
    extra: dict[str, Any] = {"step": {"id": step.id, "type": step.type, "title": step.title or step.id, "visit": visit}, "links": _links(scope, links), "reason": "notify"}
    subject = expressions.render(step.subject, dict(scope)) if step.subject else None
    if step.template is not None:
        template = step.template
    else:
        assert step.message is not None
        extra["message"] = expressions.render(step.message, dict(scope))
        template = MESSAGE
    return _compose(team, scope, recipients, template=template, kind="notify", step_id=step.id, visit=visit,
                    templates=templates, extra=extra, subject=subject, strict=True)


def _human(
    team: TeamSpec,
    scope: Mapping[str, Any],
    step: HumanStepBase,
    plan: HumanPlan,
    references: Sequence[str],
    *,
    visit: int,
    template: str,
    kind: str,
    reason: str,
    templates: MessageTemplates | None,
    links: Mapping[str, Any] | None,
    reminder: int | None = None,
    codes: bool = False,
) -> list[OutboxMessage]:
    case_key = _case_key(scope)
    view = human_step_view(team, step, plan, visit, _now(scope))
    view["reminder"] = reminder
    shared = _links(scope, links)
    extra = {"step": view, "links": shared, "reason": reason}

    def per_target(target: Target) -> dict[str, Any]:
        personal = codes and team.answer_codes and target.person is not None and target.person in plan.eligible
        own = {**shared, "tasks": tasks_url(target.person, base=shared.get("ui"))} if target.person else shared
        return {
            "answer_command": _command_for(target, case_key, step, plan.eligible),
            "answer_code": answer_codes.mark(target.person) if personal and target.person else None,
            "links": own,
        }

    return _compose(
        team, scope, references, template=template, kind=kind, step_id=step.id, visit=visit, templates=templates, extra=extra,
        per_target=per_target,
    )


def assignee_references(team: TeamSpec, scope: Mapping[str, Any], step: HumanStepBase) -> list[str]:
    """A human step's assignee rendered to references (roles stay roles, so their channels hear too)."""
    return router.resolve_recipients(step.assignees, team, scope)


def waiting_messages(
    team: TeamSpec,
    scope: Mapping[str, Any],
    step: HumanStepBase,
    plan: HumanPlan,
    *,
    visit: int,
    recipients: Sequence[str] | None = None,
    templates: MessageTemplates | None = None,
    links: Mapping[str, Any] | None = None,
    kind: str = "waiting",
) -> list[OutboxMessage]:
    """"A step is waiting for you": the case context and how to answer (Prefect UI link, personal answer code, CLI line).

    Args:
        team: the team file.
        scope: the case scope when the step began.
        step: the approval, form or checklist step.
        plan: the driver's ``HumanPlan`` (eligible people, title, description, due).
        visit: the step's visit.
        recipients: references to tell; default the step's assignee (roles keep their channels).
        templates: the definition's templates.
        links: ``{"run": URL}`` (``links.run_url(flow_run_id)``); default ``case.url``.
        kind: the outbox kind (its idempotency key): ``waiting``; ``reassigned-N`` for a step
            handed on to new people; another for a message sent again (a new answer code after
            too many wrong ones).
    """
    refs = list(recipients) if recipients is not None else _assignees_of(team, scope, step, plan)
    return _human(team, scope, step, plan, refs, visit=visit, template=STEP_WAITING, kind=kind, reason="waiting",
                  templates=templates, links=links, codes=True)


def reminder_messages(
    team: TeamSpec,
    scope: Mapping[str, Any],
    step: HumanStepBase,
    plan: HumanPlan,
    *,
    visit: int,
    reminder: int,
    recipients: Sequence[str] | None = None,
    templates: MessageTemplates | None = None,
    links: Mapping[str, Any] | None = None,
) -> list[OutboxMessage]:
    """The ``reminder``-th reminder (``remind_every``) that a step still waits for its assignees."""
    refs = list(recipients) if recipients is not None else _assignees_of(team, scope, step, plan)
    return _human(team, scope, step, plan, refs, visit=visit, template=STEP_REMINDER, kind=f"reminder-{reminder}",
                  reason="reminder", templates=templates, links=links, reminder=reminder)


def _assignees_of(team: TeamSpec, scope: Mapping[str, Any], step: HumanStepBase, plan: HumanPlan) -> list[str]:
    """Whom a human step addresses: its assignee's references, or, for a ``for_each`` step (whose
    assignee reads ``item``), the people its plan names."""
    if step.for_each is not None:
        return [f"person:{person}" for person in plan.eligible]
    return assignee_references(team, scope, step)


def escalation_messages(
    team: TeamSpec,
    scope: Mapping[str, Any],
    step: HumanStepBase,
    plan: HumanPlan,
    *,
    visit: int,
    recipients: Sequence[str] | None = None,
    templates: MessageTemplates | None = None,
    links: Mapping[str, Any] | None = None,
) -> list[OutboxMessage]:
    """A passed ``due``: an escalation to ``escalate_to`` and an overdue reminder to the assignees.

    Keys carry the deadline, so each breach is told once, and a new deadline
    (``Register.update_step(due_at=...)``) is a new breach.

    Args:
        recipients: the assignees to remind; default the step's assignee.
        (others as :func:`waiting_messages`; ``plan.escalate_to`` are the escalation's references)

    Raises:
        ValueError: the plan has no due time.
    """
    if plan.due_at is None:
        raise ValueError(f"step {step.id!r} has no due time to escalate")
    breach = plan.due_at.astimezone(timezone.utc).isoformat()
    assignees = list(recipients) if recipients is not None else _assignees_of(team, scope, step, plan)
    escalated = _human(team, scope, step, plan, list(plan.escalate_to), visit=visit, template=STEP_ESCALATION,
                       kind=f"escalation@{breach}", reason="overdue", templates=templates, links=links)
    reminded = _human(team, scope, step, plan, assignees, visit=visit, template=STEP_REMINDER, kind=f"overdue@{breach}",
                      reason="overdue", templates=templates, links=links)
    return escalated + reminded


def case_opened_messages(
    team: TeamSpec,
    scope: Mapping[str, Any],
    recipients: Sequence[str],
    *,
    templates: MessageTemplates | None = None,
    links: Mapping[str, Any] | None = None,
) -> list[OutboxMessage]:
    """"Case opened": its title, process and inputs, to the given references."""
    extra = {"step": {}, "links": _links(scope, links), "reason": "opened"}
    return _compose(team, scope, recipients, template=CASE_OPENED, kind="case-opened", step_id=None, visit=None,
                    templates=templates, extra=extra)


def case_closed_messages(
    team: TeamSpec,
    scope: Mapping[str, Any],
    recipients: Sequence[str],
    *,
    outcome: str | None = None,
    templates: MessageTemplates | None = None,
    links: Mapping[str, Any] | None = None,
) -> list[OutboxMessage]:
    """"Case closed" with its outcome (``outcome`` overrides ``case.outcome`` of the scope)."""
    values = dict(scope)
    if outcome is not None:
        values["case"] = {**_case(scope), "outcome": outcome, "status": "closed"}
    extra = {"step": {}, "links": _links(values, links), "reason": "closed"}
    return _compose(team, values, recipients, template=CASE_CLOSED, kind="case-closed", step_id=None, visit=None,
                    templates=templates, extra=extra)


def case_escalation_messages(
    team: TeamSpec,
    scope: Mapping[str, Any],
    recipients: Sequence[str],
    *,
    due_at: datetime,
    templates: MessageTemplates | None = None,
    links: Mapping[str, Any] | None = None,
) -> list[OutboxMessage]:
    """A case passed its ``sla.due``: once per deadline, to ``sla.escalate_to``."""
    breach = due_at.astimezone(timezone.utc).isoformat()
    now = _now(scope)
    extra = {
        "step": {"id": _case(scope).get("current_step"), "overdue_by": duration_text(now - due_at) if now > due_at else None},
        "links": _links(scope, links),
        "reason": "sla",
    }
    return _compose(team, scope, recipients, template=CASE_ESCALATION, kind=f"case-escalation@{breach}", step_id=None,
                    visit=None, templates=templates, extra=extra)


def case_cancelled_messages(
    team: TeamSpec,
    scope: Mapping[str, Any],
    waited: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    by: str,
    reason: str,
    templates: MessageTemplates | None = None,
    links: Mapping[str, Any] | None = None,
) -> list[OutboxMessage]:
    """"Case cancelled": one message per person the case waited on, whatever the number of steps.

    Keyed per case and person (kind ``cancelled``), so a person is told once however
    often a cancel is noticed (the command, the run's hook, the housekeeping run).

    Args:
        team: the team file.
        scope: the case scope.
        waited: person id -> the steps withdrawn that waited for them (``{id, title, visit}``),
            in order; people no longer in the team are left out.
        by: who cancelled (a person id, shown by name, or another actor such as ``prefect-ui``).
        reason: why, shown as ``message``.
        templates: the definition's templates.
        links: ``{"run": URL}``; default ``case.url``.
    """
    known = {person: steps for person, steps in waited.items() if person in team.people and steps}
    values = dict(scope)
    values["case"] = {**_case(scope), "status": "cancelled", "outcome": "cancelled"}
    cancelled_by = team.display(by) if by in team.people else by
    extra = {"step": {"cancelled_by": cancelled_by}, "links": _links(values, links), "reason": "cancelled", "message": reason}

    def per_target(target: Target) -> dict[str, Any]:
        steps = [dict(step) for step in known.get(target.person or "", ())]
        first = steps[0] if steps else {}
        return {"step": {**first, "cancelled_by": cancelled_by, "steps": steps, "titles": [step.get("title") for step in steps]}}

    return _compose(team, values, [f"person:{person}" for person in known], template=CASE_CANCELLED, kind="cancelled",
                    step_id=None, visit=None, templates=templates, extra=extra, per_target=per_target)


def digest_messages(
    team: TeamSpec,
    references: Sequence[str],
    digest: Mapping[str, Any],
    *,
    period: str,
    now: datetime,
    templates: MessageTemplates | None = None,
) -> list[OutboxMessage]:
    """The weekly digest for everyone the references reach, keyed per period and recipient (a rerun adds nothing).

    Args:
        team: the team file.
        references: ``role:NAME`` / ``person:ID`` (the team's ``digest.to``).
        digest: what ``weekly-digest`` shows: ``period``, ``since``, ``until``, ``summary`` (lines),
            ``processes`` (rows), ``attention`` (cases), ``link`` (the figures in the Prefect UI).
        period: what makes the key: one digest per period (the week's first day) and recipient.
        now: when it is made.
        templates: the folder's templates (a team may override ``weekly-digest``).
    """
    library = templates or builtin_templates()
    messages: list[OutboxMessage] = []
    for target in targets(team, references):
        values: dict[str, Any] = {"case": {}, "now": now, "digest": dict(digest), "links": {}, "reason": "digest", "recipient": _recipient(target)}
        try:
            rendered = library.render(WEEKLY_DIGEST, values, locale=target.locale)
        except StepError as error:
            lines = "\n".join(str(line) for line in digest.get("summary", ()))
            log.error("message template %r failed, sending the summary as plain text: %s", WEEKLY_DIGEST, error)
            rendered = RenderedMessage(f"Aftercare {digest.get('period', period)}", lines + "\n", f"<pre>{escape(lines)}</pre>\n", lines + "\n")
        fmt = message_format(target.channel)
        messages.append(
            OutboxMessage(
                recipient=target.recipient[:500],
                channel=target.channel,
                subject=rendered.subject,
                body=rendered.markdown if fmt == "markdown" else rendered.text,
                html=rendered.html if fmt == "email" else None,
                idempotency_key=idempotency_key(None, None, None, f"digest-{period}", target.recipient, target.channel),
                kind="digest",
            )
        )
    return messages


def step_withdrawn_messages(
    team: TeamSpec,
    scope: Mapping[str, Any],
    step: Mapping[str, Any],
    people: Sequence[str],
    *,
    reason: str,
    templates: MessageTemplates | None = None,
    links: Mapping[str, Any] | None = None,
) -> list[OutboxMessage]:
    """"No longer needed": a step visit that waited for these people was withdrawn (a join fired, an ``end`` elsewhere).

    Keyed per case, step, visit and person (kind ``withdrawn``): told once.

    Args:
        step: ``{id, title, visit}`` of the withdrawn visit.
        people: the person ids it waited for (its ``eligible``); people no longer in the team are left out.
        reason: why, shown as ``message``.
        (others as :func:`case_cancelled_messages`)
    """
    view = {"type": "withdrawn", **dict(step)}
    return _step_notice(team, scope, view, people, template=STEP_WITHDRAWN, kind="withdrawn", reason=reason, templates=templates, links=links)


def _step_notice(
    team: TeamSpec, scope: Mapping[str, Any], view: Mapping[str, Any], people: Sequence[str], *,
    template: str, kind: str, reason: str, templates: MessageTemplates | None, links: Mapping[str, Any] | None,
) -> list[OutboxMessage]:
    """A step visit no longer waits for these people (withdrawn, handed on): one message each, ``reason`` as ``message``."""
    extra = {"step": dict(view), "links": _links(scope, links), "reason": view["type"], "message": reason}
    recipients = [f"person:{person}" for person in dict.fromkeys(people) if person in team.people]
    return _compose(team, scope, recipients, template=template, kind=kind, step_id=str(view["id"]),
                    visit=int(view["visit"]), templates=templates, extra=extra)


def step_reassigned_messages(
    team: TeamSpec,
    scope: Mapping[str, Any],
    step: Mapping[str, Any],
    people: Sequence[str],
    *,
    by: str,
    to: Sequence[str],
    reason: str,
    kind: str,
    templates: MessageTemplates | None = None,
    links: Mapping[str, Any] | None = None,
) -> list[OutboxMessage]:
    """"Handed on": a step visit that waited for these people now waits for others (``aftercare reassign``).

    Args:
        step: ``{id, title, visit}`` of the visit; templates also see ``reassigned_by`` and
            ``reassigned_to`` (names) in it.
        people: the person ids who no longer answer it.
        by: who handed it on.
        to: who answers it now.
        reason: why (may be empty), shown as ``message``.
        kind: the key's kind (``handed-on-N``, one per reassignment).
        (others as :func:`step_withdrawn_messages`)
    """
    view = {"type": "reassigned", **dict(step), "reassigned_by": team.display(by), "reassigned_to": [team.display(p) for p in to]}
    return _step_notice(team, scope, view, people, template=STEP_REASSIGNED, kind=kind, reason=reason, templates=templates, links=links)


# --- writing them --------------------------------------------------------------------------------


def enqueue(register: Register, messages: Sequence[OutboxMessage], *, at: datetime | None = None) -> list[MessageRecord]:
    """Put messages in the outbox (each key once: a repeat returns the stored row and adds nothing).

    Use it for messages that belong to no step completion (waiting, reminders,
    escalations, case opened/closed); a notify step's messages go with its result
    through ``Register.complete_step(messages=[m.draft() for m in messages])``.
    """
    return [
        register.enqueue(
            case_key=m.case_key,
            step_id=m.step_id,
            visit=m.visit,
            recipient=m.recipient,
            channel=m.channel,
            subject=m.subject,
            body=m.body,
            html=m.html,
            idempotency_key=m.idempotency_key,
            at=at,
        )
        for m in messages
    ]


def notify_result(messages: Sequence[OutboxMessage], sent_at: datetime) -> dict[str, Any]:
    """A notify step's result (what later expressions see), built by the engine's one builder."""
    return results.notify_result((m.recipient for m in messages), messages[0].subject if messages else "", sent_at, len(messages))
