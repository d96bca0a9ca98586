"""Initial governance store: judgements issued and feedback received.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lcds_judgement",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("hook", sa.String(32), nullable=False),
        sa.Column("hook_instance", sa.String(128), nullable=False),
        sa.Column("patient_hash", sa.String(64), nullable=False),
        sa.Column("order_reference", sa.String(256), nullable=False),
        sa.Column("order_code", sa.String(256), nullable=True),
        sa.Column("topic", sa.String(64), nullable=True),
        sa.Column("indicator", sa.String(16), nullable=True),
        sa.Column("rating", sa.String(32), nullable=True),
        sa.Column("card_uuid", sa.String(128), nullable=True),
        sa.Column("consult_id", sa.String(128), nullable=True),
        sa.Column("suggestion_uuids", sa.JSON(), nullable=False),
        sa.Column("shown", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lcds_judgement"),
    )
    op.create_index("ix_lcds_judgement_recorded_at", "lcds_judgement", ["recorded_at"])
    op.create_index("ix_lcds_judgement_patient_hash", "lcds_judgement", ["patient_hash"])
    op.create_index("ix_lcds_judgement_card_uuid", "lcds_judgement", ["card_uuid"])

    op.create_table(
        "lcds_feedback",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dedupe_key", sa.String(64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("card_uuid", sa.String(128), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("outcome_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("accepted_suggestions", sa.JSON(), nullable=False),
        sa.Column("override_system", sa.String(256), nullable=True),
        sa.Column("override_code", sa.String(128), nullable=True),
        sa.Column("override_display", sa.String(256), nullable=True),
        sa.Column("user_comment", sa.Text(), nullable=True),
        sa.Column("orphan", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lcds_feedback"),
        sa.UniqueConstraint("dedupe_key", name="uq_lcds_feedback_dedupe_key"),
    )
    op.create_index("ix_lcds_feedback_card_uuid", "lcds_feedback", ["card_uuid"])
    op.create_index("ix_lcds_feedback_outcome_at", "lcds_feedback", ["outcome_at"])


def downgrade() -> None:
    op.drop_table("lcds_feedback")
    op.drop_table("lcds_judgement")
