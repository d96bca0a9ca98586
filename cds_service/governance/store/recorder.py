"""Recording judgements without slowing the hook answer, and without losing one to a kill.

Role in the data flow: the controller calls `record(request, result, now)` after evaluating a
hook call, before the answer is sent. The rows are built in the request thread (a few dicts and
one HMAC), appended to this process's spool file (`Spool.log`: one write, flushed, so the rows
survive kill -9 of the process) and handed to a queue; a daemon writer thread inserts them in
batches and trims them from the spool once committed. `flush()` waits for the queue to be written
(the feedback endpoint calls it so a card just issued can be joined); `close()` drains the queue
and stops the thread. The app calls `close()` from its shutdown hook and from `atexit`.

What the writer guarantees:
- every write is idempotent: the store keeps one row per (service, hook instance, order)
  (`Store.insert_judgements`, ON CONFLICT DO NOTHING), so a call the EHR or nginx repeats, and
  rows written again from a spool, are stored once;
- a process killed with rows not yet committed leaves them in its spool file; the writer of a
  live process adopts such files (at its start and every ADOPT_EVERY_SECONDS) and writes them;
- a row the store refuses (PostgreSQL refuses NUL in text, for one) loses only itself: when a
  batch insert fails and the store is reachable, the batch is written again row by row, and the
  refused row is dropped and counted;
- a store outage loses nothing acknowledged: the batch stays in the spool (memory and file), new
  batches wait behind it, and the spool is retried with a growing pause (up to RETRY_MAX_SECONDS).
`stats()` gives the counters (written, retried, spooled, dropped and why) for /metrics.
"""

from __future__ import annotations

import hashlib
import hmac
import queue
import threading
import time
from datetime import datetime

from sqlalchemy import exc as sa_exc

from cds_service.governance.store.database import current_revision, head_revision
from cds_service.governance.store.queries import Store, naive_utc
from cds_service.governance.store.spool import Spool
from cds_service.logs import get_logger, log_event
from cds_service.render.result import EvaluationResult

log = get_logger("store")

_STOP = object()
BATCH = 200
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 10.0
ADOPT_EVERY_SECONDS = 5.0  # how often the writer looks for the spool files of killed processes
# Failures that say "the store is not reachable now", not "this row is refused".
_UNREACHABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
                sa_exc.TimeoutError, OSError)


def patient_hash(key: str, patient_id: str) -> str:
    """HMAC-SHA256 of the patient id: rows of one patient link up, the id is never stored."""
    return hmac.new(key.encode(), patient_id.encode(), hashlib.sha256).hexdigest()


def unreachable(error: BaseException) -> bool:
    return isinstance(error, _UNREACHABLE) or bool(getattr(error, "connection_invalidated", False))


def judgement_rows(request, result: EvaluationResult, now: datetime, hashed: str, shown: bool) -> list[dict]:
    """The store rows of one hook call's judgements (strings cut to their column sizes). Orders
    the call does not tell apart (no id, no fullUrl) get `#2`, `#3`... by position, which a
    repeated call gives alike: (hook instance, order reference) is the row's key in the store."""
    recorded_at = naive_utc(now)
    rows, seen = [], set()
    for j in result.judgements:
        reference = (j.order_reference or "")[:250]
        position = 1
        while (reference if position == 1 else f"{reference}#{position}") in seen:
            position += 1
        reference = reference if position == 1 else f"{reference}#{position}"
        seen.add(reference)
        rows.append({
            "recorded_at": recorded_at,
            "service_id": request.service_id,
            "hook": request.hook,
            "hook_instance": request.hook_instance[:128],
            "patient_hash": hashed,
            "order_reference": reference,
            "order_code": j.order_code[:256] if j.order_code else None,
            "order_recognised_by": j.order_recognised_by[:16] if j.order_recognised_by else None,
            "topic": j.topic,
            "indicator": j.indicator,
            "rating": j.rating,
            "card_uuid": j.card_uuid,
            "consult_id": j.consult_id,
            "suggestion_uuids": list(j.suggestion_uuids),
            "shown": shown,
        })
    return rows


class NullRecorder:
    """Records nothing (CDS_RECORD_JUDGEMENTS=false); feedback is acknowledged, not stored."""

    store: Store | None = None

    def readiness(self) -> tuple[bool, dict]:
        return True, {"status": "ready"}

    def record(self, request, result, now) -> None:
        pass

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def stats(self) -> dict:
        return {}

    def close(self) -> None:
        pass


