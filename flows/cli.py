"""The ``aftercare`` command line (DESIGN.md "The command line"): a thin layer over engine and flows."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aftercare.engine.errors import AftercareError, DefinitionError

Handler = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Handler] = {}


def command(name: str) -> Callable[[Handler], Handler]:
    """Register a sub-command handler."""

    def register(handler: Handler) -> Handler:
        COMMANDS[name] = handler
        return handler

    return register


def processes_folder() -> Path:
    """Where run, serve and answer find definitions (``AFTERCARE_PROCESSES``, default ./processes)."""
    return Path(os.environ.get("AFTERCARE_PROCESSES", "processes"))


def read_data_file(path: str | None, what: str) -> dict[str, Any]:
    """Read an inputs or answers file (YAML or JSON); a bad file is a clear error."""
    if path is None:
        return {}
    from aftercare.engine.yaml_source import read_yaml

    document = read_yaml(Path(path))
    if document.data is None:
        return {}
    if not isinstance(document.data, dict):
        raise DefinitionError([document.problem((), f"the {what} file must hold a mapping")])
    return dict(document.data)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="aftercare", description="Post-handover processes as Prefect flows.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check definitions; errors as FILE:LINE:COL: message")
    p.add_argument("paths", nargs="+", metavar="PATH")

    sub.add_parser("schema", help="the JSON Schema of the language on stdout")

    p = sub.add_parser("simulate", help="run a definition in memory with scripted answers")
    p.add_argument("file")
    p.add_argument("--inputs", metavar="F")
    p.add_argument("--answers", metavar="F")
    p.add_argument("--json", action="store_true")
    p.add_argument("--record", action="store_true", help="write the simulated case to the register")

    from . import cli_commands

    cli_commands.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # FIELD=VALUE pairs may come after the options (``answer ... --approve priority=P1``).
    if extra and hasattr(args, "values") and all("=" in item and not item.startswith("-") for item in extra):
        args.values = [*args.values, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    handler = COMMANDS[args.command]
    try:
        return handler(args)
    except DefinitionError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 1
    except AftercareError as error:
        print(f"aftercare {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


@command("validate")
def _validate(args: argparse.Namespace) -> int:
    from aftercare.engine.library import validate

    from .templates_bridge import template_sources

    paths = [Path(p) for p in args.paths]
    missing = [p for p in paths if not p.exists()]
    for path in missing:
        print(f"{path}:0:0: no such file or folder", file=sys.stderr)
    loaded, problems = validate([p for p in paths if p.exists()], template_sources(paths))
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems or missing:
        print(f"{len(problems) + len(missing)} problem(s)", file=sys.stderr)
        return 1
    print(f"{len(loaded)} definition(s) valid")
    return 0


@command("schema")
def _schema(args: argparse.Namespace) -> int:
    from aftercare.engine.schema import process_schema

    print(json.dumps(process_schema(), indent=2, ensure_ascii=False))
    return 0


@command("simulate")
def _simulate(args: argparse.Namespace) -> int:
    from aftercare.engine.library import load_library
    from aftercare.engine.simulator import Simulator

    from .templates_bridge import renderer_for, template_sources

    file = Path(args.file)
    library = load_library(file.parent, template_sources([file.parent]))
    loaded = library.get(file.name)
    inputs = read_data_file(args.inputs, "inputs")
    answers = read_data_file(args.answers, "answers")
    catalog = {name: item.spec for name, item in library.definitions.items()}
    simulator = Simulator(loaded.spec, library.team, answers, catalog=catalog, renderer=renderer_for(library))
    result = simulator.run(inputs)
    if args.record:
        from .recording import record_simulation

        result.case.key = record_simulation(result, loaded)
    if args.json:
        print(json.dumps(result.as_json(), ensure_ascii=False))
    else:
        for step_id in result.path:
            print(step_id)
        print(f"outcome: {result.outcome}")
    return 0


if __name__ == "__main__":
    # Run through the imported module, so commands registered by other modules land in one table.
    from aftercare.flows.cli import main as installed_main

    raise SystemExit(installed_main())
