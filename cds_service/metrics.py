"""Metrics: every Prometheus metric the service exposes, defined once, and the helpers that count.

Role in the data flow: cross-cutting (a shared utility, like `logs`). The stages count what they
see through the helpers below (requests, cards, ratings, FHIR fetches, store writes, JWT
refusals); `web.ops` serves them at `/metrics` in the Prometheus text format. No label ever holds
patient data: labels are routes (the rule, never the raw path), status codes, card topics and
indicators, ratings, prefetch key names, outcome kinds and a fixed list of refusal reasons.

Under `lumbar-cds serve` each gunicorn worker writes its values to files in
`PROMETHEUS_MULTIPROC_DIR` (prometheus-client's multiprocess mode; `serve` sets it to a fresh
folder of its own, removed at exit) and a scrape, whichever worker answers it, adds up every
worker's. Without it (tests, `evaluate`) the process's own registry is served.
"""

from __future__ import annotations

import os
import threading
import weakref

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

PREFIX = "lumbar_cds"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # set by `lumbar-cds serve` (prometheus-client reads it)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUEST_SECONDS = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "Time from the first byte of a request to its answer, authentication included, in seconds.",
    ("route", "method", "status"), buckets=_LATENCY_BUCKETS)
CARDS = Counter(f"{PREFIX}_cards_total", "Cards issued, by card topic and indicator (silent mode included).",
                ("topic", "indicator"))
RATINGS = Counter(f"{PREFIX}_ratings_total",
                  "Orders judged, by PAMA rating; 'withheld' when the rating rests on incomplete data.",
                  ("rating",))
FHIR_FETCHES = Counter(
    f"{PREFIX}_fhir_fetches_total",
    "Prefetch keys fetched from the EHR's FHIR server, by key and outcome (complete, or why incomplete).",
    ("key", "outcome"))
FHIR_FETCH_SECONDS = Histogram(f"{PREFIX}_fhir_fetch_duration_seconds",
                               "Time to fetch one prefetch key from the FHIR server (all its pages), in seconds.",
                               ("key",), buckets=_LATENCY_BUCKETS)
FHIR_REQUESTS = Counter(f"{PREFIX}_fhir_requests_total", "HTTP requests sent to EHR FHIR servers.")
GATHER_BUDGET_EXHAUSTED = Counter(
    f"{PREFIX}_gather_budget_exhausted_total",
    "Hook calls whose gathering budget (CDS_GATHER_BUDGET_MS) ran out before every key was read.")
STORE_WRITTEN = Counter(f"{PREFIX}_store_rows_written_total", "Judgement rows written to the governance store.")
STORE_RETRIED = Counter(f"{PREFIX}_store_rows_retried_total",
                        "Of the rows written, those written from the spool after the store was unreachable.")
STORE_SPOOLED = Counter(f"{PREFIX}_store_rows_spooled_total",
                        "Judgement rows put in the spool because the store was unreachable.")
STORE_DROPPED = Counter(f"{PREFIX}_store_rows_dropped_total", "Judgement rows lost, by reason.", ("reason",))
STORE_SPOOL_PENDING = Gauge(f"{PREFIX}_store_spool_pending_rows", "Rows waiting in the spools of live workers.",
                            multiprocess_mode="livesum")
STORE_REACHABLE = Gauge(f"{PREFIX}_store_reachable",
                        "1 while the governance store answered this worker's last readiness check, 0 while "
                        "it did not (judgements spooled).", multiprocess_mode="livemin")
JWT_REFUSALS = Counter(f"{PREFIX}_jwt_refusals_total", "Client JWTs refused (401), by reason.", ("reason",))

# The reasons security.auth gives, reduced to fixed labels (the text after them may hold what
# the caller sent: an algorithm name, a kid). tests/test_metrics.py checks every reason maps.
JWT_REASONS = (
    "no Authorization header", "Authorization scheme is not bearer", "Authorization has no single token",
    "token too long", "malformed token", "algorithm not allowed", "critical header extensions are not supported",
    "no kid in the header", "untrusted issuer", "jku is not on the issuer's allowlist", "unknown kid",
    "token expired", "token issued in the future", "bad signature", "missing claim", "invalid token",
    "aud is not the URL that was called", "tenant not trusted for this issuer", "jti must be a non-empty string",
    "exp is more than an hour away", "jti cannot be checked", "replay store unavailable", "jti replayed",
    "key does not fit the algorithm", "a private key was published as a trusted key", "trusted key is unusable",
    "RSA key shorter than 2048 bits",
)
_DROP_REASONS = {"dropped_queue_full": "queue-full", "dropped_refused": "refused",
                 "dropped_spool_full": "spool-full", "dropped_at_close": "at-close"}


def jwt_reason(text: str) -> str:
    """A refusal reason as a label: one of JWT_REASONS, else 'other'."""
    if text.startswith("key ") and (" does not fit " in text or " is for " in text):
        return "key does not fit the algorithm"
    for reason in JWT_REASONS:
        if text.startswith(reason):
            return reason
    return "other"


def jwt_refused(reason: str) -> None:
    JWT_REFUSALS.labels(jwt_reason(reason)).inc()


_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def request_done(route: str, method: str, status: int, seconds: float) -> None:
    """`route` is the URL rule (e.g. /cds-services/<service_id>), never the path sent."""
    method = method if method in _METHODS else "other"
    REQUEST_SECONDS.labels(route, method, str(status)).observe(max(0.0, seconds))


def judged(judgements) -> None:
    """Count one call's cards and ratings (render.result.Judgement items)."""
    for judgement in judgements:
        if judgement.topic:
            CARDS.labels(judgement.topic, judgement.indicator or "none").inc()
        RATINGS.labels(judgement.rating or "withheld").inc()


def fhir_fetch(key: str, outcome: str, seconds: float) -> None:
    FHIR_FETCHES.labels(key, outcome).inc()
    FHIR_FETCH_SECONDS.labels(key).observe(max(0.0, seconds))


def gathering_done(requests: int, budget_exhausted: bool) -> None:
    if requests:
        FHIR_REQUESTS.inc(requests)
    if budget_exhausted:
        GATHER_BUDGET_EXHAUSTED.inc()


_seen: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # recorder -> its counters when last counted
_seen_lock = threading.Lock()


def store_stats(recorder, stats: dict) -> None:
    """Turn a recorder's running totals (`stats()`) into counter increments since the last call."""
    if not stats:
        return
    with _seen_lock:
        before = _seen.setdefault(recorder, {})
        for name, counter in (("written", STORE_WRITTEN), ("retried", STORE_RETRIED), ("spooled", STORE_SPOOLED)):
            delta = int(stats.get(name, 0)) - before.get(name, 0)
            if delta > 0:
                counter.inc(delta)
            before[name] = int(stats.get(name, 0))
        for name, label in _DROP_REASONS.items():
            delta = int(stats.get(name, 0)) - before.get(name, 0)
            if delta > 0:
                STORE_DROPPED.labels(label).inc(delta)
            before[name] = int(stats.get(name, 0))
        STORE_SPOOL_PENDING.set(int(stats.get("spool_pending", 0)))


def store_reachable(reachable: bool | None) -> None:
    """What `/readyz` found: the store answered (True), did not (False), or schema behind (None: unchanged)."""
    if reachable is not None:
        STORE_REACHABLE.set(1 if reachable else 0)


def exposition() -> tuple[bytes, str]:
    """(body, content type) of a scrape: every worker's values under gunicorn, else this process's."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """gunicorn's child_exit hook: a dead worker's live gauges stop counting."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
