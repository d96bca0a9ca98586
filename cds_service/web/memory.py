"""Process memory: one glibc malloc arena for a worker that serves each request on a thread.

Role in the data flow: the serving edge; `create_app` calls `limit_malloc_arenas` once per process.
glibc gives every thread that meets contention its own arena (up to 8 per core), and the freed
memory of a large request stays in the arena that served it, so a threaded worker's resident size
grows with its thread count. Python allocates under the GIL, so one arena costs
the threads next to nothing; with it (and the reader's lighter import), a worker's peak resident
size after 1,000 calls with 2.8 MB bodies was 224 to 245 MB here instead of 251 to 263 MB (bench
`memory`; the spread is how the calls fell between the two workers). An operator's own
MALLOC_ARENA_MAX always wins.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Mapping

M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)
ARENAS = 1


def limit_malloc_arenas(environ: Mapping[str, str] | None = None) -> bool:
    """Ask glibc for at most ARENAS malloc arenas; True when it was asked and agreed. Nothing is done
    when MALLOC_ARENA_MAX is set (glibc read it at start) or the C library has no mallopt."""
    environ = os.environ if environ is None else environ
    if "MALLOC_ARENA_MAX" in environ or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(M_ARENA_MAX, ARENAS) == 1
