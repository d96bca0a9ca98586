"""The red-flag screen: screens offered, completed and used (`lcds_screen`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lcds_screen",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("patient_hash", sa.String(64), nullable=False),
        sa.Column("user_reference", sa.String(256), nullable=True),
        sa.Column("order_reference", sa.String(256), nullable=False),
        sa.Column("offered_topic", sa.String(64), nullable=True),
        sa.Column("offered_rating", sa.String(32), nullable=True),
        sa.Column("page", sa.JSON(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=False), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=False), nullable=True),
        sa.Column("used_topic", sa.String(64), nullable=True),
        sa.Column("used_rating", sa.String(32), nullable=True),
        sa.Column("changed", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_lcds_screen"),
    )
    op.create_index("ix_lcds_screen_created_at", "lcds_screen", ["created_at"])
    op.create_index("ix_lcds_screen_patient_hash", "lcds_screen", ["patient_hash"])
    op.create_index("ix_lcds_screen_completed_at", "lcds_screen", ["completed_at"])


def downgrade() -> None:
    op.drop_table("lcds_screen")
