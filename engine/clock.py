"""The one clock of the runtime: now, timezone-aware UTC."""

from __future__ import annotations

from datetime import datetime, timezone

UTC = timezone.utc


def utc_now() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)
