"""The governance report at scale: 1 million generated judgements in a throwaway store.

Role in the benchmark: part `report` of `make bench`. Generates `rows` judgements (shown,
silent and card-less; 90 days; 10 % of shown cards with feedback, a few orphans) into a
throwaway embedded SQLite file, and into PostgreSQL when BENCH_DATABASE_URL is given (a schema of
its own, dropped afterwards), then times `lumbar-cds report`'s path, `Store.report` (GROUP BY in
the database), against loading every row and counting in Python (`build_report(load_rows)`),
the way the report worked before. Both must give the same figures.

    python -m bench.report [--rows 1000000]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import orjson
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from cds_service.governance.report import build_report
from cds_service.governance.store import Store
from cds_service.governance.store.database import create_store_engine, upgrade
from cds_service.governance.store.schema import feedback, judgement

TOPICS = ("imaging-before-6-weeks", "cauda-equina-risk", "repeat-imaging", "prefer-mri-without-contrast")
DAYS = 90
CHUNK = 20_000
STATEMENT_TIMEOUT_S = 120  # PostgreSQL: the old row-loading query can run for many minutes


def generate(store: Store, rows: int, seed: int = 23) -> int:
    """Insert `rows` judgements and their feedback; return the number of feedback items."""
    chance = random.Random(seed)
    start = datetime(2026, 1, 1)
    items = 0
    with store.engine.begin() as connection:
        for offset in range(0, rows, CHUNK):
            batch, answers = [], []
            for n in range(offset, min(rows, offset + CHUNK)):
                topic = chance.choice(TOPICS) if chance.random() < 0.7 else None
                card = f"card-{n}" if topic else None
                suggestions = [f"s-{n}-0", f"s-{n}-1"] if card else []
                shown = chance.random() < 0.9
                batch.append({
                    "recorded_at": start + timedelta(seconds=chance.randrange(DAYS * 86_400)),
                    "service_id": "lumbar-imaging-order-sign", "hook": "order-sign", "hook_instance": f"b-{n}",
                    "patient_hash": "0" * 64, "order_reference": f"ServiceRequest/b-{n}", "order_code": None,
                    "order_recognised_by": "code", "topic": topic, "indicator": "warning" if topic else None,
                    "rating": chance.choice(("appropriate", "not-appropriate", "no-criteria-apply")),
                    "card_uuid": card, "consult_id": None, "suggestion_uuids": suggestions, "shown": shown,
                })
                if card and shown and chance.random() < 0.1:
                    answers.append(_feedback(chance, card, suggestions, batch[-1]["recorded_at"]))
                if n % 50_000 == 0:
                    answers.append(_feedback(chance, f"never-{n}", [], start))  # an orphan
            connection.execute(insert(judgement), batch)
            if answers:
                connection.execute(insert(feedback), answers)
            items += len(answers)
    return items


def _feedback(chance: random.Random, card: str, suggestions: list[str], at: datetime) -> dict:
    accepted = chance.random() < 0.5
    return {
        "dedupe_key": uuid.uuid4().hex, "received_at": at, "service_id": "lumbar-imaging-order-sign",
        "card_uuid": card, "outcome": "accepted" if accepted else "overridden",
        "outcome_at": at + timedelta(minutes=5), "accepted_suggestions": suggestions[:1] if accepted else [],
        "override_system": None if accepted else "urn:lumbar-imaging-cds:override-reason",
        "override_code": None if accepted else chance.choice(("patient-declines-wait", "specialist-request")),
        "override_display": None, "user_comment": None, "orphan": card.startswith("never-"),
    }


def _timed(call, *args) -> tuple[float, object]:
    started = time.perf_counter()
    value = call(*args)
    return round(time.perf_counter() - started, 3), value


def measure_store(store: Store, rows: int, periods) -> dict:
    generated_s, items = _timed(generate, store, rows)
    result: dict = {"rows": rows, "feedback_items": items, "generate_s": generated_s, "periods": []}
    for since, until in periods:
        sql_s, by_sql = _timed(store.report, since, until)
        period = {"since": since and since.isoformat(), "until": until and until.isoformat(),
                  "orders_judged": by_sql["totals"]["orders_judged"], "database_s": sql_s}
        try:
            python_s, by_rows = _timed(_report_from_rows, store, since, until)
            period.update(rows_into_python_s=python_s, same_figures=by_sql == by_rows)
        except OperationalError:  # PostgreSQL's statement_timeout: the old way did not finish
            period["rows_into_python_s"] = f"> {STATEMENT_TIMEOUT_S} (statement timeout)"
        result["periods"].append(period)
        print(f"bench.report {orjson.dumps(period).decode()}", file=sys.stderr, flush=True)
    return result


def _report_from_rows(store: Store, since, until) -> dict:
    """The report as it was made before: every row of the period into Python."""
    return build_report(*store.load_rows(since, until), since, until)


PERIODS = ((None, None), (date(2026, 2, 1), date(2026, 2, 28)), (date(2026, 3, 25), date(2026, 3, 31)))


def measure(rows: int = 1_000_000, database_url: str | None = None) -> dict:
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="lcds-bench-report-") as folder:
        engine = create_store_engine(f"sqlite:///{Path(folder) / 'report.sqlite3'}")
        upgrade(engine)
        try:
            results["sqlite"] = measure_store(Store(engine), rows, PERIODS)
        finally:
            engine.dispose()
    if database_url:
        schema = f"lcds_bench_{uuid.uuid4().hex[:10]}"
        admin = create_store_engine(database_url)
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(database_url).update_query_dict(
            {"options": f"-csearch_path={schema} -cstatement_timeout={STATEMENT_TIMEOUT_S * 1000}"})
        engine = create_store_engine(url.render_as_string(hide_password=False))
        try:
            upgrade(engine)
            results["postgresql"] = measure_store(Store(engine), rows, PERIODS)
        finally:
            engine.dispose()
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    return results


def main(argv: list[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    print(orjson.dumps(measure(args.rows, os.environ.get("BENCH_DATABASE_URL")), option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
