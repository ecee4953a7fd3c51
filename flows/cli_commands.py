"""Sub-commands beyond validate/schema/simulate; each registers its parser here."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any) -> None:
    """Add the parsers of the runtime commands."""
