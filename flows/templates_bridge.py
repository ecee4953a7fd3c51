"""Connects the engine's checks and simulator to the notification templates (until notifications lands)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aftercare.engine.loader import Library


def template_sources(paths: Iterable[Path]) -> dict[str, str] | None:
    """Template name -> source text, for the checks; None while no template set is known."""
    return None


def renderer_for(library: Library) -> Any:
    """A renderer for named templates in the simulator, or None."""
    return None
