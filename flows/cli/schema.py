"""``aftercare schema``: the JSON Schema of the language on stdout."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parsers(sub: Any) -> None:
    """Add the ``schema`` parser."""
    p = sub.add_parser("schema", help="the JSON Schema of the language on stdout")
    p.set_defaults(handler=schema)


def schema(args: argparse.Namespace) -> int:
    """Print the schema."""
    from aftercare.engine.kinds import installed
    from aftercare.engine.schema import process_schema

    print(json.dumps(process_schema(installed()), indent=2, ensure_ascii=False))
    return 0
