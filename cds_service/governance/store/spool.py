"""The spool: judgement rows waiting for an unreachable store, bounded, kept on disk.

Role in the data flow: between the recorder's writer thread and the store. When the store cannot
be reached, the writer puts the rows of the batch here instead of losing them, and takes them back
(oldest first) when the store answers again. The rows are held in memory while the process lives
and, when a folder is given (CDS_SPOOL_DIR; by default `spool/` beside the embedded SQLite file),
in a JSON-lines file of this process: appended and fsync'd before `add` returns, so a row
acknowledged to the writer survives a crash or a restart. Each process writes its own file and
holds an exclusive `flock` on it while it lives; a file whose lock is free belongs to a process
that is gone, and the next writer to start (or retry) adopts its rows. The spool is bounded in
rows and bytes: past either bound, the oldest rows are dropped, as a last resort, and counted.
A drain interrupted by a crash can write a row twice (it is at-least-once); the file is rewritten
every REWRITE_EVERY rows taken, which bounds that.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections import deque
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
SUFFIX = ".jsonl"


def encode(row: dict) -> bytes:
    return orjson.dumps(row) + b"\n"  # datetimes as ISO 8601 (naive UTC, as stored)


def decode(line: bytes) -> dict:
    row = orjson.loads(line)
    row["recorded_at"] = datetime.fromisoformat(row["recorded_at"])
    return row


class Spool:
    """Oldest-first rows; `add`, `peek`, `pop`; `adopt` the files of dead processes; `close`."""

    def __init__(self, directory: str | Path | None, max_rows: int = 100_000, max_bytes: int = 50_000_000):
        self.directory = Path(directory) if directory else None
        self.max_rows = max(1, max_rows)
        self.max_bytes = max(1, max_bytes)
        self._rows: deque[tuple[dict, bytes]] = deque()
        self.bytes = 0
        self.dropped = 0  # oldest rows dropped at a bound
        self._file = None  # this process's spool file, opened on the first add
        self._path: Path | None = None
        self._taken_since_rewrite = 0
        self.on_disk = self.directory is not None

    def __len__(self) -> int:
        return len(self._rows)

    # --- adding and taking ----------------------------------------------------------------------

    def add(self, rows: list[dict]) -> None:
        lines = [(row, encode(row)) for row in rows]
        self._rows.extend(lines)
        self.bytes += sum(len(line) for _, line in lines)
        over = False
        while len(self._rows) > self.max_rows or self.bytes > self.max_bytes:
            _, line = self._rows.popleft()
            self.bytes -= len(line)
            self.dropped += 1
            over = True
        if over:
            log_event(log, "governance spool full: oldest judgements dropped", 40,
                      dropped=self.dropped, rows=len(self._rows))
            self._rewrite()
        else:
            self._append(b"".join(line for _, line in lines))

    def peek(self, count: int) -> list[dict]:
        return [row for row, _ in list(self._rows)[:count]]

    def pop(self, count: int) -> None:
        for _ in range(min(count, len(self._rows))):
            _, line = self._rows.popleft()
            self.bytes -= len(line)
        self._taken_since_rewrite += count
        if not self._rows or self._taken_since_rewrite >= REWRITE_EVERY:
            self._rewrite()

    # --- the file ---------------------------------------------------------------------------------

    def _open(self) -> bool:
        if self._file is not None:
            return True
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

    def _sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def _append(self, data: bytes) -> None:
        if not data or not self._open():
            return
        try:
            self._file.write(data)
            self._sync()
        except OSError as error:
            log_event(log, "governance spool write failed: the rows wait in memory only", 40,
                      exception=type(error).__name__)

    def _rewrite(self) -> None:
        """Make the file hold exactly the rows still waiting (in place: the lock stays held)."""
        self._taken_since_rewrite = 0
        if self._file is None and not self._rows:
            return
        if not self._open():
            return
        try:
            self._file.seek(0)
            self._file.truncate()
            self._file.write(b"".join(line for _, line in self._rows))
            self._sync()
        except OSError as error:
            log_event(log, "governance spool rewrite failed", 40, exception=type(error).__name__)

    def adopt(self) -> int:
        """Take over the rows of spool files no live process holds; return how many."""
        if not self.on_disk or fcntl is None or not self.directory.is_dir():
            return 0
        adopted = 0
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            if path == self._path:
                continue
            try:
                handle = open(path, "rb")
            except OSError:
                continue
            with handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a live process's spool
                with contextlib.suppress(OSError):
                    if os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino:
                        continue  # adopted and removed by another process meanwhile
                rows = []
                for line in handle.read().splitlines():
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        rows.append(decode(line))  # a line cut by a crash is lost alone
                if rows:
                    self.add(rows)  # into this process's file (fsync'd) before the old one goes
                    adopted += len(rows)
                with contextlib.suppress(OSError):
                    path.unlink()
        if adopted:
            log_event(log, "governance spool adopted the judgements of a previous process", rows=adopted)
        return adopted

    def close(self) -> None:
        """Leave on disk exactly what still waits (nothing: the file is removed)."""
        if self._file is None:
            return
        self._rewrite()
        empty = not self._rows
        with contextlib.suppress(OSError):
            if empty:
                self._path.unlink()
            self._file.close()  # releases the lock: the next process adopts what is left
        self._file = None
