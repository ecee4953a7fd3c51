"""``aftercare outbox [retry]``: the messages not yet delivered, and retrying them now."""

from __future__ import annotations

import argparse
from typing import Any

SHOWN = ("pending", "sending", "failed")


def add_parsers(sub: Any) -> None:
    """Add the ``outbox`` parser."""
    p = sub.add_parser("outbox", help="pending and failed messages; `outbox retry` retries them now")
    p.add_argument("action", nargs="?", choices=["retry"])
    p.add_argument("--all", action="store_true", help="delivered messages too")
    p.set_defaults(handler=outbox)


def _line(message: Any) -> str:
    error = f"  last error: {message.last_error}" if message.last_error else ""
    return (
        f"{message.id:>6} {message.status:<9} {message.case_key or '-':<10} {message.step_id or '-':<16} "
        f"{message.recipient:<22} {message.channel:<34} attempts {message.attempts}, next {message.next_attempt_at:%Y-%m-%d %H:%M}Z"
        f"  {message.subject}{error}"
    )


def outbox(args: argparse.Namespace) -> int:
    """List pending and failed messages; ``retry`` makes every failed one pending and delivers all of them now."""
    from aftercare.engine.clock import utc_now
    from aftercare.engine.register import Register
    from aftercare.notifications import deliver_pending

    register = Register()
    if args.action == "retry":
        # An operator's retry retries now: failed messages and those waiting out a backoff.
        failed, waiting = register.retry_now(utc_now())
        report = deliver_pending(register, now=utc_now(), limit=1000)
        print(f"{failed} failed and {waiting} waiting message(s) due now; {report}")
    statuses = (None,) if args.all else SHOWN
    messages = [m for status in statuses for m in register.messages(status)]
    messages.sort(key=lambda m: m.id)
    for message in messages:
        print(_line(message))
    if not messages:
        print("the outbox is empty" if args.all else "nothing pending or failed")
    return 1 if any(m.status == "failed" for m in messages) else 0
