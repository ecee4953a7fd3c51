"""Attributable answers: personal answer codes (only their salted hashes) and the operator of a shell answer.

Adds ``answer_codes`` (one row per code a person was sent for a step visit, or per
one-time token ``aftercare answer`` issued at the operator's shell) and
``approvals.operator`` (the operating-system user who gave an answer at the shell).
Existing answers keep ``operator`` empty: they were given before anyone was asked.

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``answer_codes`` and add ``approvals.operator``."""
    op.create_table(
        "answer_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(length=100), nullable=False),
        sa.Column("visit", sa.Integer(), nullable=False),
        sa.Column("person", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=128), nullable=False),
        sa.Column("os_user", sa.String(length=200), nullable=True),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_attempt", sa.Integer(), nullable=True),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_answer_codes_case_id_cases", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_answer_codes"),
    )
    op.create_index("ix_answer_codes_step", "answer_codes", ["case_id", "step_id", "visit", "person"])
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("operator", sa.String(length=200), nullable=True))


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("approvals") as batch:
        batch.drop_column("operator")
    op.drop_index("ix_answer_codes_step", table_name="answer_codes")
    op.drop_table("answer_codes")
