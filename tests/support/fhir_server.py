"""A small real FHIR server on loopback for the tests (no mocks of the HTTP layer).

Serves FHIR JSON from memory: `GET /fhir/Patient/<id>` and `GET /fhir/<Type>?patient=<id>`
searches as searchset Bundles, paged with absolute `next` links. It can require a bearer token,
delay every answer, answer a fixed status, redirect elsewhere, and it records every request it
saw (path, query and the Authorization header) so tests can assert what the service sent.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class SeenRequest:
    path: str
    query: dict
    authorization: str | None
    accept: str | None


@dataclass
class FhirServerBehaviour:
    required_token: str | None = None  # 401 unless "Authorization: Bearer <token>"
    delay_seconds: float = 0.0  # before every answer
    page_size: int = 50
    fail_status: dict[str, int] = field(default_factory=dict)  # resource type -> HTTP status
    redirect_to: str | None = None  # 302 every request to this base URL (path kept)


class _Server(ThreadingHTTPServer):
    # socketserver's listen backlog is 5: with a dozen fetches opening connections at once, the
    # kernel could drop a SYN and the client retry it a second later, so they were not all in flight.
    request_queue_size = 128


class LoopbackFhirServer:
    def __init__(self, behaviour: FhirServerBehaviour | None = None):
        self.behaviour = behaviour or FhirServerBehaviour()
        self.resources: dict[str, dict[str, dict]] = {}  # type -> id -> resource
        self.seen: list[SeenRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0  # most requests being answered at the same moment
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle on, the body waits for the
            # client's delayed ACK (~40 ms per answer on a keep-alive connection).
            disable_nagle_algorithm = True

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):  # noqa: N802 - http.server's naming
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    server._handle(self)
                finally:
                    with server._lock:
                        server.in_flight -= 1

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/fhir"

    def start(self) -> LoopbackFhirServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- data --------------------------------------------------------------------------------
    def add(self, *resources: dict) -> None:
        for resource in resources:
            self.resources.setdefault(resource["resourceType"], {})[resource["id"]] = resource

    def add_bundle(self, bundle: dict | None) -> None:
        for entry in (bundle or {}).get("entry") or []:
            resource = entry.get("resource")
            if isinstance(resource, dict) and resource.get("id"):
                self.add(resource)

    def clear(self) -> None:
        self.resources.clear()
        self.seen.clear()

    # -- serving -----------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.seen.append(
                SeenRequest(parts.path, query, handler.headers.get("Authorization"), handler.headers.get("Accept"))
            )
        b = self.behaviour
        if b.delay_seconds:
            time.sleep(b.delay_seconds)
        if b.redirect_to:
            handler.send_response(302)
            handler.send_header("Location", b.redirect_to.rstrip("/") + parts.path + ("?" + parts.query if parts.query else ""))
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if b.required_token and handler.headers.get("Authorization") != f"Bearer {b.required_token}":
            return self._send(handler, 401, _outcome("login", "bearer token missing or wrong"))
        segments = [s for s in parts.path.split("/") if s]
        if not segments or segments[0] != "fhir" or len(segments) < 2:
            return self._send(handler, 404, _outcome("not-found", "unknown path"))
        resource_type = segments[1]
        if resource_type in b.fail_status:
            return self._send(handler, b.fail_status[resource_type], _outcome("exception", "configured failure"))
        if len(segments) == 3:
            resource = self.resources.get(resource_type, {}).get(segments[2])
            if resource is None:
                return self._send(handler, 404, _outcome("not-found", "no such resource"))
            return self._send(handler, 200, resource)
        return self._send(handler, 200, self._search(resource_type, query))

    def _search(self, resource_type: str, query: dict) -> dict:
        patient = query.get("patient")
        matches = [
            r for r in self.resources.get(resource_type, {}).values()
            if patient is None or _subject_id(r) == patient
        ]
        page = int(query.get("_page", "1"))
        size = self.behaviour.page_size
        chunk = matches[(page - 1) * size: page * size]
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(matches),
            "link": [{"relation": "self", "url": f"{self.base_url}/{resource_type}?patient={patient}&_page={page}"}],
            "entry": [
                {"fullUrl": f"{self.base_url}/{resource_type}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                for r in chunk
            ],
        }
        if page * size < len(matches):
            bundle["link"].append(
                {"relation": "next", "url": f"{self.base_url}/{resource_type}?patient={patient}&_page={page + 1}"}
            )
        return bundle

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/fhir+json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def _subject_id(resource: dict) -> str | None:
    for key in ("subject", "patient"):
        ref = resource.get(key)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            return ref["reference"].rsplit("/", 1)[-1]
    return None


def _outcome(code: str, text: str) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}
