"""Serving: the Flask (WSGI) app behind an ASGI front that reads each request body first.

Role in the data flow: the outermost edge of `lumbar-cds serve`. Gunicorn runs uvicorn workers
(`CdsUvicornWorker`); in each, `BufferedWsgi` receives the whole request body on the event loop
(a slow client costs a coroutine and a socket, never a thread) under two limits:
- a deadline (CDS_BODY_READ_TIMEOUT, 10 s by default): a body that has not fully arrived by then
  is answered 408 `LCDS-1408`, as is a Content-Length larger than the body sent;
- the size limit (CDS_MAX_BODY_BYTES): a declared Content-Length over it is answered 413 before
  anything is read, and a chunked body is answered 413 as soon as it passes it.
Only then is the WSGI app called, with the body in memory, on one of `threads` threads, so the
app's threads always have work that is ready. The time the request arrived is handed to the app
(environ `lumbar_cds.received_at`), so its logged `ms` counts from the first byte.
`JsonGunicornLogger` writes gunicorn's own lines (and uvicorn's) as the service's JSON lines. Everything inside the app (psycopg, requests, its
fetch ThreadPoolExecutor, SQLAlchemy) runs on ordinary threads: nothing is monkeypatched.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import orjson

from cds_service.hooks.errors import CdsError
from cds_service.logs import JsonLineFormatter, RedactingFilter, get_logger, log_event
from cds_service.web.rolling import mark_ready

log = get_logger("serving")
RECEIVED_AT = "lumbar_cds.received_at"  # environ key: perf_counter() when the request arrived


class _TooLarge(Exception):
    pass


class BufferedWsgi:
    """An ASGI 3 app running a WSGI app once the request body is fully received."""

    def __init__(self, wsgi_app, *, threads: int = 8, body_timeout: float = 10.0,
                 max_body: int = 5_000_000, on_shutdown=None):
        self.wsgi_app = wsgi_app
        self.body_timeout = body_timeout
        self.max_body = max_body
        self.on_shutdown = on_shutdown
        self.executor = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="wsgi")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.on_shutdown is not None:
                    await asyncio.get_running_loop().run_in_executor(self.executor, self.on_shutdown)
                self.executor.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope, receive, send) -> None:
        received = time.perf_counter()
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        declared = next((v for k, v in headers if k == "content-length"), None)
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_body:
            await self._error(send, CdsError("LCDS-1413", {"limit": self.max_body}))
            return
        try:
            body = await asyncio.wait_for(self._read_body(receive), self.body_timeout)
        except TimeoutError:
            log_event(log, "request body not received in time", logging.WARNING,
                      method=scope.get("method"), seconds=self.body_timeout)
            await self._error(send, CdsError("LCDS-1408", {"limit": f"{self.body_timeout:g}"}))
            return
        except _TooLarge:
            await self._error(send, CdsError("LCDS-1413", {"limit": self.max_body}))
            return
        if body is None:
            return  # the client went away
        environ = self._environ(scope, headers, body)
        environ[RECEIVED_AT] = received
        loop = asyncio.get_running_loop()
        status, response_headers, chunks = await loop.run_in_executor(self.executor, self._run, environ)
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": b"".join(chunks)})

    async def _read_body(self, receive) -> bytes | None:
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _TooLarge
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    @staticmethod
    async def _error(send, error: CdsError) -> None:
        body = orjson.dumps(error.to_json())
        await send({"type": "http.response.start", "status": error.status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _environ(scope, headers: list[tuple[str, str]], body: bytes) -> dict:
        server = scope.get("server") or ("localhost", 80)
        client = scope.get("client") or ("", 0)
        raw_path = scope.get("raw_path")
        path = raw_path.split(b"?", 1)[0].decode("latin-1") if raw_path else \
            scope["path"].encode("utf-8").decode("latin-1")
        root = scope.get("root_path", "").encode("utf-8").decode("latin-1")
        environ = {
            "REQUEST_METHOD": scope["method"],
            "SCRIPT_NAME": root,
            "PATH_INFO": path[len(root):] if root and path.startswith(root) else path,
            "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
            "SERVER_NAME": str(server[0]),
            "SERVER_PORT": str(server[1]) if server[1] is not None else "80",
            "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
            "REMOTE_ADDR": str(client[0]),
            "REMOTE_PORT": str(client[1]),
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scope.get("scheme", "http"),
            "wsgi.input": io.BytesIO(body),
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        for name, value in headers:
            if name in ("content-length", "transfer-encoding"):
                continue  # the body is whole now: its length is what it is
            if name == "content-type":
                environ["CONTENT_TYPE"] = value
                continue
            key = "HTTP_" + name.upper().replace("-", "_")
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _run(self, environ: dict):
        """Call the WSGI app on a pool thread; (status, headers, body chunks)."""
        captured: dict = {}

        def start_response(status, response_headers, exc_info=None):
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                                   for k, v in response_headers]
            return lambda data: captured.setdefault("written", []).append(data)

        result = self.wsgi_app(environ, start_response)
        try:
            chunks = captured.get("written", []) + [chunk for chunk in result if chunk]
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return captured["status"], captured["headers"], chunks


def logger_class() -> str:
    """The gunicorn logger class `lumbar-cds serve` uses (import path)."""
    return "cds_service.web.serving.JsonGunicornLogger"


def worker_class() -> str:
    """The gunicorn worker class `lumbar-cds serve` uses (import path)."""
    return "cds_service.web.serving.CdsUvicornWorker"


try:  # the worker class exists only where uvicorn-worker is installed (it is a dependency)
    from uvicorn_worker import UvicornWorker
except ImportError:  # pragma: no cover
    UvicornWorker = None  # type: ignore[assignment,misc]
else:

    class CdsUvicornWorker(UvicornWorker):
        """uvicorn under gunicorn: HTTP parsed on the event loop; lifespan on (the app's shutdown
        runs when the worker stops); no Server header; gunicorn's worker_connections caps the
        open connections of a worker (503 above)."""

        CONFIG_KWARGS = {"loop": "asyncio", "http": "auto", "lifespan": "on", "server_header": False,
                         "access_log": False}

        def init_process(self) -> None:
            # reuse_port (`lumbar-cds serve --reuse-port`): each worker listens on a socket of its
            # own on the same address (SO_REUSEPORT), so the kernel spreads new connections over
            # the workers instead of the first one awake taking them all (an EHR's few pooled
            # keep-alive connections on one worker). gunicorn (>= 23) opens these sockets in the
            # worker already listening, before the app is built: a booting worker (a start, a
            # SIGHUP) would be given connections it answers only seconds later. They are swapped
            # at once for sockets bound but not listening; uvicorn listens once the app is built.
            if self.cfg.reuse_port:
                booting = list(self.sockets)
                self.sockets = own_listeners(booting)
                for listener in booting:
                    listener.close()
            super().init_process()

        async def callback_notify(self) -> None:
            # uvicorn's first tick, once the app is built and this worker listens: say "ready"
            # to the master, which stops the old workers of a SIGHUP only then (web/rolling.py).
            await super().callback_notify()
            if not self.said_ready:
                self.said_ready = True
                mark_ready(os.getpid())

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.said_ready = False
            self.config.limit_concurrency = self.cfg.worker_connections
            # UvicornWorker hands uvicorn's loggers gunicorn's handler list: its errors go to the
            # root's JSON handler instead; no access lines (our request log replaces them).
            logging.getLogger("uvicorn.error").handlers = []
            logging.getLogger("uvicorn.error").propagate = True
            logging.getLogger("uvicorn.access").handlers = []
            logging.getLogger("uvicorn.access").propagate = False


def own_listeners(shared: list) -> list[socket.socket]:
    """A socket of this process for each TCP listener in `shared` (same address, SO_REUSEPORT;
    the others on the address must have it too: gunicorn's `reuse_port`). Bound, not yet
    listening: the event loop listens when uvicorn starts serving, once the app is built, so the
    kernel gives this worker no connection while it boots (its siblings take them)."""
    mine = []
    for listener in shared:
        if listener.family not in (socket.AF_INET, socket.AF_INET6):
            continue  # a Unix socket cannot be shared that way
        own = socket.socket(listener.family, socket.SOCK_STREAM)
        own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        # As gunicorn sets it on its listeners: the accepted connections inherit it. Without it
        # a small answer waits for the client's delayed ACK (Nagle): 40 ms a keep-alive call.
        own.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        own.bind(listener.getsockname())
        mine.append(own)
    return mine


try:  # gunicorn is a dependency; imported here only where it is installed
    from gunicorn.glogging import Logger as _GunicornLogger
except ImportError:  # pragma: no cover
    _GunicornLogger = None  # type: ignore[assignment,misc]
else:

    class JsonGunicornLogger(_GunicornLogger):
        """gunicorn's logger writing the service's JSON lines (redacted) instead of its plain
        `[INFO]` text: start, listening, workers booted and exited, a worker's failure."""

        def setup(self, cfg) -> None:
            super().setup(cfg)
            for logger in (self.error_log, self.access_log):
                for handler in logger.handlers:
                    handler.setFormatter(JsonLineFormatter())
                    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                        handler.addFilter(RedactingFilter())
