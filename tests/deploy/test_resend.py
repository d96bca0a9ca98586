"""A hook call nginx resends after its replica died mid-call is answered, not refused as a replay.

deploy/nginx.conf resends a hook call whose connection to a replica broke to another replica
(`proxy_next_upstream error timeout non_idempotent`), with the same client JWT. The jti is then
already taken in the shared Redis replay store, by a call that was never answered. The run, on
loopback with real nginx, two `lumbar-cds serve` replicas sharing Redis and PostgreSQL, client
authentication on:
- replica A takes the call (B is nginx's backup, so the call reaches A first), which waits on a
  slow FHIR server; A is killed with kill -9 while the call is in flight;
- nginx resends it to B: the client sees 200, and the call's judgement is stored once;
- the same token and body sent again after that answer: 401 (answered, so a replay);
- a fresh token: 200.
The other cases of the rule (a different body, a live first owner, an answered first use) are in
tests/security/test_replay_resend.py.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from sqlalchemy import create_engine, func, select

from cds_service.cli import main as cli_main
from cds_service.governance.store.schema import judgement
from tests.governance.support import SIGN, early_mri_request
from tests.security.jwt_support import claims, sign

from .test_topology import wait_until
from .topology import Nginx, SignedDeployment, nginx_binary

pytestmark = [pytest.mark.topology, pytest.mark.postgres, pytest.mark.redis]

NGINX = nginx_binary()
FHIR_DELAY_SECONDS = 1.0


class SlowFhirServer(ThreadingHTTPServer):
    """Answers every read after FHIR_DELAY_SECONDS: a Patient, or an empty searchset."""

    daemon_threads = True

    def __init__(self):
        self.reads = 0
        super().__init__(("127.0.0.1", 0), SlowFhirHandler)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class SlowFhirHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.reads += 1
        time.sleep(FHIR_DELAY_SECONDS)
        path = self.path.split("?", 1)[0]
        if path.startswith("/Patient/"):
            body = {"resourceType": "Patient", "id": path.rsplit("/", 1)[1], "gender": "male",
                    "birthDate": "1980-06-01"}
        else:
            body = {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # quiet
        pass


def slow_call(fhir_base: str, hook_instance: str) -> dict:
    """The early-MRI order-sign call with nothing prefetched: every key is read from `fhir_base`."""
    body = early_mri_request(hook_instance)
    del body["prefetch"]
    body["fhirServer"] = fhir_base
    return body


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (Debian: apt-get install nginx)")
def test_a_call_resent_by_nginx_after_its_replica_died_is_answered_once(tmp_path, pg_url, redis_url):
    assert cli_main(["db", "upgrade", "--database-url", pg_url]) == 0
    # B is nginx's backup: the call reaches A first
    deployment = SignedDeployment(tmp_path, pg_url, redis_url, "resend-test-key", backup_ports_of=(1,))
    key, base, conf = deployment.key, deployment.base, deployment.conf
    replica_a, replica_b = deployment.replica_a, deployment.replica_b
    fhir = SlowFhirServer()
    threading.Thread(target=fhir.serve_forever, daemon=True).start()
    url = f"{base}/cds-services/{SIGN}"
    headers = {"Authorization": f"Bearer {sign(key, claims(url))}"}
    body = slow_call(fhir.base, "resent-once")
    try:
        replica_a.wait_ready()
        replica_b.wait_ready()
        with Nginx(NGINX, conf):
            assert wait_until(lambda: requests.get(f"{base}/healthz", timeout=2).status_code == 200, 10)
            outcome: dict = {}

            def send():
                try:
                    outcome["response"] = requests.post(url, json=body, headers=headers, timeout=60)
                except requests.RequestException as error:
                    outcome["response"] = error

            sender = threading.Thread(target=send)
            sender.start()
            deadline = time.monotonic() + 20
            while fhir.reads == 0 and time.monotonic() < deadline:  # A is gathering: in flight
                time.sleep(0.05)
            assert fhir.reads > 0, "the call never reached replica A's gathering"
            replica_a.kill()
            sender.join(60)
            response = outcome["response"]
            assert not isinstance(response, Exception), f"the client saw {response!r}"
            assert response.status_code == 200, response.text[:500]
            assert "cards" in response.json()

            again = requests.post(url, json=body, headers=headers, timeout=60)
            assert again.status_code == 401, "an answered token must never be accepted again"
            fresh = {"Authorization": f"Bearer {sign(key, claims(url))}"}
            assert requests.post(url, json=slow_call(fhir.base, "fresh"), headers=fresh, timeout=60).status_code == 200
        j = judgement.c
        with create_engine(pg_url).connect() as connection:
            stored = connection.execute(select(func.count()).where(j.hook_instance == "resent-once")).scalar_one()
        assert stored == 1, f"the resent call's judgement was stored {stored} times"
        assert "jti replayed" in replica_b.log()
    finally:
        fhir.shutdown()
        for replica in (replica_a, replica_b):
            if replica.process and replica.process.poll() is None:
                replica.stop()
