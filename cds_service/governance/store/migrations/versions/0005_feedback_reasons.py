"""Feedback: every override reason of an item (Epic sends `overrideReasons`, an array).

The three reason columns keep the first reason; `override_reasons` (JSON list of {system, code,
display}) holds them all. Rows stored before this revision have it NULL: the report reads their
one reason from the columns.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lcds_feedback") as batch:
        batch.add_column(sa.Column("override_reasons", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lcds_feedback") as batch:
        batch.drop_column("override_reasons")
