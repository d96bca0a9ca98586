"""The red-flag screen's table: one row per screen offered on a card, completed or not.

Role in the data flow: part of the governance store's schema (registered on `schema.metadata`,
created by migration 0003). A row is written when a card offers the screen (what its page needs:
the open questions and the "from the record" lines, the order's name, age and sex -- never the
patient's name or id), completed when the clinician submits it (the QuestionnaireResponse), and
marked used by the next hook call whose decision it entered: the report counts screens offered,
completed, and how often they changed the decision (docs/clinical-specification.md §12).
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, DateTime, Index, String, Table

from cds_service.governance.store.schema import metadata

screen = Table(
    "lcds_screen",
    metadata,
    Column("id", String(32), primary_key=True),  # the random session id the link's handle signs
    Column("created_at", DateTime(timezone=False), nullable=False, index=True),  # UTC
    Column("expires_at", DateTime(timezone=False), nullable=False),
    Column("service_id", String(64), nullable=False),
    Column("patient_hash", String(64), nullable=False),  # as in lcds_judgement
    Column("user_reference", String(256)),  # the hook's userId (Practitioner/...), not a patient id
    Column("order_reference", String(256), nullable=False),
    Column("offered_topic", String(64)),
    Column("offered_rating", String(32)),  # NULL: withheld
    Column("page", JSON, nullable=False),  # open questions, "from the record" lines, order, age, sex
    Column("completed_at", DateTime(timezone=False), index=True),
    Column("response", JSON),  # the QuestionnaireResponse
    Column("used_at", DateTime(timezone=False)),
    Column("used_topic", String(64)),
    Column("used_rating", String(32)),
    Column("changed", Boolean),  # the decision (topic or rating) differs from the one offered on
    # Every hook call reads the patient's completed screens: through this index it reads those
    # alone, not every screen ever offered to the patient (migration 0006).
    Index("ix_lcds_screen_patient_completed", "patient_hash", "completed_at"),
)
