"""Notifications: message templates, channels (SMTP, Apprise, console), the outbox and its delivery, deadlines.

The runtime (``flows/``) calls, per case:

* a ``notify`` step: :func:`notify_messages` -> ``Register.complete_step(...,
  messages=[m.draft() for m in msgs])`` and :func:`notify_result` as the step's result;
* a human step begins: :func:`waiting_messages` -> :func:`enqueue`;
* a case opens / closes: :func:`case_opened_messages` / :func:`case_closed_messages` -> :func:`enqueue`;
* a case is cancelled, a waiting step withdrawn: :func:`case_cancelled_messages` /
  :func:`step_withdrawn_messages` -> :func:`enqueue` (to the people it waited on);

and, on a schedule and right after steps that queued messages:

* :func:`deliver_pending` (sends, retries with backoff, never raises for a channel);
* :func:`escalate_overdue`, :func:`send_reminders` and :func:`time_out_overdue` (deadlines, once per breach);
* the weekly digest: :func:`digest_messages` -> :func:`enqueue` (once per week and recipient).

:class:`Messenger` is what a case's run uses for all of the above; :class:`Composer`
composes a definition's messages for a run and for the simulator alike.

Channels per person and per role are described in :mod:`.addressing` (a role's own
channels are told once for the role, in addition to its members), channel URLs,
``${VAR}`` and ``${prefect-secret:BLOCK}`` in :mod:`.channels`, template files and
their names in :mod:`.rendering`, the names templates see in :mod:`.outbox`.
This package imports ``aftercare.engine`` and Apprise, never ``aftercare.flows``, and
Prefect only inside :func:`.channels.read_prefect_secret`.
"""

from .addressing import Target, targets
from .channels import ChannelError, ChannelRouter, PermanentChannelError, SmtpSettings, expand, message_format
from .delivery import DeliveryReport, RetryPolicy, deliver_pending
from .escalation import (
    Definition,
    EscalationReport,
    ReminderReport,
    case_scope,
    escalate_overdue,
    next_reminder,
    send_reminders,
    time_out_overdue,
)
from .links import answer_command, run_url
from .messenger import Composer, Messenger
from .outbox import (
    BUILTIN_MESSAGES,
    OutboxMessage,
    case_cancelled_messages,
    case_closed_messages,
    case_escalation_messages,
    case_opened_messages,
    digest_messages,
    enqueue,
    escalation_messages,
    idempotency_key,
    notify_messages,
    notify_result,
    reminder_messages,
    step_withdrawn_messages,
    waiting_messages,
)
from .rendering import MessageTemplates, RenderedMessage, load_checked_library, template_sources

__all__ = [
    "BUILTIN_MESSAGES",
    "ChannelError",
    "ChannelRouter",
    "Composer",
    "Definition",
    "DeliveryReport",
    "EscalationReport",
    "MessageTemplates",
    "Messenger",
    "OutboxMessage",
    "PermanentChannelError",
    "ReminderReport",
    "RenderedMessage",
    "RetryPolicy",
    "SmtpSettings",
    "Target",
    "answer_command",
    "case_cancelled_messages",
    "case_closed_messages",
    "case_escalation_messages",
    "case_opened_messages",
    "case_scope",
    "deliver_pending",
    "digest_messages",
    "enqueue",
    "escalate_overdue",
    "escalation_messages",
    "expand",
    "load_checked_library",
    "idempotency_key",
    "message_format",
    "notify_messages",
    "notify_result",
    "reminder_messages",
    "run_url",
    "next_reminder",
    "send_reminders",
    "step_withdrawn_messages",
    "targets",
    "time_out_overdue",
    "template_sources",
    "waiting_messages",
]
