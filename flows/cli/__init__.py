"""The ``aftercare`` command line (DESIGN.md "The command line"): one module per command group.

Each command module adds its parsers with ``add_parsers(sub)`` and binds each to its
handler (``set_defaults(handler=...)``); command modules never import each other and
keep heavy imports (Prefect, the register) inside their handlers, so ``aftercare
validate`` starts without Prefect. Every mistake a user can make ends as one line on
stderr and exit 1 (an :class:`~aftercare.engine.errors.AftercareError`), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aftercare.engine.errors import AftercareError, DefinitionError

from . import answer, cases, db, init, outbox, run, scenario_tests, schema, serve, simulate, validate

COMMAND_MODULES = (validate, schema, simulate, run, answer, cases, serve, outbox, db, init, scenario_tests)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="aftercare", description="Post-handover processes as Prefect flows.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_parsers(sub)
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
    try:
        code: int = args.handler(args)
        return code
    except DefinitionError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 1
    except AftercareError as error:
        print(f"aftercare {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
