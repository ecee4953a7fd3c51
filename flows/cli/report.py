"""``aftercare report [--since DATE] [--until DATE] [--process P] [--out FILE.html] [--json]``: how after-care goes.

Without ``--json`` the report is written as one self-contained HTML file (``--out``,
default ``report.html`` in the current folder) and one line says where; ``--json``
prints the report's figures instead (DESIGN.md "The command line"). Dates are ISO 8601
dates or date-times; a naive one is UTC; ``--until`` is exclusive.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from typing import Any

from aftercare.engine.errors import AftercareError

DEFAULT_OUT = "report.html"


class ReportArgumentError(AftercareError, ValueError):
    """An argument of ``aftercare report`` that cannot be used (a date that does not parse, a window that ends before it starts)."""


def add_parsers(sub: Any) -> None:
    """Add the ``report`` parser."""
    p = sub.add_parser("report", help="how after-care goes: figures per process and period, as an HTML file or JSON")
    p.add_argument("--since", metavar="DATE", help="start of the window (ISO 8601; naive is UTC; default: 90 days before --until)")
    p.add_argument("--until", metavar="DATE", help="end of the window, exclusive (ISO 8601; naive is UTC; default: now)")
    p.add_argument("--process", metavar="P", help="only this process (its id or file)")
    p.add_argument("--out", metavar="FILE.html", default=DEFAULT_OUT, help=f"where to write the HTML file (default {DEFAULT_OUT})")
    p.add_argument("--json", action="store_true", help="print the figures as JSON instead of writing the HTML file")
    p.set_defaults(handler=report)


def parse_moment(text: str | None, argument: str) -> datetime | None:
    """``2026-11-01`` (midnight UTC), ``2026-11-01T09:30`` (UTC) or ``2026-11-01T09:30+08:00``.

    Raises:
        ReportArgumentError: naming the argument and the text it could not read.
    """
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())  # a date alone reads as its midnight
    except ValueError:
        raise ReportArgumentError(
            f"{argument} {text!r} is not an ISO 8601 date or date-time (e.g. 2026-11-01 or 2026-11-01T09:00+08:00)"
        ) from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def report(args: argparse.Namespace) -> int:
    """Build the report over the register; print it as JSON or write the HTML file."""
    from aftercare.engine.clock import utc_now

    since, until = parse_moment(args.since, "--since"), parse_moment(args.until, "--until")
    if since is not None and since >= (until or utc_now()):
        raise ReportArgumentError(f"--since {args.since} is not before {'--until ' + args.until if until else 'now'} (--until is exclusive)")

    from pathlib import Path

    from aftercare.engine import settings
    from aftercare.engine.register import Register
    from aftercare.flows.report_html import process_diagrams, render_html
    from aftercare.flows.reporting import build_report
    from aftercare.notifications import load_checked_library

    library = load_checked_library(settings.processes_folder())
    # by id or by file, like every command; a mistyped one is told with a "did you mean"
    process = library.get(args.process).spec.process if args.process else None
    register = Register()
    figures = build_report(register, library, since=since, until=until, process=process)
    if args.json:
        print(json.dumps(figures, ensure_ascii=False))
        return 0
    out = Path(args.out)
    out.write_text(render_html(figures, process_diagrams(library, figures), only=process), encoding="utf-8")
    opened = sum(int(p.get("opened") or 0) for p in figures["processes"].values())
    print(f"wrote {out.resolve()}: {opened} cases opened from {figures['since']} until {figures['until']}, "
          f"{len(figures['processes'])} processes")
    return 0
