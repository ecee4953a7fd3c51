"""``aftercare validate PATH...``: check definitions; problems as FILE:LINE:COL: message."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parsers(sub: Any) -> None:
    """Add the ``validate`` parser."""
    p = sub.add_parser("validate", help="check definitions; errors as FILE:LINE:COL: message")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.set_defaults(handler=validate)


def validate(args: argparse.Namespace) -> int:
    """Check every definition the paths name, with its team file and templates; exit 1 on any problem."""
    from aftercare.engine.library import validate as check
    from aftercare.notifications import template_sources

    paths = [Path(p) for p in args.paths]
    missing = [p for p in paths if not p.exists()]
    for path in missing:
        print(f"{path}:0:0: no such file or folder", file=sys.stderr)
    present = [p for p in paths if p.exists()]
    loaded, problems = check(present, template_sources(present))
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems or missing:
        print(f"{len(problems) + len(missing)} problem(s)", file=sys.stderr)
        return 1
    teams = [p for p in present if p.is_file() and p.name == "team.yaml"]
    print(f"{len(loaded)} definition(s) valid" + (f", {len(teams)} team file(s) valid" if teams else ""))
    return 0
