"""Connects the engine's checks and simulator to the notification templates."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aftercare.engine.loader import Library
from aftercare.notifications.rendering import MessageTemplates


def template_sources(paths: Iterable[Path]) -> dict[str, str]:
    """Template name -> every file of it concatenated (built-ins and the definitions' ``templates/``), for the checks."""
    return MessageTemplates.for_definitions(list(paths)).sources()


def renderer_for(library: Library) -> Any:
    """The simulator's renderer for named templates: (name, scope) -> (subject, plain-text body), in English."""
    return MessageTemplates.for_library(library).renderer()
