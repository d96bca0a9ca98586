"""Where the governance store lives and how its schema is brought up to date.

Role in the data flow: start-up only. Resolves the SQLAlchemy URL (CDS_DATABASE_URL, else the
embedded SQLite file at CDS_DATABASE_PATH), builds the engine, and runs the Alembic migrations
shipped inside the package (`migrations/`) programmatically: no alembic.ini is needed. The
embedded default, and any SQLite file named by CDS_DATABASE_URL, is migrated at start-up; a server
database is migrated by `lumbar-cds db upgrade` (an operator's deliberate step, as schema changes
on a shared server usually are).
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from cds_service.governance.store.schema import VERSION_TABLE

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def database_url(settings: dict) -> tuple[str, bool]:
    """(SQLAlchemy URL, migrated_at_start). A SQLite file, the embedded default or a
    CDS_DATABASE_URL `sqlite:///...`, is migrated at start-up (its path made absolute, its folder
    created); a server database is migrated by `lumbar-cds db upgrade`."""
    if settings.get("DATABASE_URL"):
        url = settings["DATABASE_URL"]
        file = sqlite_file(url)
        if file is None:
            return url, False
        Path(file).parent.mkdir(parents=True, exist_ok=True)
        return make_url(url).set(database=file).render_as_string(hide_password=False), True
    path = Path(settings.get("DATABASE_PATH") or "instance/lumbar-cds.sqlite3").expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}", True


def create_store_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 15})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no branch
            # WAL: gunicorn workers write the same file while the dashboard reads it.
            # synchronous=NORMAL (in WAL mode): a commit is in the kernel's hands, not fsync'd
            # (that is done at each checkpoint), so a commit survives kill -9 of the process,
            # and a power cut may lose the last moments, as with the spool file (spool.py). FULL
            # would fsync every commit: milliseconds for each hook call that offers a red-flag
            # screen (its row is committed before the card leaves) and for each writer batch.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=15000")
            cursor.close()

        return engine
    connect_args = {"connect_timeout": 5} if parsed.get_backend_name() == "postgresql" else {}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_table", VERSION_TABLE)
    # `%` must be doubled in ConfigParser values; the URL is only a fallback for offline mode.
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


@functools.lru_cache(maxsize=1)  # the shipped migrations do not change while the process runs
def head_revision() -> str:
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


@contextlib.contextmanager
def _file_lock(url: str):
    """Serialise start-up migrations of one SQLite file across gunicorn workers."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        yield
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: single-process servers only
        yield
        return
    with open(parsed.database + ".migrate-lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Run the migrations up to `revision`; return the revision now in place."""
    config = alembic_config(engine)
    with _file_lock(engine.url.render_as_string(hide_password=False)):
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    return current_revision(engine) or ""


def sqlite_file(url: str) -> str | None:
    """The absolute path of a SQLite file URL; None for a server or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:" \
            and not parsed.database.startswith("file:"):
        return os.path.abspath(os.path.expanduser(parsed.database))
    return None
