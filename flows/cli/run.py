"""``aftercare run PROCESS|FILE --inputs F [--answers F] [--json]``: one case as a real Prefect flow run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parsers(sub: Any) -> None:
    """Add the ``run`` parser."""
    p = sub.add_parser("run", help="run one case as a real Prefect flow run")
    p.add_argument("process", metavar="PROCESS|FILE")
    p.add_argument("--inputs", metavar="F")
    p.add_argument("--answers", metavar="F")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the case in the foreground (Prefect's embedded server unless PREFECT_API_URL is set); print its timeline."""
    from aftercare.engine import settings
    from aftercare.engine.answers_file import ScriptedAnswers
    from aftercare.engine.calendars import calendar_of
    from aftercare.engine.case import opening
    from aftercare.engine.clock import utc_now
    from aftercare.engine.library import process_argument
    from aftercare.engine.register import Register, render_timeline
    from aftercare.engine.yaml_source import read_mapping_file
    from aftercare.flows.embedded import prefect_api
    from aftercare.flows.running import run_foreground
    from aftercare.notifications import load_checked_library

    folder, name = process_argument(args.process, settings.processes_folder())
    library = load_checked_library(folder)
    definition = library.get(name)
    inputs = read_mapping_file(Path(args.inputs), "inputs").data if args.inputs else {}
    calendar = calendar_of(definition.spec, library.team)
    opening(definition.spec, inputs, library.team.people, utc_now(), calendar)  # the flow checks them again; a mistake is told before Prefect starts
    answers = None
    if args.answers:
        document = read_mapping_file(Path(args.answers), "answers")
        answers = ScriptedAnswers.parse(document.data, definition.spec, document=document)
    with prefect_api(start_embedded=True):
        result = run_foreground(definition, library, inputs, answers)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print(render_timeline(Register().timeline(result["case"])))
    return 0
