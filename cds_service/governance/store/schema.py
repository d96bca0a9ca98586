"""The tables of the governance store (judgements issued, feedback received).

Role in the data flow: the one description of the schema, shared by the Alembic migrations'
autogenerate check, the background writer (`recorder`), the feedback endpoint and the report
queries (`queries`). Times are stored as naive UTC (`timestamp without time zone`) so SQLite and
PostgreSQL hold and compare them the same way. No patient id is ever stored: `patient_hash` is an
HMAC-SHA256 of it under the deployment's PATIENT_HASH_KEY (see `recorder.patient_hash`).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# Table names carry a prefix so the store can share a database with other applications.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

VERSION_TABLE = "lcds_alembic_version"

judgement = Table(
    "lcds_judgement",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recorded_at", DateTime(timezone=False), nullable=False, index=True),  # UTC
    Column("service_id", String(64), nullable=False),
    Column("hook", String(32), nullable=False),
    Column("hook_instance", String(128), nullable=False),
    Column("patient_hash", String(64), nullable=False, index=True),  # hex HMAC-SHA256
    Column("order_reference", String(256), nullable=False),
    Column("order_code", String(256)),  # "<system>|<code>"
    Column("order_recognised_by", String(16)),  # how the order was recognised as lumbar imaging
    Column("topic", String(64)),  # card topic code; NULL when no card was issued
    Column("indicator", String(16)),
    Column("rating", String(32)),  # pama-rating code; NULL when undetermined
    Column("card_uuid", String(128), index=True),
    Column("consult_id", String(128)),
    Column("suggestion_uuids", JSON, nullable=False, default=list),
    Column("shown", Boolean, nullable=False),  # False in silent mode: decided, not displayed
    # One row per hook call and order: a call repeated (by the EHR, or by nginx after a lost
    # connection) and rows written again from a spool are stored once (insert ... on conflict do nothing).
    UniqueConstraint("hook_instance", "order_reference", "service_id", name="uq_lcds_judgement_call_order"),
    # The report's GROUP BY reads the period's rows through this index (store.aggregates).
    Index("ix_lcds_judgement_period", "recorded_at", "topic", "rating", "shown"),
)

# The columns of the unique key, for ON CONFLICT.
JUDGEMENT_KEY = ("hook_instance", "order_reference", "service_id")

feedback = Table(
    "lcds_feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # sha256 of card | outcome | outcomeTimestamp (UTC): a retried POST is stored once.
    Column("dedupe_key", String(64), nullable=False, unique=True),
    Column("received_at", DateTime(timezone=False), nullable=False),  # UTC
    Column("service_id", String(64), nullable=False),
    Column("card_uuid", String(128), nullable=False, index=True),
    Column("outcome", String(16), nullable=False),  # accepted | overridden
    Column("outcome_at", DateTime(timezone=False), nullable=False, index=True),  # UTC
    Column("accepted_suggestions", JSON, nullable=False, default=list),
    Column("override_system", String(256)),
    Column("override_code", String(128)),
    Column("override_display", String(256)),
    # Every reason of the item ({system, code, display}), in the order given: Epic's
    # `overrideReasons` may hold several. NULL when none (and on rows stored before revision 0005,
    # whose one reason is in the three columns above).
    Column("override_reasons", JSON),
    # Free text typed by the clinician: stored for the committee, never logged or charted.
    Column("user_comment", Text),
    # True when no judgement with this card uuid had been recorded when the feedback arrived.
    Column("orphan", Boolean, nullable=False),
)

# The red-flag screen's table lives in its own module, on this metadata (clinical-specification.md §12).
from cds_service.governance.store import screen_table  # noqa: E402,F401
