"""``aftercare db upgrade``: migrate the register explicitly."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any) -> None:
    """Add the ``db`` parser."""
    p = sub.add_parser("db", help="the register's database")
    p.add_argument("action", choices=["upgrade"])
    p.set_defaults(handler=db)


def db(args: argparse.Namespace) -> int:
    """Migrate the register to the newest schema."""
    from aftercare.engine.register import Register

    revision = Register(migrate=False).migrate()
    print(f"register at revision {revision}")
    return 0
