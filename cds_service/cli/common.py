"""What every `lumbar-cds` command shares: the exit codes and the one-line error.

Role in the data flow: an edge (the command line), imported by each command's module.
"""

from __future__ import annotations

import sys

EXIT_OK, EXIT_ANSWERED_ERROR, EXIT_USAGE, EXIT_STORE_UNREACHABLE = 0, 1, 2, 3
# Read by prometheus-client when it is first imported (cds_service.metrics.MULTIPROC_ENV): `serve`
# sets it before anything imports the metrics.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def fail(command: str, message: str, code: int = EXIT_USAGE) -> int:
    print(f"lumbar-cds {command}: {message}", file=sys.stderr)
    return code


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__
