"""The red-flag screen: one index on (patient_hash, completed_at) instead of patient_hash alone.

Every hook call asks for the patient's screens completed since a date (`ScreenService.
attested_for`), and a call that used them asks for its patient's completed, unused ones. With an
index on patient_hash alone, both read every screen ever offered to the patient (one per card
that offered it, most never completed); on (patient_hash, completed_at) they read only the
completed ones. The old index is its prefix, so it goes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_lcds_screen_patient_completed", "lcds_screen", ["patient_hash", "completed_at"])
    op.drop_index("ix_lcds_screen_patient_hash", table_name="lcds_screen")


def downgrade() -> None:
    op.create_index("ix_lcds_screen_patient_hash", "lcds_screen", ["patient_hash"])
    op.drop_index("ix_lcds_screen_patient_completed", table_name="lcds_screen")
