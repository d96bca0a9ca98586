"""Test support: key pairs, signed client JWTs, issuers files and a loopback JWKS server.

Keys are generated here (EC P-384 and RSA-2048); nothing is mocked: the app verifies real
signatures, and key sets are fetched over real loopback HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

EHR_ISS = "https://ehr.example.test"
JKU_ISS = "https://jku-client.example.test"
BASE = "http://localhost"


@dataclass
class KeyPair:
    kid: str
    alg: str
    private_key: object

    @property
    def public_jwk(self) -> dict:
        jwk = json.loads(jwt.algorithms.get_default_algorithms()[self.alg].to_jwk(self.private_key.public_key()))
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return jwk

    @property
    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def ec_key(kid: str | None = None) -> KeyPair:
    return KeyPair(kid or f"ec-{uuid.uuid4().hex[:8]}", "ES384", ec.generate_private_key(ec.SECP384R1()))


def rsa_key(kid: str | None = None) -> KeyPair:
    return KeyPair(
        kid or f"rsa-{uuid.uuid4().hex[:8]}", "RS384",
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


def jwks(*keys: KeyPair) -> dict:
    return {"keys": [k.public_jwk for k in keys]}


def claims(aud: str, iss: str = EHR_ISS, **overrides) -> dict:
    now = int(time.time())
    body = {"iss": iss, "aud": aud, "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def sign(key: KeyPair, payload: dict, *, alg: str | None = None, **header) -> str:
    headers = {"kid": key.kid, **header}
    headers = {k: v for k, v in headers.items() if v is not None}
    return jwt.encode(payload, key.private_key, algorithm=alg or key.alg, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with_public_key(key: KeyPair, payload: dict) -> str:
    """The classic algorithm-confusion attack: HMAC 'signed' with the verifier's public key."""
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    mac = hmac.new(key.public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def unsigned(key: KeyPair, payload: dict) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": key.kid}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}."


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def write_issuers(path, entries: list[dict]) -> str:
    path.write_text(yaml.safe_dump({"issuers": entries}))
    return str(path)


class JwksServer:
    """A real loopback HTTP server publishing a (mutable) key set at /jwks.json, counting GETs."""

    def __init__(self, key_set: dict | None = None, *, delay_seconds: float = 0.0, status: int = 200):
        self.key_set = key_set or {"keys": []}
        self.delay_seconds = delay_seconds  # before answering (to exceed the client's timeout)
        self.status = status
        self.hits = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's naming
                with server._lock:
                    server.hits += 1
                    data = json.dumps(server.key_set).encode()
                if server.delay_seconds:
                    time.sleep(server.delay_seconds)
                status = server.status if self.path == "/jwks.json" else 404
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/jwks.json"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()
