"""``aftercare cases [--status S] [--process P]`` and ``aftercare show CASE``: the register's cases and a case's timeline."""

from __future__ import annotations

import argparse
import json
from typing import Any


MAX_LIMIT = 10_000


def _limit(text: str) -> int:
    """``--limit``: a whole number from 1 to :data:`MAX_LIMIT`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and {MAX_LIMIT}")
    return value


def add_parsers(sub: Any) -> None:
    """Add the ``cases`` and ``show`` parsers."""
    p = sub.add_parser("cases", help="list cases in the register")
    p.add_argument("--status")
    p.add_argument("--process")
    p.add_argument("--limit", type=_limit, default=50, metavar="N", help=f"at most N cases, 1 to {MAX_LIMIT} (default 50)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cases)

    p = sub.add_parser("show", help="a case's timeline")
    p.add_argument("case", metavar="CASE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=show)


def cases(args: argparse.Namespace) -> int:
    """List cases, newest first."""
    from aftercare.engine.errors import NotFoundError
    from aftercare.engine.register import Register
    from aftercare.engine.suggest import did_you_mean

    register = Register()
    records = register.cases(status=args.status, process=args.process, limit=args.limit)
    if not records and args.process and args.process not in (known := register.processes()):
        raise NotFoundError(f"no case of process {args.process!r} in the register{did_you_mean(args.process, known)}")
    if not records and args.status and args.status not in (statuses := register.statuses()):
        raise NotFoundError(f"no case in status {args.status!r} in the register{did_you_mean(args.status, statuses)}")
    if args.json:
        print(json.dumps([{"case": r.key, "process": r.process, "status": r.status, "outcome": r.outcome,
                           "title": r.title, "step": r.current_step, "opened_at": r.opened_at.isoformat()} for r in records],
                         ensure_ascii=False))
        return 0
    print(f"{'CASE':<10} {'PROCESS':<22} {'STATUS':<10} {'OUTCOME':<14} {'STEP':<16} {'OPENED (UTC)':<16} TITLE")
    for r in records:
        print(f"{r.key:<10} {r.process:<22} {r.status:<10} {r.outcome or '':<14} {r.current_step or '':<16} "
              f"{r.opened_at:%Y-%m-%d %H:%M} {r.title}")
    return 0


def show(args: argparse.Namespace) -> int:
    """Print a case's timeline."""
    from dataclasses import asdict

    from aftercare.engine.register import Register, render_timeline

    timeline = Register().timeline(args.case)
    if args.json:
        print(json.dumps(asdict(timeline), ensure_ascii=False, default=str))
        return 0
    print(render_timeline(timeline))
    return 0
