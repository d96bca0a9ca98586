"""Recording judgements without slowing the hook answer: a queue and one writer thread.

Role in the data flow: the controller calls `record(request, result, now)` after evaluating a
hook call. The rows are built in the request thread (a few dicts and one HMAC: microseconds) and
handed to a bounded queue; a daemon writer thread inserts them in batches. `flush()` waits for the
queue to be written (the feedback endpoint calls it so a card just issued can be joined);
`close()` drains the queue and stops the thread: nothing accepted is lost on a clean shutdown.
The app calls `close()` from its shutdown hook and from `atexit`, which also runs when a gunicorn
worker exits (gunicorn ends workers with `sys.exit`).
"""

from __future__ import annotations

import hashlib
import hmac
import queue
import threading
from datetime import datetime

from cds_service.governance.store.queries import Store, naive_utc
from cds_service.logs import get_logger, log_event
from cds_service.render.result import EvaluationResult

log = get_logger("store")

_STOP = object()
BATCH = 200


def patient_hash(key: str, patient_id: str) -> str:
    """HMAC-SHA256 of the patient id: rows of one patient link up, the id is never stored."""
    return hmac.new(key.encode(), patient_id.encode(), hashlib.sha256).hexdigest()


class NullRecorder:
    """Records nothing (CDS_RECORD_JUDGEMENTS=false); feedback is acknowledged, not stored."""

    store: Store | None = None

    def record(self, request, result, now) -> None:
        pass

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        pass


class QueueRecorder:
    """Background writer of judgement rows into a `Store`."""

    def __init__(self, store: Store, patient_hash_key: str, mode: str, max_queue: int = 10_000):
        self.store = store
        self._key = patient_hash_key
        self._shown = mode != "silent"
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._closed = False
        self._close_lock = threading.Lock()
        self.dropped = 0  # rows refused because the queue was full (logged)
        self.failed = 0  # rows whose insert failed (logged)
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="governance-writer", daemon=True)
        self._thread.start()

    # --- request thread -----------------------------------------------------------------------

    def rows(self, request, result: EvaluationResult, now: datetime) -> list[dict]:
        recorded_at = naive_utc(now)
        hashed = patient_hash(self._key, request.patient_id)
        return [
            {
                "recorded_at": recorded_at,
                "service_id": request.service_id,
                "hook": request.hook,
                "hook_instance": request.hook_instance[:128],
                "patient_hash": hashed,
                "order_reference": (j.order_reference or "")[:256],
                "order_code": j.order_code[:256] if j.order_code else None,
                "topic": j.topic,
                "indicator": j.indicator,
                "rating": j.rating,
                "card_uuid": j.card_uuid,
                "consult_id": j.consult_id,
                "suggestion_uuids": list(j.suggestion_uuids),
                "shown": self._shown,
            }
            for j in result.judgements
        ]

    def record(self, request, result: EvaluationResult, now: datetime) -> None:
        if not result.judgements:
            return
        rows = self.rows(request, result, now)
        if self._closed:
            # After shutdown began (late request in a draining worker): write it here and now.
            self._write(rows)
            return
        try:
            self._queue.put_nowait(rows)
        except queue.Full:
            self.dropped += len(rows)
            log_event(log, "governance queue full: judgements not recorded", 30, rows=len(rows))

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until every row queued so far is written; False if `timeout` ran out."""
        if self._closed or not self._thread.is_alive():
            return True
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self) -> None:
        """Drain the queue and stop the writer. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
        self.store.engine.dispose()
        log_event(log, "governance writer closed", written=self.written, dropped=self.dropped,
                  failed=self.failed)

    # --- writer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[dict] = []
            markers: list[threading.Event] = []
            stop = False
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    markers.append(item)
                else:
                    batch.extend(item)
                if stop or len(batch) >= BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            self._write(batch)
            for marker in markers:
                marker.set()
            if stop:
                # Rows put after the stop marker (a race with close) are written too.
                rest: list[dict] = []
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(item, threading.Event):
                        item.set()
                    elif item is not _STOP:
                        rest.extend(item)
                self._write(rest)
                return

    def _write(self, rows: list[dict]) -> None:
        if not rows:
            return
        for attempt in (1, 2):
            try:
                self.store.insert_judgements(rows)
                self.written += len(rows)
                return
            except Exception as error:  # the store must never take the service down
                if attempt == 2:
                    self.failed += len(rows)
                    log_event(log, "governance write failed: judgements not recorded", 40,
                              rows=len(rows), exception=type(error).__name__)
