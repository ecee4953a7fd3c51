"""``aftercare graph PROCESS|FILE [--format mermaid|svg] [--out FILE]``: a definition's diagram."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

FORMATS = ("mermaid", "svg")


def add_parsers(sub: Any) -> None:
    """Add the ``graph`` parser."""
    p = sub.add_parser("graph", help="a process's diagram as Mermaid text or standalone SVG")
    p.add_argument("process", metavar="PROCESS|FILE")
    p.add_argument("--format", default="mermaid", help="mermaid (default) or svg")
    p.add_argument("--out", metavar="FILE", help="write the diagram to FILE instead of stdout")
    p.set_defaults(handler=graph)


def graph(args: argparse.Namespace) -> int:
    """Print (or write) the diagram of one definition, by process id or by file."""
    from aftercare.engine import settings
    from aftercare.engine.errors import AftercareError
    from aftercare.engine.graph import mermaid, svg
    from aftercare.engine.library import process_argument
    from aftercare.engine.suggest import did_you_mean
    from aftercare.notifications import load_checked_library

    if args.format not in FORMATS:
        raise AftercareError(f"--format {args.format!r} is not one of {', '.join(FORMATS)}{did_you_mean(args.format, FORMATS)}")
    folder, name = process_argument(args.process, settings.processes_folder())
    spec = load_checked_library(folder).get(name).spec
    text = mermaid(spec) if args.format == "mermaid" else svg(spec)
    if args.out:
        out = Path(args.out)
        out.write_text(text, encoding="utf-8")
        print(f"aftercare graph: {spec.process} ({args.format}) written to {out}")
    else:
        print(text, end="")
    return 0
