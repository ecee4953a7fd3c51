"""``aftercare answer CASE STEP --as PERSON [--approve|--reject] [--comment C] [FIELD=VALUE...]``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from aftercare.engine.errors import AnswerError


def add_parsers(sub: Any) -> None:
    """Add the ``answer`` parser."""
    p = sub.add_parser("answer", help="answer a waiting approval, form or checklist step")
    p.add_argument("case", metavar="CASE")
    p.add_argument("step", metavar="STEP")
    p.add_argument("--as", dest="person", required=True, metavar="PERSON")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--approve", action="store_const", const="approve", dest="decision")
    group.add_argument("--reject", action="store_const", const="reject", dest="decision")
    p.add_argument("--comment", "-m", default="")
    p.add_argument("values", nargs="*", metavar="FIELD=VALUE")
    p.set_defaults(handler=answer)


def parse_values(values: list[str]) -> dict[str, Any]:
    """``FIELD=VALUE`` pairs; a value that reads as JSON (numbers, true, lists) keeps its type."""
    fields: dict[str, Any] = {}
    for pair in values:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise AnswerError(f"{pair!r} is not FIELD=VALUE")
        try:
            fields[name] = json.loads(value)
        except ValueError:
            fields[name] = value
    return fields


def answer(args: argparse.Namespace) -> int:
    """Check the answer, then resume the case's run with it through its resume form."""
    from aftercare.engine import settings
    from aftercare.flows.answering import check_answer, resume_with
    from aftercare.flows.embedded import prefect_api
    from aftercare.notifications import load_checked_library

    folder = settings.processes_folder()
    # Without the definitions folder the register's copy of the case's definition answers.
    library = load_checked_library(folder) if (folder / "team.yaml").is_file() else None
    fields = parse_values(args.values)
    # A mistyped case, step or person is told before any Prefect server is needed.
    checked = check_answer(args.case, args.step, by=args.person, decision=args.decision, comment=args.comment, fields=fields, library=library)
    with prefect_api(start_embedded=False) as api:
        if api is None:
            raise AnswerError("no Prefect API to reach: set PREFECT_API_URL, or answer while `aftercare run` is running")
        resume_with(checked)
    print(f"{args.case} {args.step}: answer from {args.person} submitted")
    return 0
