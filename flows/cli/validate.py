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
    if not problems:
        problems = _practices_problems(present, loaded)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems or missing:
        print(f"{len(problems) + len(missing)} problem(s)", file=sys.stderr)
        return 1
    teams = [p for p in present if p.is_file() and p.name == "team.yaml"]
    print(f"{len(loaded)} definition(s) valid" + (f", {len(teams)} team file(s) valid" if teams else ""))
    return 0


def _practices_problems(paths: list[Path], loaded: dict[Path, Any]) -> list[Any]:
    """The practices file of each folder given (or the file named), against that folder's definitions."""
    from aftercare.engine.loader import PRACTICES_FILE
    from aftercare.flows.reporting import practices_problems

    files = {p / PRACTICES_FILE for p in paths if p.is_dir()} | {p for p in paths if p.is_file() and p.name == PRACTICES_FILE}
    problems = []
    for file in sorted(f for f in files if f.is_file()):
        definitions = {d.spec.process: d.spec for path, d in loaded.items() if path.parent.resolve() == file.parent.resolve()}
        if not definitions:  # the file named alone: the definitions beside it
            from aftercare.engine.library import validate as check

            definitions = {d.spec.process: d.spec for d in check([file.parent])[0].values()}
        problems.extend(practices_problems(file, definitions))
    return problems
