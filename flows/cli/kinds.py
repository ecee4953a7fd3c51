"""``aftercare kinds [--json]``: the step kinds installed (entry point group ``aftercare.steps``) that ``call:`` may name."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parsers(sub: Any) -> None:
    """Add the ``kinds`` parser."""
    p = sub.add_parser("kinds", help="the installed step kinds that call steps may name")
    p.add_argument("--json", action="store_true", help="each kind with its package and its with:/output schemas, as JSON")
    p.set_defaults(handler=list_kinds)


def list_kinds(args: argparse.Namespace) -> int:
    """Print the installed kinds; a kind that does not load is one line on stderr, and exit 1."""
    from aftercare.engine.kinds import installed

    registry = installed()
    if args.json:
        print(json.dumps({
            "kinds": [
                {
                    "name": kind.name,
                    "package": kind.package,
                    "target": kind.target,
                    "description": kind.description,
                    "with": kind.with_schema(),
                    "output": kind.output_model.model_json_schema(mode="serialization"),
                }
                for kind in registry.kinds.values()
            ],
            "broken": [{"name": name, "error": error} for name, error in registry.broken.items()],
        }, indent=2, ensure_ascii=False))
    else:
        width = max((len(name) for name in registry.kinds), default=0)
        for kind in registry.kinds.values():
            print(f"{kind.name:<{width}}  {kind.package}  {kind.description}".rstrip())
        if not registry.kinds and not registry.broken:
            print("no step kinds installed (entry point group aftercare.steps)")
    for error in registry.broken.values():
        print(f"aftercare kinds: {error}", file=sys.stderr)
    return 1 if registry.broken else 0
