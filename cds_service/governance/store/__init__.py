"""The governance store: every judgement the service issues, and the feedback clinicians give.

Role in the data flow: built once by `create_app` (`create_recorder(settings)`); the controller
hands each hook call's judgements to `recorder.record(...)` (queued, written by a background
thread); the feedback endpoint, the dashboard and `lumbar-cds report` use `recorder.store`.
Embedded SQLite by default (file created and migrated at start-up, as is a SQLite file named by
CDS_DATABASE_URL); PostgreSQL or another server via CDS_DATABASE_URL, migrated by `lumbar-cds db
upgrade`. `store_readiness` is what `/readyz` answers: can this replica answer hooks (a store outage the
spool covers is no unreadiness). Every judgement goes through a spool file (`spool`), by default
in the instance folder's `spool/`, until the store has it.
"""

from __future__ import annotations

from pathlib import Path

from cds_service.governance.store.database import (
    create_store_engine,
    current_revision,
    database_url,
    head_revision,
    upgrade,
)
from cds_service.governance.store.queries import FeedbackCounts, Store, naive_utc
from cds_service.governance.store.recorder import (
    NullRecorder,
    QueueRecorder,
    patient_hash,
    store_readiness,
)
from cds_service.governance.store.spool import Spool
from cds_service.logs import get_logger, log_event, warn_once

__all__ = [
    "FeedbackCounts", "NullRecorder", "QueueRecorder", "Store", "create_recorder", "naive_utc",
    "open_store", "patient_hash", "store_readiness",
]

log = get_logger("store")

DEFAULT_HASH_KEY = "change-me-in-production"


def open_store(settings: dict, migrate_embedded: bool = True) -> Store:
    """The store of these settings; a SQLite file (embedded or CDS_DATABASE_URL) is created and
    migrated here."""
    url, migrated_at_start = database_url(settings)
    engine = create_store_engine(url)
    if migrated_at_start and migrate_embedded:
        upgrade(engine)
    return Store(engine)


def _check_schema(store: Store) -> None:
    """A server database is migrated by the operator: say so at start-up if it is behind."""
    try:
        current = current_revision(store.engine)
    except Exception as error:
        log_event(log, "governance store unreachable at start-up", 40, exception=type(error).__name__)
        return
    if current != head_revision():
        log_event(log, "governance store schema is not current: run `lumbar-cds db upgrade`", 40,
                  current=current, expected=head_revision())


def create_recorder(settings: dict):
    if not settings.get("RECORD_JUDGEMENTS", True):
        return NullRecorder()
    store = open_store(settings)
    if not database_url(settings)[1]:
        _check_schema(store)
    if settings.get("PATIENT_HASH_KEY") == DEFAULT_HASH_KEY:
        warn_once(log, "patient-hash-key", "CDS_PATIENT_HASH_KEY is the shipped default: set a secret key in production")
    spool = Spool(spool_dir(settings), int(settings.get("SPOOL_MAX_ROWS") or 100_000),
                  int(settings.get("SPOOL_MAX_BYTES") or 50_000_000))
    return QueueRecorder(store, settings.get("PATIENT_HASH_KEY") or DEFAULT_HASH_KEY,
                         settings.get("MODE", "active"), spool=spool)


def spool_dir(settings: dict) -> Path:
    """CDS_SPOOL_DIR, else `spool/` in the instance folder, beside the embedded SQLite file."""
    if settings.get("SPOOL_DIR"):
        return Path(settings["SPOOL_DIR"]).expanduser().resolve()
    database = Path(settings.get("DATABASE_PATH") or "instance/lumbar-cds.sqlite3")
    return database.expanduser().resolve().parent / "spool"