class QueueRecorder:
    """Background writer of judgement rows into a `Store`, with a spool for outages."""

    def __init__(self, store: Store, patient_hash_key: str, mode: str, max_queue: int = 10_000,
                 spool: Spool | None = None):
        self.store = store
        self._key = patient_hash_key
        self._shown = mode != "silent"
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._closed = False
        self._close_lock = threading.Lock()
        self._write_lock = threading.RLock()  # the writer thread, and late writes after close
        self.spool = spool if spool is not None else Spool(None)
        self.written = 0  # rows inserted (first try or retried)
        self.retried = 0  # of them, rows written from the spool
        self.spooled = 0  # rows put in the spool because the store was unreachable
        self.dropped_queue_full = 0  # kept at 0: a full queue now spools its rows (the metric stays)
        self.dropped_refused = 0  # rows the store refused on their own (logged)
        self.dropped_at_close = 0  # rows still spooled in memory only when the process ended
        self._retry_at, self._pause = 0.0, RETRY_FIRST_SECONDS
        self._outage = self.spool.adopt() > 0  # rows of a previous process wait: written first
        self._adopt_at = time.monotonic() + ADOPT_EVERY_SECONDS
        self._thread = threading.Thread(target=self._run, name="governance-writer", daemon=True)
        self._thread.start()

    def readiness(self) -> tuple[bool, dict]:
        """What `/readyz` answers (`store_readiness`)."""
        return store_readiness(self)

    @property
    def dropped(self) -> int:
        return self.dropped_queue_full + self.dropped_refused + self.spool.dropped + self.dropped_at_close

    def stats(self) -> dict:
        return {
            "written": self.written, "retried": self.retried, "spooled": self.spooled,
            "spool_pending": len(self.spool), "spool_on_disk": self.spool.on_disk,
            "queued": self._queue.qsize(), "dropped": self.dropped,
            "dropped_queue_full": self.dropped_queue_full, "dropped_refused": self.dropped_refused,
            "dropped_spool_full": self.spool.dropped, "dropped_at_close": self.dropped_at_close,
        }

    # --- request thread -----------------------------------------------------------------------

    def rows(self, request, result: EvaluationResult, now: datetime) -> list[dict]:
        return judgement_rows(request, result, now, patient_hash(self._key, request.patient_id), self._shown)

    def record(self, request, result: EvaluationResult, now: datetime) -> None:
        """Log the rows in the spool file (before the answer leaves: a kill loses none), then
        queue them for the writer."""
        if not result.judgements:
            return
        rows = self.rows(request, result, now)
        ticket = self.spool.log(rows)
        if self._closed:
            # After shutdown began (late request in a draining worker): write it here and now.
            self._write([(ticket, rows)])
            return
        try:
            self._queue.put_nowait((ticket, rows))
        except queue.Full:  # the writer is far behind: the rows wait with the spooled ones
            with self._write_lock:
                self.spool.defer([ticket])
                self.spooled += len(rows)
                self._outage, self._retry_at = True, 0.0
            log_event(log, "governance queue full: judgements spooled", 30, rows=len(rows))

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until every row queued so far is written (or spooled); False if `timeout` ran out."""
        if self._closed or not self._thread.is_alive():
            return True
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self) -> None:
        """Drain the queue and stop the writer. Idempotent. Spooled rows stay in the file."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
        with self._write_lock:
            if len(self.spool):
                self._retry_spool()  # one last try, whatever the pause
            if len(self.spool):
                kept = self.spool.on_disk
                self.dropped_at_close += 0 if kept else len(self.spool)
                log_event(log, "governance store unreachable at exit: judgements "
                          + ("kept in the spool file" if kept else "lost"), 30 if kept else 40,
                          rows=len(self.spool))
            self.spool.close()
        self.store.engine.dispose()
        log_event(log, "governance writer closed", **self.stats())

    # --- writer thread ------------------------------------------------------------------------

    def _next_item(self):
        """The next queued item; None when a spool retry or a look for dead processes' files is due."""
        due = self._retry_at if self._outage else self._adopt_at
        try:
            return self._queue.get(timeout=max(0.05, due - time.monotonic()))
        except queue.Empty:
            return None

    def _run(self) -> None:
        while True:
            if time.monotonic() >= self._adopt_at:
                self._adopt_orphans()
            batch, markers, stop = _take_batch(self._queue, self._next_item())
            self._write(batch)
            for marker in markers:
                marker.set()
            if stop:
                self._write(_take_rest(self._queue))  # rows put after the stop marker (a race with close)
                return

    def _adopt_orphans(self) -> None:
        """Rows a killed process logged but never saw committed: taken over and written (again;
        the store's unique key keeps one)."""
        self._adopt_at = time.monotonic() + ADOPT_EVERY_SECONDS
        with self._write_lock:
            if self.spool.adopt():
                self._outage, self._retry_at = True, 0.0

    def _write(self, batch: list[tuple[int, list[dict]]]) -> None:
        with self._write_lock:
            if self._outage and time.monotonic() >= self._retry_at:
                self._retry_spool()
            if not batch:
                return
            tickets = [ticket for ticket, _ in batch]
            rows = [row for _, group in batch for row in group]
            # While the spool holds rows, new rows wait behind them, in order.
            done = 0 if self._outage else self._insert(rows)
            if done < len(rows):
                self.spool.defer(tickets)  # already on disk; written again in full (idempotent)
                self.spooled += len(rows)
            else:
                self.spool.committed(tickets)

    def _insert(self, rows: list[dict]) -> int:
        """Insert `rows`; return how many were dealt with (written, or refused and dropped) before
        the store turned out unreachable (then the outage is noted and the rest is the caller's)."""
        try:
            self.store.insert_judgements(rows)
            self.written += len(rows)
            return len(rows)
        except Exception as error:  # the store must never take the service down
            if unreachable(error):
                self._note_outage(error)
                return 0
        # The store answers but refused the batch: row by row, so a bad row loses only itself.
        for index, row in enumerate(rows):
            try:
                self.store.insert_judgements([row])
                self.written += 1
            except Exception as error:
                if unreachable(error):
                    self._note_outage(error)
                    return index
                self.dropped_refused += 1
                log_event(log, "governance store refused a judgement: dropped", 40,
                          exception=type(error).__name__, hookInstance=row.get("hook_instance", "")[:64])
        return len(rows)

    def _note_outage(self, error: BaseException) -> None:
        if not self._outage:
            log_event(log, "governance store unreachable: judgements spooled until it answers", 40,
                      exception=type(error).__name__, on_disk=self.spool.on_disk)
        self._outage = True
        self._retry_at = time.monotonic() + self._pause
        self._pause = min(RETRY_MAX_SECONDS, self._pause * 2)

    def _retry_spool(self) -> None:
        """Write the spool, oldest first, until it is empty or the store is unreachable again."""
        self.spool.adopt()  # rows of processes that died meanwhile
        before = self.written
        while len(self.spool):
            chunk = self.spool.peek(BATCH)
            done = self._insert(chunk)
            self.spool.pop(done)
            if done < len(chunk):
                self.retried += self.written - before
                return
        self.retried += self.written - before
        if self._outage:
            log_event(log, "governance store answers again: spooled judgements written",
                      rows=self.written - before)
        self._outage = False
        self._pause = RETRY_FIRST_SECONDS


