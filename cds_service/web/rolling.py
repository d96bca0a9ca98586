"""Rolling reload: on SIGHUP the old workers serve until the new ones are ready.

Role in the data flow: the serving edge's process management (`lumbar-cds serve`). gunicorn's
SIGHUP spawns new workers and stops the old ones at once, while the new ones still build the app
(`create_app` and its warm-up, a few seconds): with a listener per worker (reuse_port) nothing
listens meanwhile and calls are refused; with a shared one they queue. Here the master stops old
workers only once the newest have each said they are ready: a worker writes a marker file named
by its pid in `READY_ENV`'s folder when uvicorn first ticks, that is once the app is built and the
worker listens (`web.serving.CdsUvicornWorker`). The wait is bounded by `READY_WAIT_SECONDS`;
a new worker that cannot start ends the wait (gunicorn then stops, as without this).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from gunicorn.arbiter import Arbiter

READY_ENV = "LUMBAR_CDS_READY_DIR"
READY_WAIT_SECONDS = 60.0
POLL_SECONDS = 0.1


def mark_ready(pid: int) -> None:
    """Said by a worker once it serves (no-op outside `lumbar-cds serve`)."""
    folder = os.environ.get(READY_ENV)
    if folder:
        try:
            Path(folder, str(pid)).touch()
        except OSError:
            pass  # the master then waits READY_WAIT_SECONDS at most, as it did before


def is_ready(pid: int) -> bool:
    folder = os.environ.get(READY_ENV)
    return not folder or Path(folder, str(pid)).exists()


def forget(pid: int) -> None:
    """A worker exited: its marker goes (pids are reused)."""
    folder = os.environ.get(READY_ENV)
    if folder:
        Path(folder, str(pid)).unlink(missing_ok=True)


class RollingArbiter(Arbiter):
    """gunicorn's arbiter, stopping surplus (old) workers only once the newest are ready."""

    def manage_workers(self) -> None:
        if len(self.WORKERS) > self.num_workers:
            self.wait_for_newest_workers()
        super().manage_workers()

    def wait_for_newest_workers(self) -> None:
        deadline = time.monotonic() + READY_WAIT_SECONDS
        while time.monotonic() < deadline:
            newest = sorted(self.WORKERS.items(), key=lambda item: item[1].age)[-self.num_workers:]
            if len(newest) < self.num_workers or all(is_ready(pid) for pid, _ in newest):
                return
            self.reap_workers()  # a new worker that failed to boot is reaped here
            time.sleep(POLL_SECONDS)
