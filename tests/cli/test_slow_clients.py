"""Slow clients cannot block the served app: bodies are received before a thread is given.

Against `lumbar-cds serve` (1 worker, 2 app threads, a 4 s body deadline): eight connections
trickle their body in a byte at a time, as a slow or hostile client would; a normal call must
still be answered while they are all still sending. A body shorter than its Content-Length is
answered 408 within the deadline, and a chunked body over the size limit 413.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import requests

from .served import Served

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "order-sign-acute-lbp.json").read_bytes()
SIGN = "/cds-services/lumbar-imaging-order-sign"
BODY_TIMEOUT = 4.0
SLOW_CLIENTS = 8


def _head(length: int) -> bytes:
    return (f"POST {SIGN} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def _answer(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    return data


def test_normal_call_answers_while_eight_clients_send_their_bodies_at_one_byte_per_second(tmp_path):
    with Served(tmp_path, args=("--threads", "2", "--body-timeout", str(BODY_TIMEOUT))) as served:
        stop = threading.Event()
        finished: list[float] = []

        def trickle():
            with socket.create_connection(("127.0.0.1", served.port)) as sock:
                sock.sendall(_head(len(EXAMPLE)))
                for byte in EXAMPLE:
                    if stop.is_set():
                        break
                    try:
                        sock.sendall(bytes([byte]))
                    except OSError:
                        break  # answered 408 and closed
                    time.sleep(1.0)
                finished.append(time.monotonic())

        slow = [threading.Thread(target=trickle, daemon=True) for _ in range(SLOW_CLIENTS)]
        for thread in slow:
            thread.start()
        time.sleep(1.0)  # every slow client is connected and sending
        started = time.monotonic()
        response = requests.post(served.base + SIGN, data=EXAMPLE, timeout=30,
                                 headers={"Content-Type": "application/json"})
        answered = time.monotonic()
        stop.set()
        for thread in slow:
            thread.join(timeout=BODY_TIMEOUT + 10)
    assert response.status_code == 200
    assert response.json()["cards"][0]["source"]["topic"]["code"] == "imaging-before-6-weeks"
    # Answered before any slow client finished (none of them had sent its body).
    assert not finished or answered < min(finished), (answered - started, finished)
    print(f"normal call during {SLOW_CLIENTS} slow clients: {answered - started:.3f} s")


def test_short_body_with_a_long_content_length_gets_408_within_the_read_timeout(tmp_path):
    with Served(tmp_path, args=("--body-timeout", str(BODY_TIMEOUT))) as served:
        with socket.create_connection(("127.0.0.1", served.port)) as sock:
            started = time.monotonic()
            sock.sendall(_head(len(EXAMPLE) + 1000) + EXAMPLE)  # 1000 bytes never come
            answer = _answer(sock, BODY_TIMEOUT + 10)
            waited = time.monotonic() - started
        # The service still answers others afterwards.
        assert requests.get(served.base + "/healthz", timeout=5).status_code == 200
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408"), answer[:200]
    assert waited < BODY_TIMEOUT + 3
    assert b"LCDS-1408" in rest or b"content-type: application/json" in rest.lower()


def test_chunked_body_over_the_limit_is_413_not_invalid_json(tmp_path):
    with Served(tmp_path, env={"CDS_MAX_BODY_BYTES": "20000"}) as served:
        def chunks():
            for _ in range(10):
                yield b" " * 5000  # 50 000 bytes of (valid) JSON whitespace, chunked
            yield EXAMPLE

        response = requests.post(served.base + SIGN, data=chunks(), timeout=30,
                                 headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "LCDS-1413"
        # Under the limit, chunked works.
        response = requests.post(served.base + SIGN, data=iter([EXAMPLE]), timeout=30,
                                 headers={"Content-Type": "application/json"})
        assert response.status_code == 200, response.text
        assert json.loads(response.text)["cards"]
