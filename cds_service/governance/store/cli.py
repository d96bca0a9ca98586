"""`lumbar-cds db upgrade|current` and `lumbar-cds report`: the governance commands.

Role in the data flow: an edge. `db upgrade` runs the store's Alembic migrations against
CDS_DATABASE_URL (or the embedded SQLite file); `report` loads a period's rows and prints the
figures of the pure `report` module as a table, JSON or CSV.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date

import orjson


def _settings(args: argparse.Namespace) -> dict:
    from cds_service.config import load_settings

    overrides = {}
    if getattr(args, "database_url", None):
        overrides["DATABASE_URL"] = args.database_url
    return load_settings(overrides)


def _safe_url(engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _db_upgrade(args: argparse.Namespace) -> int:
    from cds_service.governance.store.database import create_store_engine, database_url, upgrade

    url, _ = database_url(_settings(args))
    engine = create_store_engine(url)
    try:
        revision = upgrade(engine, args.revision)
    except Exception as error:
        print(f"lumbar-cds db upgrade: failed on {_safe_url(engine)}: {type(error).__name__}: "
              f"{str(error).splitlines()[0] if str(error) else ''}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"governance store {_safe_url(engine)} is at revision {revision}")
    return 0


def _db_current(args: argparse.Namespace) -> int:
    from cds_service.governance.store.database import (
        create_store_engine,
        current_revision,
        database_url,
        head_revision,
    )

    url, _ = database_url(_settings(args))
    engine = create_store_engine(url)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    state = "current" if current == head else "behind: run `lumbar-cds db upgrade`"
    print(f"governance store {_safe_url(engine)}: revision {current or '(none)'}, head {head} ({state})")
    return 0 if current == head else 1


def _report(args: argparse.Namespace) -> int:
    from cds_service.governance.report import build_report, render_csv, render_table
    from cds_service.governance.store import open_store

    if args.since and args.until and args.since > args.until:
        print("lumbar-cds report: --since must not be after --until", file=sys.stderr)
        return 2
    from cds_service.governance.store.labels import load_reason_labels

    settings = _settings(args)
    try:
        store = open_store(settings)
    except Exception as error:
        print(f"lumbar-cds report: cannot open the store: {type(error).__name__}", file=sys.stderr)
        return 1
    try:
        judgements, feedback = store.load_rows(args.since, args.until)
    except Exception as error:
        print(f"lumbar-cds report: cannot read {_safe_url(store.engine)} ({type(error).__name__}); "
              "is its schema current? run `lumbar-cds db current`", file=sys.stderr)
        return 1
    finally:
        store.engine.dispose()
    report = build_report(judgements, feedback, args.since, args.until,
                          load_reason_labels(settings.get("CARDS_DIR")))
    if args.format == "json":
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif args.format == "csv":
        sys.stdout.write(render_csv(report))
    else:
        sys.stdout.write(render_table(report))
    return 0


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {value!r}") from None


def register(subparsers) -> None:
    """Add `db` and `report` to the `lumbar-cds` command (called by cds_service/cli.py)."""
    db = subparsers.add_parser("db", help="governance store schema (Alembic migrations)",
                               description="Manage the schema of the judgement/feedback store.")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_commands.add_parser(
        "upgrade", help="migrate the store to the latest schema",
        description="Run the store's migrations against CDS_DATABASE_URL (or the embedded SQLite file).")
    upgrade.add_argument("--revision", default="head", help="target revision (default head)")
    upgrade.add_argument("--database-url", help="SQLAlchemy URL (default: CDS_DATABASE_URL)")
    upgrade.set_defaults(handler=_db_upgrade)
    current = db_commands.add_parser("current", help="print the store's schema revision",
                                     description="Print the store's revision; exit 1 if it is behind.")
    current.add_argument("--database-url", help="SQLAlchemy URL (default: CDS_DATABASE_URL)")
    current.set_defaults(handler=_db_current)

    report = subparsers.add_parser(
        "report", help="governance figures per card topic",
        description="Per topic: cards shown, accepted, overridden, override rate, top override "
                    "reasons, suggestion acceptance, ratings, orders judged per day (UTC days).")
    report.add_argument("--since", type=_date, help="first day, YYYY-MM-DD (inclusive)")
    report.add_argument("--until", type=_date, help="last day, YYYY-MM-DD (inclusive)")
    report.add_argument("--format", choices=("table", "json", "csv"), default="table",
                        help="output format (default table)")
    report.add_argument("--database-url", help="SQLAlchemy URL (default: CDS_DATABASE_URL)")
    report.set_defaults(handler=_report)
