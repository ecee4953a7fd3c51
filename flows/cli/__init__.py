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

from . import answer, cancel, cases, db, graph, init, kinds, outbox, people, report, run, scenario_tests, schema, serve, simulate, validate

COMMAND_MODULES = (validate, schema, kinds, simulate, run, answer, cancel, cases, people, serve, outbox, db, init, scenario_tests, report, graph)


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
    except Exception as error:  # noqa: BLE001 - the contract: one line, never a traceback
        print(f"aftercare {args.command}: {unexpected(error)}", file=sys.stderr)
        if _debug():
            raise
        return 1


def unexpected(error: Exception) -> str:
    """One line for a failure no command expected: a server out of reach, a file, or a bug."""
    import httpx

    if isinstance(error, httpx.TransportError):
        where = str(error.request.url) if _has_request(error) else "the Prefect API"
        return f"cannot reach the Prefect server ({where}): {error}; is it running, and is PREFECT_API_URL right?"
    if isinstance(error, OSError):
        return f"{error.strerror or error}{f': {error.filename}' if error.filename else ''}"
    text = " ".join(str(error).split())[:300]
    return f"unexpected {type(error).__name__}: {text} (AFTERCARE_DEBUG=1 shows the traceback)"


def _has_request(error: Exception) -> bool:
    try:
        return getattr(error, "request", None) is not None
    except RuntimeError:  # httpx raises when an error has no request
        return False


def _debug() -> bool:
    from aftercare.engine import settings

    try:
        return settings.current().debug
    except AftercareError:
        return False
