"""``aftercare init [DIR]``: start a team's own folder from the shipped library (package data, so it works from a wheel)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from aftercare.engine.errors import AftercareError

SHIPPED_SCHEMA_LINE = "# yaml-language-server: $schema=../docs/aftercare.schema.json"
LOCAL_SCHEMA_LINE = "# yaml-language-server: $schema=./aftercare.schema.json"


def add_parsers(sub: Any) -> None:
    """Add the ``init`` parser."""
    p = sub.add_parser("init", help="start a team's own folder from the shipped library")
    p.add_argument("folder", nargs="?", default="processes", metavar="DIR")
    p.set_defaults(handler=init)


def shipped_library() -> Path:
    """The process library shipped as package data (``aftercare.processes``, a folder without code)."""
    from aftercare.engine.library import shipped_folder

    return shipped_folder()


def init(args: argparse.Namespace) -> int:
    """Copy the shipped definitions, templates and team file into DIR (existing files are kept), with the schema."""
    from aftercare.engine.kinds import installed
    from aftercare.engine.schema import process_schema

    target = Path(args.folder)
    if target.exists() and not target.is_dir():
        raise AftercareError(f"{target} is a file, not a folder; give a folder to start (or a new name)")
    target.mkdir(parents=True, exist_ok=True)
    shipped = shipped_library()
    copied = 0
    for entry in shipped.iterdir():
        if entry.name.endswith(".yaml") and not (target / entry.name).exists():
            text = entry.read_text(encoding="utf-8").replace(SHIPPED_SCHEMA_LINE, LOCAL_SCHEMA_LINE)
            (target / entry.name).write_text(text, encoding="utf-8")
            copied += 1
    (target / "aftercare.schema.json").write_text(json.dumps(process_schema(installed()), indent=2, ensure_ascii=False), encoding="utf-8")
    templates = shipped / "templates"
    if templates.is_dir():
        (target / "templates").mkdir(exist_ok=True)
        for entry in templates.iterdir():
            if not (target / "templates" / entry.name).exists():
                (target / "templates" / entry.name).write_bytes(entry.read_bytes())
                copied += 1
    print(f"{copied} file(s) copied to {target}; edit {target / 'team.yaml'}, then `aftercare validate {target}`")
    return 0
