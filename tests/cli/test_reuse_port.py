"""`lumbar-cds serve` spreads connections over its workers (issue 23): each worker also listens on
a SO_REUSEPORT socket of its own, so a client's pooled keep-alive connections do not all land on
the first worker awake (the kernel picks a socket by the connection's addresses)."""

from __future__ import annotations

import http.client
import json

from .served import Served


def pids_serving(served: Served, connections: int) -> set[int]:
    opened = []
    for _ in range(connections):
        connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=20)
        connection.request("GET", "/cds-services")  # keep-alive: the connection stays with its worker
        assert connection.getresponse().read()
        opened.append(connection)
    for connection in opened:
        connection.close()
    pids = set()
    for line in served.stderr.splitlines():
        if line.startswith("{") and '"event":"request"' in line:
            record = json.loads(line)
            if record.get("path") == "/cds-services":
                pids.add(record["pid"])
    return pids


def test_connections_are_spread_over_both_workers(tmp_path):
    with Served(tmp_path, env={"CDS_LOG_LEVEL": "INFO"}, workers=2) as served:
        assert len(pids_serving(served, 24)) == 2
