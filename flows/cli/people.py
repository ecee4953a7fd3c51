"""People at work: ``aftercare tasks``, ``aftercare reassign`` and ``aftercare comment``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parsers(sub: Any) -> None:
    """Add the ``tasks``, ``reassign`` and ``comment`` parsers."""
    p = sub.add_parser("tasks", help="steps waiting on people, overdue first, with the link to each form")
    p.add_argument("--for", dest="person", metavar="PERSON", help="only the steps this person may answer")
    p.add_argument("--role", metavar="ROLE", help="only the steps a member of this role may answer")
    p.add_argument("--overdue", action="store_true", help="only the steps past their due")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=tasks)

    p = sub.add_parser("reassign", help="hand a waiting step on to another person")
    p.add_argument("case", metavar="CASE")
    p.add_argument("step", metavar="STEP")
    p.add_argument("--to", required=True, metavar="PERSON")
    p.add_argument("--as", dest="person", required=True, metavar="PERSON")
    p.add_argument("--reason", default="", metavar="TEXT")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=reassign)

    p = sub.add_parser("comment", help="add a comment to a case (it decides nothing)")
    p.add_argument("case", metavar="CASE")
    p.add_argument("--as", dest="person", required=True, metavar="PERSON")
    p.add_argument("-m", "--message", dest="text", required=True, metavar="TEXT")
    p.set_defaults(handler=comment)


def _library() -> Any:
    """The definitions folder with its team (who is who is needed by all three commands)."""
    from aftercare.engine import settings
    from aftercare.engine.errors import NotFoundError
    from aftercare.notifications import load_checked_library

    folder = settings.processes_folder()
    if not (folder / "team.yaml").is_file():
        raise NotFoundError(f"no team.yaml in {folder}: the team says who is who; set AFTERCARE_PROCESSES to your definitions folder")
    return load_checked_library(folder)


def tasks(args: argparse.Namespace) -> int:
    """List the steps waiting on people; links when a Prefect server is configured."""
    from aftercare.engine.clock import utc_now
    from aftercare.engine.register import CaseRecord, Register, StepRunRecord
    from aftercare.flows.embedded import prefect_api
    from aftercare.flows.forms import form_holder
    from aftercare.flows.tasks import check_filters, render_tasks, task_list
    from aftercare.notifications.links import form_url

    library = _library()
    check_filters(library.team, args.person, args.role)  # a mistyped name is told before any server is asked
    register = Register()
    with prefect_api(start_embedded=False) as api:

        def link(case: CaseRecord, run: StepRunRecord) -> str | None:
            return form_url(form_holder(case.flow_run_id, run.step_id, run.visit)) if api and case.flow_run_id else None

        found = task_list(register, library, now=utc_now(), person=args.person, role=args.role, overdue=args.overdue, link=link)
    if args.json:
        print(json.dumps(found, ensure_ascii=False))
    else:
        sys.stdout.write(render_tasks(found))
    return 0


def reassign(args: argparse.Namespace) -> int:
    """Hand a waiting step on: the register, the form in the Prefect UI, the runs' tags, both people told."""
    from aftercare.engine.register import Register
    from aftercare.flows import reassigning
    from aftercare.flows.embedded import prefect_api

    library = _library()
    reason = " ".join(args.reason.split()) or None
    register = Register()
    with prefect_api(start_embedded=False) as api:
        done = reassigning.reassign(register, library, args.case, args.step, to=args.to, by=args.person, reason=reason, prefect=api is not None)
    change = done.reassignment
    if args.json:
        print(json.dumps({
            "case": args.case, "step": change.after.step_id, "visit": change.after.visit, "by": args.person, "reason": reason,
            "from": list(change.before.eligible), "to": list(change.after.eligible), "form_rebuilt": done.form_rebuilt,
            "messages": done.messages, "problems": done.problems,
        }, ensure_ascii=False))
    else:
        print(f"{args.case} {change.after.step_id}: handed on by {args.person} from {', '.join(change.before.eligible)} "
              f"to {', '.join(change.after.eligible)}" + (f": {reason}" if reason else ""))
    for problem in done.problems:
        print(f"aftercare reassign: {problem}", file=sys.stderr)
    return 0


def comment(args: argparse.Namespace) -> int:
    """Keep a comment on the case: its timeline, its artifact, the next messages about it."""
    from aftercare.engine.register import Register
    from aftercare.flows.artifacts import publish_now
    from aftercare.flows.embedded import prefect_api
    from aftercare.flows.reassigning import check_person

    library = _library()
    check_person(library.team, args.person, "--as")
    register = Register()
    register.add_comment(args.case, by=args.person, text=args.text)
    with prefect_api(start_embedded=False) as api:
        if api is not None:
            try:
                publish_now(register, args.case, api_url=api)
            except Exception as error:  # noqa: BLE001 - the comment is kept; the artifact shows it at the case's next move
                print(f"aftercare comment: the case's artifact was not updated: {' '.join(str(error).split())[:200]}", file=sys.stderr)
    print(f"{args.case}: comment from {args.person} kept")
    return 0
