"""`lumbar-cds serve` spreads connections over its workers (issue 23): each worker also listens on
a SO_REUSEPORT socket of its own, so a client's pooled keep-alive connections do not all land on
the first worker awake (the kernel picks a socket by the connection's addresses)."""

from __future__ import annotations

import http.client
import json
import socket

from cds_service.web.serving import own_listeners

from .served import Served, wait_for_workers


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
        wait_for_workers(served, 2)
        assert len(pids_serving(served, 24)) == 2


def test_a_workers_own_listener_hands_out_connections_without_nagle():
    """The connections a worker accepts on its own listener have TCP_NODELAY, as gunicorn's
    listeners give theirs: without it a small answer on a keep-alive connection waits for the
    client's delayed ACK (the floor of `make bench` fell from about 500 to 80 calls/s)."""
    shared = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    shared.bind(("127.0.0.1", 0))
    [own] = own_listeners([shared])
    shared.close()  # only the worker's own listener takes the connection
    try:
        own.listen(1)
        client = socket.create_connection(own.getsockname(), timeout=10)
        accepted, _ = own.accept()
        with client, accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        own.close()
