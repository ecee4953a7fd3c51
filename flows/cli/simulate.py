"""``aftercare simulate FILE --inputs F --answers F [--at DATETIME] [--json] [--record]``: run a definition in memory, no Prefect."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from aftercare.engine.errors import AftercareError

SIMULATED = "simulated"


class SimulateArgumentError(AftercareError, ValueError):
    """An argument of ``aftercare simulate`` that cannot be used (``--at`` that is not a moment)."""


def start_at(text: str | None) -> datetime | None:
    """``--at``: when the simulated clock starts, ISO 8601 with its offset (``2026-09-25T17:00+08:00``).

    Raises:
        SimulateArgumentError: naming ``--at`` and the text: not ISO 8601, or no offset (whose 17:00?).
    """
    if text is None:
        return None
    example = "such as 2026-09-25T17:00+08:00"
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SimulateArgumentError(f"--at {text!r} is not an ISO 8601 date-time with an offset, {example}") from None
    if moment.tzinfo is None:
        raise SimulateArgumentError(f"--at {text!r} has no UTC offset; say whose clock, {example} or 2026-09-25T09:00Z")
    return moment


def add_parsers(sub: Any) -> None:
    """Add the ``simulate`` parser."""
    p = sub.add_parser("simulate", help="run a definition in memory with scripted answers")
    p.add_argument("file")
    p.add_argument("--inputs", metavar="F")
    p.add_argument("--answers", metavar="F")
    p.add_argument("--at", metavar="DATETIME", help="when the simulated clock starts (ISO 8601 with offset; default Monday 2026-01-05 09:00 UTC)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--record", action="store_true", help="write the simulated case to the register")
    p.set_defaults(handler=simulate)


def simulate(args: argparse.Namespace) -> int:
    """Simulate one case; print each step id visited, then the outcome (or the ``--json`` form)."""
    from aftercare.engine.answers_file import ScriptedAnswers
    from aftercare.engine.simulator import Simulator
    from aftercare.engine.yaml_source import read_mapping_file
    from aftercare.notifications import Composer, load_checked_library

    start = start_at(args.at)
    file = Path(args.file)
    library = load_checked_library(file.parent)
    loaded = library.get(file.name)
    inputs = read_mapping_file(Path(args.inputs), "inputs").data if args.inputs else {}
    answers = ScriptedAnswers()
    if args.answers:
        document = read_mapping_file(Path(args.answers), "answers")
        answers = ScriptedAnswers.parse(document.data, loaded.spec, document=document)
    catalog = {name: item.spec for name, item in library.definitions.items()}
    simulator = Simulator(loaded.spec, library.team, answers, composer=Composer.for_library(library), catalog=catalog, start=start)
    result = simulator.run(inputs)
    if args.record:
        result.case.key = record_simulation(result, loaded)
    if args.json:
        print(json.dumps(result.as_json(), ensure_ascii=False))
    else:
        for step_id in result.path:
            print(step_id)
        print(f"outcome: {result.outcome}")
    return 0


def record_simulation(result: Any, definition: Any, register: Any = None, *, actor: str = SIMULATED) -> str:
    """Write a simulated case to the register as a served run writes it: the case, its step visits (with who may
    answer and the due), each ``for_each`` instance as its own row, every answer, and (as audit events, never sent)
    its messages.

    The case is marked ``simulated`` in its fields so it is never mistaken for real work;
    each human step is decided by the engine's one rule, as in the simulation. Timings are
    the simulated clock's.

    Returns:
        The case's key in the register.
    """
    from aftercare.engine.answers import decide, from_rows
    from aftercare.engine.register import Register
    from aftercare.engine.spec import is_human

    register = register or Register()
    spec = definition.spec
    case = result.case
    register.save_definition(definition.digest, spec.process, spec.version, Path(definition.path).read_text(encoding="utf-8"))
    record = register.open_case(
        process=spec.process, version=spec.version, definition_hash=definition.digest, key_prefix=spec.key,
        title=case.title, inputs=case.inputs, due_at=result.opened_due, opened_at=case.opened_at, actor=actor,
    )
    key = record.key
    register.update_case(key, fields={**case.fields, SIMULATED: True}, actor=actor, at=case.opened_at)
    for step_id, visit, step_result, started_at, finished_at in result.visits:
        step = spec.step(step_id)
        plan = result.plans.get((step_id, visit))
        register.begin_step(
            key, step_id, visit, started_at=started_at, due_at=plan.due_at if plan else None, eligible=plan.eligible if plan else ()
        )
        if is_human(step):
            for (answered_step, answered_visit, answer), row in zip(result.answers, result.answer_rows):
                if (answered_step, answered_visit) != (step_id, visit):
                    continue
                at = answer.answered_at or finished_at
                if row != step_id and register.step_run(key, row, visit) is None:
                    unit_plan = result.plans.get((row, visit), plan)
                    register.begin_step(
                        key, row, visit, started_at=unit_plan.started_at if unit_plan else started_at,
                        due_at=unit_plan.due_at if unit_plan else None, eligible=unit_plan.eligible if unit_plan else (),
                    )

                def decided(rows: list[Any], step: Any = step, at: Any = at) -> dict[str, Any] | None:
                    return decide(step, from_rows(rows), due_at=None, now=at)

                register.answer(
                    key, row, visit, person=answer.by, decision=answer.decision, comment=answer.comment,
                    fields=dict(answer.fields), answered_at=at, decide=decided,
                )
        register.complete_step(key, step_id, visit, step_result, finished_at, started_at=started_at)
        for moved_step, moved_visit, due_at in result.due_moves:
            if (moved_step, moved_visit) == (step_id, visit):  # sla.pause_while: the clock stood still while it waited
                register.update_case(key, due_at=due_at, actor=actor, at=finished_at)
    for message in result.messages:
        register.audit(
            key, "message.simulated", actor,
            after={"step": message.step, "visit": message.visit, "to": message.recipients, "kind": message.kind},
            detail=message.subject, at=message.at,
        )
    for started in result.started:
        register.audit(key, "case.simulated_start", actor, after={"process": started.process, "inputs": started.inputs}, detail=started.key)
    if case.outcome:
        register.close_case(key, case.outcome, at=result.visits[-1][4] if result.visits else case.opened_at, actor=actor)
    return str(key)
