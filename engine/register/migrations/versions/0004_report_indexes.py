"""Indexes for the report: cases by opening time, overall and per process.

Every figure of ``aftercare report`` counts the cases opened in a window (by default the
last 90 days), most of them per process; at 100,000 cases a full scan of ``cases`` per
figure made the report several seconds slower on SQLite (docs/report.md, "Speed").

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the two indexes."""
    op.create_index("ix_cases_opened_at", "cases", ["opened_at"])
    op.create_index("ix_cases_process_opened_at", "cases", ["process", "opened_at"])


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_cases_process_opened_at", table_name="cases")
    op.drop_index("ix_cases_opened_at", table_name="cases")