def _take_batch(source: queue.Queue, item) -> tuple[list[tuple[int, list[dict]]], list[threading.Event], bool]:
    """(tickets and rows, flush markers, stop seen) from `item` and what else is queued, up to BATCH rows."""
    batch: list[tuple[int, list[dict]]] = []
    markers: list[threading.Event] = []
    stop = False
    rows = 0
    while item is not None:
        if item is _STOP:
            stop = True
        elif isinstance(item, threading.Event):
            markers.append(item)
        else:
            batch.append(item)
            rows += len(item[1])
        if stop or rows >= BATCH:
            break
        try:
            item = source.get_nowait()
        except queue.Empty:
            break
    return batch, markers, stop


def _take_rest(source: queue.Queue) -> list[tuple[int, list[dict]]]:
    rest: list[tuple[int, list[dict]]] = []
    while True:
        try:
            item = source.get_nowait()
        except queue.Empty:
            return rest
        if isinstance(item, threading.Event):
            item.set()
        elif item is not _STOP:
            rest.append(item)


def store_readiness(recorder) -> tuple[bool, dict]:
    """(ready, body) for `/readyz`: can this replica answer hooks? Fixed text, no URL, no data.

    Ready when the store answers and its schema is at head, and also while the store cannot be
    reached but the spool takes the judgements (the body says so: `"store": "unreachable"`,
    `"judgements": "spooled"`): an outage of the shared store must not take every replica out
    of the load balancer, which is what the spool is for. Not ready when the schema is behind
    (`lumbar-cds db upgrade` first) or the store is down and the spool is full. A recorder
    without a store (recording off) is ready."""
    store = getattr(recorder, "store", None)
    if store is None:
        return True, {"status": "ready"}
    try:
        current = current_revision(store.engine)
    except Exception:  # any driver error: the store cannot be reached (or read)
        spool = recorder.spool
        if spool.full:
            return False, {"status": "not ready", "reason": "governance store unreachable and the spool is full"}
        return True, {"status": "ready", "store": "unreachable", "judgements": "spooled",
                      "spool_pending": len(spool) + spool.in_flight, "spool_on_disk": spool.on_disk}
    if current != head_revision():
        return False, {"status": "not ready",
                       "reason": "governance store schema is not current: run `lumbar-cds db upgrade`"}
    return True, {"status": "ready"}
