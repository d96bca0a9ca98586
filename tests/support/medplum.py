"""A real FHIR server for the tests whose search semantics are Medplum's, not ours.

`MedplumFhirServer` runs `node tests/fhir_server/server.mjs`: @medplum/fhir-router's FhirRouter
over its MemoryRepository (see tests/fhir_server/README.md). Reads and searches
(`patient=`, `code=system|code,...`, `category=`, `date=ge...`, `_count`, `_sort`...) are
answered by Medplum's code; around it the server pages with absolute `next` links (page size
min(_count, max_page_size), default 20; `default_page_size` without `_count`), and can shuffle the order, act like Epic or Oracle
Health, require a bearer token, delay, fail, redirect, and serve Binary as raw bytes.

Usable like `LoopbackFhirServer` (tests/support/fhir_server.py): `base_url`, `add(*resources)`,
`add_bundle(bundle)`, `clear()`, `max_in_flight`, and `seen()` whose items have the same
`.path`, `.query`, `.authorization`, `.accept` (and are dicts too). Behaviour is changed with
`behave(**options)` instead of attributes, because it lives in the node process.

Fixtures for tests/conftest.py: `medplum_server` (one node process per session) and
`fhir_server_medplum` (that server, reset before each test).
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urljoin

import pytest

SERVER_DIR = Path(__file__).resolve().parent.parent / "fhir_server"
SERVER_SCRIPT = SERVER_DIR / "server.mjs"
INSTALL_HINT = "run `make test` (it installs tests/fhir_server)"
FHIR_JSON = "application/fhir+json"
START_TIMEOUT_SECONDS = 60.0
# Loopback only: never through an http_proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SeenRequest(dict):
    """One FHIR request the server saw: a dict {method, path, query, query_string,
    authorization, accept} whose keys also read as attributes (`s.path`), like
    tests/support/fhir_server.SeenRequest. `query` holds the first value of each parameter."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class MedplumFhirServer:
    """The node FHIR server as a child process. `options` are the start-up behaviour, which
    `reset()` restores: max_page_size (20), default_page_size (None: max_page_size), shuffle (False), shuffle_seed, epic_observation_rule
    (False), no_code_search ([]), required_token (None), latency_ms (0), fail_status ({}),
    redirect_to (None)."""

    def __init__(self, resources: list[dict] | None = None, *, node: str | None = None, **options):
        self.startup_options = dict(options)
        self._initial_resources = list(resources or [])
        self._node = node
        self._process: subprocess.Popen | None = None
        self._stderr = None
        self.port: int | None = None
        self.options: dict = {}  # the behaviour in force, as the server last reported it

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def origin(self) -> str:
        if self.port is None:
            raise RuntimeError("the Medplum FHIR test server is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/fhir"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> MedplumFhirServer:
        if self.running:
            return self
        node = self._node or shutil.which("node")
        if not node:
            raise RuntimeError(
                "Node.js (20+) was not found on PATH; the Medplum FHIR test server "
                f"(tests/fhir_server) needs it: install Node.js 20+ and npm, then {INSTALL_HINT}"
            )
        if not (SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
            raise RuntimeError(f"tests/fhir_server/node_modules is not installed: {INSTALL_HINT}")
        config = {"options": self.startup_options, "exit_with_stdin": True}
        config_file = None
        if self._initial_resources:
            config_file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
            json.dump({**config, "resources": self._initial_resources}, config_file)
            config_file.close()
            arg = "@" + config_file.name
        else:
            arg = json.dumps(config)
        self._stderr = tempfile.TemporaryFile()
        try:
            self._process = subprocess.Popen(
                [node, str(SERVER_SCRIPT), arg],
                cwd=str(SERVER_DIR),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
            )
            self.port = self._wait_for_port()
        except BaseException:
            self.stop()
            raise
        finally:
            if config_file is not None:
                os.unlink(config_file.name)
        atexit.register(self.stop)
        self.options = self._admin("GET", "behaviour")
        return self

    def _wait_for_port(self) -> int:
        lines: queue.Queue = queue.Queue()
        stdout = self._process.stdout

        def read():
            for raw in iter(stdout.readline, b""):
                lines.put(raw.decode("utf-8", "replace").strip())
            lines.put(None)

        threading.Thread(target=read, name="medplum-fhir-stdout", daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            left = deadline - time.monotonic()
            try:
                line = lines.get(timeout=max(0.05, left)) if left > 0 else None
            except queue.Empty:
                line = None
            if line is None:
                if self._process.poll() is None and time.monotonic() < deadline:
                    continue
                raise RuntimeError(
                    "the Medplum FHIR test server did not start "
                    f"({'exit code ' + str(self._process.poll()) if self._process.poll() is not None else 'no LISTENING line in time'}): "
                    f"{self._stderr_tail() or 'no error output'}; if a package is missing, {INSTALL_HINT}"
                )
            if line.startswith("LISTENING "):
                return int(line.split()[1])

    def _stderr_tail(self, limit: int = 2000) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0)
            return self._stderr.read().decode("utf-8", "replace").strip()[-limit:]
        except (OSError, ValueError):
            return ""

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self.port = None

    def __enter__(self) -> MedplumFhirServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- HTTP ------------------------------------------------------------------------------
    def _request(self, method: str, url: str, body=None, headers: dict | None = None, timeout: float = 120.0):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                return response.status, response.read(), response.headers
        except urllib.error.HTTPError as err:
            return err.code, err.read(), err.headers

    def _admin(self, method: str, action: str, body=None):
        if not self.running:
            raise RuntimeError("the Medplum FHIR test server is not running: " + (self._stderr_tail() or "not started"))
        status, data, _ = self._request(method, f"{self.origin}/$admin/{action}", body)
        if status != 200:
            raise RuntimeError(f"/$admin/{action} answered {status}: {data[:500]!r}")
        return json.loads(data)

    # -- data --------------------------------------------------------------------------------
    def load(self, resources: list[dict] | dict) -> list[str]:
        """Store resources (a list, or a Bundle) with their own ids; returns 'Type/id's."""
        return self._admin("POST", "load", resources)["ids"]

    def add(self, *resources: dict) -> None:
        if resources:
            self.load(list(resources))

    def add_bundle(self, bundle: dict | None) -> None:
        if bundle and bundle.get("entry"):
            self.load(bundle)

    def reset(self) -> None:
        """Drop all data and the request log, and restore the start-up behaviour."""
        self.options = self._admin("POST", "reset")["options"]

    def clear(self) -> None:
        """Drop all data and the request log; the behaviour stays."""
        self._admin("POST", "clear")

    # -- behaviour ---------------------------------------------------------------------------
    def behave(self, **options) -> dict:
        """Merge options into the behaviour in force; returns the whole behaviour."""
        self.options = self._admin("POST", "behaviour", options)
        return self.options

    # -- what was seen -----------------------------------------------------------------------
    def seen(self) -> list[SeenRequest]:
        return [SeenRequest(s) for s in self._admin("GET", "seen")]

    def clear_seen(self) -> None:
        self._admin("POST", "seen/clear")

    @property
    def max_in_flight(self) -> int:
        """Most FHIR requests being answered at the same moment since the last reset/clear."""
        return self._admin("GET", "stats")["max_in_flight"]

    def stats(self) -> dict:
        return self._admin("GET", "stats")

    # -- FHIR, as a client would -------------------------------------------------------------
    def get(self, relative: str, *, accept: str = FHIR_JSON, token: str | None = None, record: bool = True):
        """GET base_url/relative (or an absolute URL); returns (status, body bytes, headers).
        With the `required_token` option set, it is sent unless `token` says otherwise."""
        headers = {"Accept": accept}
        token = token if token is not None else self.options.get("required_token")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if not record:
            headers["X-Test-Unrecorded"] = "1"
        return self._request("GET", urljoin(self.base_url + "/", relative), headers=headers)

    def get_json(self, relative: str, **kwargs) -> dict:
        status, data, _ = self.get(relative, **kwargs)
        if status != 200:
            raise RuntimeError(f"GET {relative} answered {status}: {data[:500]!r}")
        return json.loads(data)

    def first_page(self, relative: str, *, token: str | None = None) -> dict:
        """The first page only of a search (e.g. 'Observation?patient=1'), its `next` link kept:
        what the CDS Hooks sandbox puts in a prefetch. Not recorded in `seen()`."""
        return self.get_json(relative, token=token, record=False)


@pytest.fixture(scope="session")
def medplum_server():
    """One Medplum FHIR test server (node process) for the whole session."""
    with MedplumFhirServer() as server:
        yield server


@pytest.fixture
def fhir_server_medplum(medplum_server):
    """The session's Medplum FHIR test server, empty and with its default behaviour."""
    medplum_server.reset()
    return medplum_server
