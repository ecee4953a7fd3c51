"""``aftercare serve [PATH]`` and ``aftercare deploy --pool NAME [PATH]``: every definition as a Prefect deployment."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parsers(sub: Any) -> None:
    """Add the ``serve`` and ``deploy`` parsers."""
    p = sub.add_parser("serve", help="serve every definition as a Prefect deployment, schedules on")
    p.add_argument("path", nargs="?", metavar="PATH")
    p.add_argument("--no-system", action="store_true", help="do not serve the system flows (deadline timers, housekeeping)")
    p.add_argument("--poll", type=_seconds, default=None, metavar="SECONDS",
                   help="how often to ask Prefect for runs due (default 1; Prefect's own default is 10)")
    p.set_defaults(handler=serve)

    p = sub.add_parser("deploy", help="deployments for the workers of a Prefect work pool")
    p.add_argument("path", nargs="?", metavar="PATH")
    p.add_argument("--pool", required=True, metavar="NAME")
    p.set_defaults(handler=deploy)


def _seconds(text: str) -> float:
    """A poll interval: a number of seconds from 0.1 to 60."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (e.g. 1 or 0.5)") from None
    if not 0.1 <= value <= 60:
        raise argparse.ArgumentTypeError(f"{text} s is outside 0.1 to 60 seconds")
    return value


def _folder(path: str | None) -> Path:
    from aftercare.engine import settings

    folder = Path(path) if path else settings.processes_folder()
    return folder.parent if folder.is_file() else folder


def serve(args: argparse.Namespace) -> int:
    """Serve until stopped."""
    from aftercare.flows.serving import serve_library
    from aftercare.notifications import load_checked_library

    from aftercare.flows.serving import POLL_SECONDS

    serve_library(load_checked_library(_folder(args.path)), system=not args.no_system, poll=args.poll or POLL_SECONDS)
    return 0


def deploy(args: argparse.Namespace) -> int:
    """Register the deployments on a work pool."""
    from aftercare.flows.serving import deploy_library
    from aftercare.notifications import load_checked_library

    for name in deploy_library(load_checked_library(_folder(args.path)), pool=args.pool):
        print(f"deployed {name} to work pool {args.pool}")
    return 0
