"""The runtime sub-commands: run, answer, cases, show, serve, deploy, outbox, db, init."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from aftercare.engine.errors import AnswerError, NotFoundError

from .cli import command, processes_folder, read_data_file


def add_parsers(sub: Any) -> None:
    """Add the parsers of the runtime commands."""
    p = sub.add_parser("run", help="run one case as a real Prefect flow run")
    p.add_argument("process", metavar="PROCESS|FILE")
    p.add_argument("--inputs", metavar="F")
    p.add_argument("--answers", metavar="F")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("answer", help="answer a waiting approval, form or checklist step")
    p.add_argument("case", metavar="CASE")
    p.add_argument("step", metavar="STEP")
    p.add_argument("--as", dest="person", required=True, metavar="PERSON")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--approve", action="store_const", const="approve", dest="decision")
    group.add_argument("--reject", action="store_const", const="reject", dest="decision")
    p.add_argument("--comment", "-m", default="")
    p.add_argument("values", nargs="*", metavar="FIELD=VALUE")

    p = sub.add_parser("cases", help="list cases in the register")
    p.add_argument("--status")
    p.add_argument("--process")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("show", help="a case's timeline")
    p.add_argument("case", metavar="CASE")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("serve", help="serve every definition as a Prefect deployment, schedules on")
    p.add_argument("path", nargs="?", metavar="PATH")
    p.add_argument("--no-system", action="store_true", help="do not serve the system flows (escalations, outbox, timers)")

    p = sub.add_parser("deploy", help="deployments for the workers of a Prefect work pool")
    p.add_argument("path", nargs="?", metavar="PATH")
    p.add_argument("--pool", required=True, metavar="NAME")

    p = sub.add_parser("outbox", help="pending and failed messages; `outbox retry` retries them")
    p.add_argument("action", nargs="?", choices=["retry"])
    p.add_argument("--all", action="store_true", help="delivered messages too")

    p = sub.add_parser("db", help="the register's database")
    p.add_argument("action", choices=["upgrade"])

    p = sub.add_parser("init", help="start a team's own folder from the shipped library")
    p.add_argument("folder", nargs="?", default="processes", metavar="DIR")
    from . import cli_test; cli_test.add_parser(sub)


def shipped_library() -> Path:
    """The process library shipped as package data (``aftercare.processes``, a folder without code)."""
    import importlib.util

    spec = importlib.util.find_spec("aftercare.processes")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if Path(location).is_dir() and (Path(location) / "team.yaml").is_file():
            return Path(location)
    raise NotFoundError("the shipped process library (aftercare.processes) is not installed")


SHIPPED_SCHEMA_LINE = "# yaml-language-server: $schema=../docs/aftercare.schema.json"
LOCAL_SCHEMA_LINE = "# yaml-language-server: $schema=./aftercare.schema.json"


def _library(path: str | None = None) -> Any:
    from aftercare.engine.library import load_library

    from .templates_bridge import template_sources

    folder = Path(path) if path else processes_folder()
    if folder.is_file():
        folder = folder.parent
    return load_library(folder, template_sources([folder]))


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


@command("run")
def _run(args: argparse.Namespace) -> int:
    from .embedded import prefect_api
    from .running import run_foreground

    target = Path(args.process)
    library = _library(str(target.parent) if target.suffix in (".yaml", ".yml") else None)
    definition = library.get(target.name if target.suffix in (".yaml", ".yml") else args.process)
    inputs = read_data_file(args.inputs, "inputs")
    answers = read_data_file(args.answers, "answers") if args.answers else None
    with prefect_api(start_embedded=True):
        result = run_foreground(definition, library, inputs, answers)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    from aftercare.engine.register import Register, render_timeline

    print(render_timeline(Register().timeline(result["case"])))
    return 0


@command("answer")
def _answer(args: argparse.Namespace) -> int:
    from .answering import submit_answer, team_near
    from .embedded import prefect_api

    team = team_near(processes_folder()) if processes_folder().exists() else None
    with prefect_api(start_embedded=False) as api:
        if api is None:
            raise AnswerError("no Prefect API to reach: set PREFECT_API_URL, or answer while `aftercare run` is running")
        submit_answer(
            args.case, args.step, by=args.person, decision=args.decision, comment=args.comment,
            fields=parse_values(args.values), team=team,
        )
    print(f"{args.case} {args.step}: answer from {args.person} submitted")
    return 0


@command("cases")
def _cases(args: argparse.Namespace) -> int:
    from aftercare.engine.register import Register

    records = Register().cases(status=args.status, process=args.process, limit=args.limit)
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


@command("show")
def _show(args: argparse.Namespace) -> int:
    from aftercare.engine.register import Register, render_timeline

    try:
        timeline = Register().timeline(args.case)
    except NotFoundError as error:
        print(f"aftercare show: {error}", file=sys.stderr)
        return 1
    if args.json:
        from dataclasses import asdict

        print(json.dumps(asdict(timeline), ensure_ascii=False, default=str))
        return 0
    print(render_timeline(timeline))
    return 0


@command("serve")
def _serve(args: argparse.Namespace) -> int:
    from .serving import serve_library

    serve_library(_library(args.path), system=not args.no_system)
    return 0


@command("deploy")
def _deploy(args: argparse.Namespace) -> int:
    from .serving import deploy_library

    for name in deploy_library(_library(args.path), pool=args.pool):
        print(f"deployed {name} to work pool {args.pool}")
    return 0


@command("outbox")
def _outbox(args: argparse.Namespace) -> int:
    from .outbox_commands import outbox_command

    return outbox_command(retry=args.action == "retry", show_all=args.all)


@command("db")
def _db(args: argparse.Namespace) -> int:
    from aftercare.engine.register import Register

    revision = Register(migrate=False).migrate()
    print(f"register at revision {revision}")
    return 0


@command("init")
def _init(args: argparse.Namespace) -> int:
    target = Path(args.folder)
    target.mkdir(parents=True, exist_ok=True)
    shipped = shipped_library()
    copied = 0
    for entry in shipped.iterdir():
        if entry.name.endswith(".yaml") and not (target / entry.name).exists():
            text = entry.read_text(encoding="utf-8").replace(SHIPPED_SCHEMA_LINE, LOCAL_SCHEMA_LINE)
            (target / entry.name).write_text(text, encoding="utf-8")
            copied += 1
    from aftercare.engine.schema import process_schema

    (target / "aftercare.schema.json").write_text(json.dumps(process_schema(), indent=2, ensure_ascii=False), encoding="utf-8")
    templates = shipped / "templates"
    if templates.is_dir():
        (target / "templates").mkdir(exist_ok=True)
        for entry in templates.iterdir():
            if not (target / "templates" / entry.name).exists():
                (target / "templates" / entry.name).write_bytes(entry.read_bytes())
                copied += 1
    print(f"{copied} file(s) copied to {target}; edit {target / 'team.yaml'}, then `aftercare validate {target}`")
    return 0


__all__ = ["add_parsers"]
