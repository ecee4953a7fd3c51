"""``aftercare cancel CASE --as PERSON --reason TEXT``: end a case as cancelled, with the linked cases it waits for."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parsers(sub: Any) -> None:
    """Add the ``cancel`` parser."""
    p = sub.add_parser("cancel", help="cancel a case: its waiting steps withdrawn, the linked cases it waits for cancelled too")
    p.add_argument("case", metavar="CASE")
    p.add_argument("--as", dest="person", required=True, metavar="PERSON")
    p.add_argument("--reason", required=True, metavar="TEXT")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cancel)


def cancel(args: argparse.Namespace) -> int:
    """Check the person, cancel in the register, stop the Prefect runs, tell the people the case waited on."""
    from aftercare.engine import settings
    from aftercare.engine.errors import AnswerError, NotFoundError
    from aftercare.engine.register import Register
    from aftercare.flows import cancelling
    from aftercare.flows.embedded import prefect_api
    from aftercare.notifications import load_checked_library

    reason = " ".join(args.reason.split())
    if not reason:
        raise AnswerError("--reason is empty: say why the case is cancelled")
    folder = settings.processes_folder()
    if not (folder / "team.yaml").is_file():
        raise NotFoundError(f"no team.yaml in {folder}: the team says who may cancel; set AFTERCARE_PROCESSES to your definitions folder")
    library = load_checked_library(folder)
    register = Register()
    with prefect_api(start_embedded=False):
        # Without a Prefect API the register's cancel stands; the runs are stopped when one is reachable.
        done = cancelling.cancel(register, library, args.case, by=args.person, reason=reason)
    outcome = done.outcome
    withdrawn = list(dict.fromkeys(run.step_id for run in outcome.withdrawn))
    if args.json:
        print(json.dumps({
            "case": outcome.case.key, "status": outcome.case.status, "by": args.person, "reason": reason,
            "withdrawn": withdrawn, "cancelled": done.cancelled, "runs": done.runs, "messages": done.messages,
            "problems": done.problems,
        }, ensure_ascii=False))
    else:
        line = f"{outcome.case.key} cancelled by {args.person}: {reason}"
        if withdrawn:
            line += f"; withdrew {', '.join(withdrawn)}"
        if done.cancelled:
            line += f"; cancelled {', '.join(done.cancelled)}"
        print(line)
    for problem in done.problems:
        print(f"aftercare cancel: {problem}", file=sys.stderr)
    return 0
