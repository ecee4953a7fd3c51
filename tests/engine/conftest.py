"""Fixtures of the engine tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from aftercare.engine.library import load_library
from aftercare.engine.loader import Library

VALID = Path(__file__).resolve().parents[1] / "data" / "valid"


@pytest.fixture(scope="session")
def valid_library() -> Library:
    """tests/data/valid/ loaded and checked."""
    return load_library(VALID)
