"""The spool: every judgement row on disk before its hook answer leaves, until the store has it.

Role in the data flow: between the request thread, the recorder's writer thread and the store.
- `log(rows)` (request thread, before the answer is sent): the rows are appended to this
  process's JSON-lines file and flushed to the kernel, so they survive the process being killed
  (kill -9, a worker timeout, an out-of-memory kill); the rows are *in flight*.
- `committed(tickets)` (writer, after the store's commit): in-flight rows are trimmed; when
  nothing else waits, the file is truncated to nothing (else rewritten once it holds mostly
  trimmed rows).
- `defer(tickets)` (writer, store unreachable): in-flight rows become *spooled*, held oldest
  first (`peek`, `pop`) until the store answers again; `add(rows)` spools rows not logged yet
  (fsync'd). The spool is bounded in rows and bytes: past either bound the oldest spooled rows
  are dropped, as a last resort, and counted.
Each process writes its own file (CDS_SPOOL_DIR; by default `spool/` beside the embedded SQLite
file) and holds an exclusive `flock` on it while it lives; a file whose lock is free belongs to a
process that is gone, and `adopt` (at a writer's start, and every few seconds) takes its rows
over. A row can thus reach the store twice (killed between commit and trim, or adopted while
a retry was on its way): the store's unique key per hook call and order makes the second write a
no-op, so each judgement is stored once. Without a folder the rows are kept in memory only.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections import deque
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import orjson

from cds_service.logs import get_logger, log_event

try:
    import fcntl
except ImportError:  # not POSIX: a file spool is still written, orphans are not adopted
    fcntl = None  # type: ignore[assignment]

log = get_logger("store")

REWRITE_EVERY = 5000
REWRITE_BYTES = 4_000_000  # a file this much larger than its live rows is rewritten
SUFFIX = ".jsonl"


def encode(row: dict) -> bytes:
    return orjson.dumps(row) + b"\n"  # datetimes as ISO 8601 (naive UTC, as stored)


def decode(line: bytes) -> dict:
    row = orjson.loads(line)
    row["recorded_at"] = datetime.fromisoformat(row["recorded_at"])
    return row


class Spool:
    """In-flight rows (`log`, `committed`, `defer`) and spooled rows (`add`, `peek`, `pop`),
    one file per process; `adopt` the files of dead processes; `close`."""

    def __init__(self, directory: str | Path | None, max_rows: int = 100_000, max_bytes: int = 50_000_000):
        self.directory = Path(directory) if directory else None
        self.max_rows = max(1, max_rows)
        self.max_bytes = max(1, max_bytes)
        self._rows: deque[tuple[dict, bytes]] = deque()  # spooled, oldest first
        self._in_flight: dict[int, list[tuple[dict, bytes]]] = {}  # ticket -> rows
        self._in_flight_bytes = 0
        self._next_ticket = 0
        self._lock = threading.RLock()  # request threads log, the writer trims
        self.bytes = 0  # of the spooled rows
        self.dropped = 0  # oldest rows dropped at a bound
        self._file = None  # this process's spool file, opened on first use
        self._file_bytes = 0
        self._path: Path | None = None
        self._pid = os.getpid()
        self._taken_since_rewrite = 0
        self.on_disk = self.directory is not None

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def in_flight(self) -> int:
        return sum(len(rows) for rows in self._in_flight.values())

    @property
    def full(self) -> bool:
        return len(self._rows) >= self.max_rows or self.bytes >= self.max_bytes

    # --- in flight: logged before the answer, trimmed after the commit ----------------------------

    def log(self, rows: list[dict]) -> int:
        """Append `rows` to the file (flushed: a kill of the process does not lose them); return
        the ticket that `committed` or `defer` takes."""
        lines = [(row, encode(row)) for row in rows]
        data = b"".join(line for _, line in lines)
        with self._lock:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._in_flight[ticket] = lines
            self._in_flight_bytes += len(data)
            self._write(data, sync=False)
        return ticket

    def committed(self, tickets: Iterable[int]) -> None:
        """The store has these rows: trim them."""
        with self._lock:
            for ticket in tickets:
                lines = self._in_flight.pop(ticket, ())
                self._in_flight_bytes -= sum(len(line) for _, line in lines)
            self._trim()

    def defer(self, tickets: Iterable[int]) -> None:
        """The store could not take these rows: they wait with the spooled rows (already on disk)."""
        with self._lock:
            moved = []
            for ticket in sorted(tickets):
                lines = self._in_flight.pop(ticket, ())
                self._in_flight_bytes -= sum(len(line) for _, line in lines)
                moved.extend(lines)
            self._spool(moved, append=False)

    # --- spooled: waiting for the store ------------------------------------------------------------

    def add(self, rows: list[dict]) -> None:
        """Spool rows not logged before (appended and fsync'd)."""
        with self._lock:
            self._spool([(row, encode(row)) for row in rows], append=True)

    def peek(self, count: int) -> list[dict]:
        with self._lock:
            return [row for row, _ in list(self._rows)[:count]]

    def pop(self, count: int) -> None:
        with self._lock:
            for _ in range(min(count, len(self._rows))):
                _, line = self._rows.popleft()
                self.bytes -= len(line)
            self._taken_since_rewrite += count
            if not self._rows or self._taken_since_rewrite >= REWRITE_EVERY:
                self._trim(force=True)

    def _spool(self, lines: list[tuple[dict, bytes]], append: bool) -> None:
        self._rows.extend(lines)
        self.bytes += sum(len(line) for _, line in lines)
        over = False
        while self._rows and (len(self._rows) > self.max_rows or self.bytes > self.max_bytes):
            _, line = self._rows.popleft()
            self.bytes -= len(line)
            self.dropped += 1
            over = True
        if over:
            log_event(log, "governance spool full: oldest judgements dropped", 40,
                      dropped=self.dropped, rows=len(self._rows))
            self._rewrite()
        elif append:
            self._write(b"".join(line for _, line in lines), sync=True)

    # --- the file ---------------------------------------------------------------------------------

    def _open(self) -> bool:
        if self._file is not None and self._pid == os.getpid():
            return True
        if self._pid != os.getpid():  # forked after the file was opened: the parent's file stays its own
            self._file, self._path, self._pid, self._file_bytes = None, None, os.getpid(), 0
        if not self.on_disk:
            return False
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._path = self.directory / f"judgements-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}"
            handle = open(self._path, "ab")
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._file = handle
            return True
        except OSError as error:
            self.on_disk = False
            log_event(log, "governance spool folder unusable: spooling in memory only", 40,
                      exception=type(error).__name__, folder=str(self.directory))
            return False

    def _write(self, data: bytes, sync: bool) -> None:
        if not data or not self._open():
            return
        try:
            self._file.write(data)
            self._file.flush()  # in the kernel's hands: survives the process, not the machine
            if sync:
                os.fsync(self._file.fileno())
            self._file_bytes += len(data)
        except OSError as error:
            log_event(log, "governance spool write failed: the rows wait in memory only", 40,
                      exception=type(error).__name__)

    def _live_lines(self) -> list[bytes]:
        lines = [line for _, line in self._rows]
        for ticket in sorted(self._in_flight):
            lines.extend(line for _, line in self._in_flight[ticket])
        return lines

    def _trim(self, force: bool = False) -> None:
        """Make the file hold no more than the rows still waiting: nothing (truncated) when none
        wait; rewritten when forced or when mostly trimmed rows."""
        if self._file is None or self._pid != os.getpid():
            return
        live = self.bytes + self._in_flight_bytes
        if live == 0 or force or self._file_bytes - live > max(REWRITE_BYTES, 3 * live):
            self._rewrite()

    def _rewrite(self) -> None:
        """Make the file hold exactly the rows still waiting (in place: the lock stays held); emptied,
        not fsync'd: the next answer's append would wait for it (kill -9 needs the kernel alone)."""
        self._taken_since_rewrite = 0
        if self._file is None and not self._rows and not self._in_flight:
            return
        if not self._open():
            return
        try:
            data = b"".join(self._live_lines())
            if not data and self._file_bytes == 0:
                return  # already empty
            self._file.seek(0)
            self._file.truncate()
            self._file.write(data)
            self._file.flush()
            if data:  # emptied (after each commit) needs no fsync: rows a power cut kept are in the store
                os.fsync(self._file.fileno())
            self._file_bytes = len(data)
        except OSError as error:
            log_event(log, "governance spool rewrite failed", 40, exception=type(error).__name__)

    def adopt(self) -> int:
        """Take over the rows of spool files no live process holds; return how many."""
        if not self.on_disk or fcntl is None or not self.directory.is_dir():
            return 0
        adopted = 0
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            if path == self._path and self._pid == os.getpid():
                continue
            adopted += _adopt_file(self, path)
        if adopted:
            log_event(log, "governance spool adopted the judgements of a previous process", rows=adopted)
        return adopted

    def close(self) -> None:
        """Leave on disk exactly what still waits (nothing: the file is removed)."""
        with self._lock:
            if self._file is None or self._pid != os.getpid():
                return
            self._rewrite()
            empty = not self._rows and not self._in_flight
            with contextlib.suppress(OSError):
                if empty:
                    self._path.unlink()
                self._file.close()  # releases the lock: the next process adopts what is left
            self._file = None


def _adopt_file(heir: Spool, path: Path) -> int:
    """Move the rows of a dead process's file into `heir` (fsync'd there) and remove the file."""
    try:
        handle = open(path, "rb")
    except OSError:
        return 0
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0  # a live process's spool
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino:
                return 0  # adopted and removed by another process meanwhile
        rows = []
        for line in handle.read().splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                rows.append(decode(line))  # a line cut by a kill is lost alone
        if rows:
            heir.add(rows)  # into the heir's file (fsync'd) before the old one goes
        with contextlib.suppress(OSError):
            path.unlink()
        return len(rows)
