"""`lumbar-cds db upgrade|current` and `lumbar-cds report`: the governance commands.

Role in the data flow: an edge. `db upgrade` runs the store's Alembic migrations against
CDS_DATABASE_URL (or the embedded SQLite file); `report` counts a period in the database and prints the
figures of the `report` module as a table, JSON or CSV. The parser is `cds_service/cli.py`'s
(so that `--help` imports no store); these are its handlers. Every failure is one line naming the
store (its URL without the password) and what to do, with the command's exit codes: 1 behind
(`db current`) or refused by the store, 2 a setting or URL that cannot be used, 3 unreachable.
"""

from __future__ import annotations

import argparse
import sys

import orjson

EXIT_NEGATIVE, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3


class _Stop(Exception):
    """A one-line failure: the message and the exit code."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:300]}" if text else type(error).__name__


def _settings(args: argparse.Namespace) -> dict:
    from cds_service.config import SettingsError, load_settings

    overrides = {}
    if getattr(args, "database_url", None):
        overrides["DATABASE_URL"] = args.database_url
    try:
        return load_settings(overrides)
    except SettingsError as error:
        raise _Stop(str(error).replace("CDS_DATABASE_URL=", "--database-url / CDS_DATABASE_URL=", 1)
                    if getattr(args, "database_url", None) else str(error), EXIT_USAGE) from None


def _safe_url(engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _engine(settings: dict):
    """The store's engine; a URL SQLAlchemy cannot use (no such dialect or driver) is a usage error."""
    from cds_service.governance.store.database import create_store_engine, database_url

    url, _ = database_url(settings)
    try:
        return create_store_engine(url)
    except Exception as error:  # NoSuchModuleError, ArgumentError, a missing driver (ImportError)
        raise _Stop(f"cannot use the database URL ({_first_line(error)}); give a SQLAlchemy URL such as "
                    "postgresql+psycopg://user@host/db or sqlite:////path/to/store.sqlite3", EXIT_USAGE) from None


def _store_error(engine, error: BaseException, doing: str) -> _Stop:
    from cds_service.governance.store.recorder import unreachable

    if unreachable(error):
        return _Stop(f"cannot reach the governance store {_safe_url(engine)} ({_first_line(error)}); check "
                     "that the database is up and that CDS_DATABASE_URL (or --database-url) names it",
                     EXIT_UNREACHABLE)
    return _Stop(f"{doing} failed on {_safe_url(engine)} ({_first_line(error)}); check the database "
                 "user's rights and `lumbar-cds db current`", EXIT_NEGATIVE)


def _run(command: str, body, args: argparse.Namespace) -> int:
    try:
        return body(args)
    except _Stop as stop:
        print(f"lumbar-cds {command}: {stop}", file=sys.stderr)
        return stop.code


def db_upgrade(args: argparse.Namespace) -> int:
    return _run("db upgrade", _db_upgrade, args)


def db_current(args: argparse.Namespace) -> int:
    return _run("db current", _db_current, args)


def report(args: argparse.Namespace) -> int:
    return _run("report", _report, args)


def _db_upgrade(args: argparse.Namespace) -> int:
    from cds_service.governance.store.database import upgrade

    engine = _engine(_settings(args))
    try:
        revision = upgrade(engine, args.revision)
    except Exception as error:
        raise _store_error(engine, error, "the migration") from None
    finally:
        engine.dispose()
    print(f"governance store {_safe_url(engine)} is at revision {revision}")
    return 0


def _db_current(args: argparse.Namespace) -> int:
    from cds_service.governance.store.database import current_revision, head_revision

    engine = _engine(_settings(args))
    try:
        current = current_revision(engine)
    except Exception as error:
        raise _store_error(engine, error, "reading the revision") from None
    finally:
        engine.dispose()
    head = head_revision()
    state = "current" if current == head else "behind: run `lumbar-cds db upgrade`"
    print(f"governance store {_safe_url(engine)}: revision {current or '(none)'}, head {head} ({state})")
    return 0 if current == head else EXIT_NEGATIVE


def _report(args: argparse.Namespace) -> int:
    from cds_service.governance.rendering import render_csv, render_table
    from cds_service.governance.screen.counts import csv_rows as screen_csv_rows
    from cds_service.governance.screen.counts import load_screen_counts
    from cds_service.governance.screen.counts import report_lines as screen_report_lines
    from cds_service.governance.store import Store
    from cds_service.governance.store.database import database_url, upgrade
    from cds_service.governance.store.labels import load_reason_labels

    if args.since and args.until and args.since > args.until:
        raise _Stop("--since must not be after --until", EXIT_USAGE)
    settings = _settings(args)
    engine = _engine(settings)
    try:
        if database_url(settings)[1]:
            upgrade(engine)  # a SQLite file is created and migrated, as the service does at start
        report = Store(engine).report(args.since, args.until, load_reason_labels(settings.get("CARDS_DIR")))
        screens = load_screen_counts(engine, args.since, args.until)  # the red-flag screen (§12.5)
    except Exception as error:
        raise _store_error(engine, error, "reading the judgements") from None
    finally:
        engine.dispose()
    report["screen"] = screens
    if args.format == "json":
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif args.format == "csv":
        sys.stdout.write(render_csv(report) + screen_csv_rows(screens))
    else:
        sys.stdout.write(render_table(report) + screen_report_lines(screens))
    return 0
