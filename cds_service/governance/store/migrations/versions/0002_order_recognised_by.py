"""Judgement: how the order was recognised as lumbar imaging (`order_recognised_by`).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: rows written before this revision simply do not say.
    with op.batch_alter_table("lcds_judgement") as batch:
        batch.add_column(sa.Column("order_recognised_by", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lcds_judgement") as batch:
        batch.drop_column("order_recognised_by")
