"""engine/ is typed strictly (STYLE.md): mypy --strict passes on it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_engine_passes_mypy_strict() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy", "engine"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:]


def test_engine_imports_no_runtime() -> None:
    """The core never imports Prefect, flows or notifications (DESIGN.md's one direction)."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "engine").rglob("*.py")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.lstrip().startswith(("import prefect", "from prefect", "from aftercare.flows", "from aftercare.notifications"))
    ]
    assert offenders == []
