"""``aftercare outbox [retry]``: the messages not yet delivered, and retrying them now."""

from __future__ import annotations

from aftercare.engine.register import MessageRecord, Register
from aftercare.notifications import deliver_pending

from .clock import utc_now

SHOWN = ("pending", "sending", "failed")


def _line(message: MessageRecord) -> str:
    error = f"  last error: {message.last_error}" if message.last_error else ""
    return (
        f"{message.id:>6} {message.status:<9} {message.case_key or '-':<10} {message.step_id or '-':<16} "
        f"{message.recipient:<22} {message.channel:<34} attempts {message.attempts}, next {message.next_attempt_at:%Y-%m-%d %H:%M}Z"
        f"  {message.subject}{error}"
    )


def outbox_command(*, retry: bool, show_all: bool) -> int:
    """List pending and failed messages; with ``retry``, make failed ones pending and deliver all that are due."""
    register = Register()
    if retry:
        reset = register.reset_failed(utc_now())
        report = deliver_pending(register, now=utc_now(), limit=1000)
        print(f"{reset} failed message(s) made pending again; {report}")
    statuses = (None,) if show_all else SHOWN
    messages = [m for status in statuses for m in register.messages(status)]
    messages.sort(key=lambda m: m.id)
    for message in messages:
        print(_line(message))
    if not messages:
        print("the outbox is empty" if show_all else "nothing pending or failed")
    return 1 if any(m.status == "failed" for m in messages) else 0
