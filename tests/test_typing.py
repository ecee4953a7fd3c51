"""engine/ (its register included) and notifications/ are typed strictly (STYLE.md): mypy --strict passes on them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_engine_and_notifications_pass_mypy_strict() -> None:
    """pyproject.toml's [tool.mypy] names the packages (aftercare.engine, aftercare.notifications)."""
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "no issues found in" in done.stdout


def test_each_package_says_it_is_typed() -> None:
    assert all((ROOT / package / "py.typed").is_file() for package in ("engine", "notifications", "flows"))
