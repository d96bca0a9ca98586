"""Judgement: one row per hook call and order (unique key), and the report's period index.

Rows recorded twice before this revision (a call the EHR repeated, a spool written again after a
crash) are reduced to the first one, then the unique constraint is added: from here on the
recorder's insert ... ON CONFLICT DO NOTHING keeps one. The index (recorded_at, topic, rating,
shown) serves the report's GROUP BY over a period.

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM lcds_judgement WHERE id NOT IN (SELECT MIN(id) FROM lcds_judgement "
        "GROUP BY hook_instance, order_reference, service_id)"
    )
    with op.batch_alter_table("lcds_judgement") as batch:
        batch.create_unique_constraint("uq_lcds_judgement_call_order",
                                       ["hook_instance", "order_reference", "service_id"])
    op.create_index("ix_lcds_judgement_period", "lcds_judgement", ["recorded_at", "topic", "rating", "shown"])


def downgrade() -> None:
    op.drop_index("ix_lcds_judgement_period", table_name="lcds_judgement")
    with op.batch_alter_table("lcds_judgement") as batch:
        batch.drop_constraint("uq_lcds_judgement_call_order", type_="unique")
