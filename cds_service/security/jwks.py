"""JSON Web Key Sets: loading, fetching (with a timeout), caching and rate-limited refresh.

Role in the data flow: used by `auth` to find the public key named by a client JWT's `kid`
(CDS Hooks 2.0 "Trusting CDS Clients": the client publishes its keys as a JWKS, referenced by
the `jku` header or agreed out of band). Rules kept here:
- a key set is fetched only over https, except from a loopback host (local EHRs and tests), and
  redirects are not followed: the keys must come from the URL that was trusted;
- fetched sets are cached; an unknown `kid` triggers a refresh at most once a minute per issuer,
  so a stream of tokens with made-up `kid`s cannot make us hammer the issuer's JWKS endpoint;
- only signature keys with a `kid` are kept (`use`, when given, must be `sig`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

from cds_service.security.outbound import outbound_url_problem

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_JWKS_BYTES = 1_000_000
REFRESH_INTERVAL_SECONDS = 60.0  # issue "Security": refresh on an unknown kid at most once a minute
MAX_AGE_SECONDS = 3600.0  # a cached set older than this is refreshed on its next use


class JwksError(Exception):
    """A key set that could not be read or fetched. The reason is short and carries no secret."""


def check_jwks_url(url: str) -> str | None:
    """Why `url` may not serve a key set, or None. https only, plain http only on loopback."""
    why = outbound_url_problem(url, LOOPBACK_HOSTS)
    if why == "must use https":
        return "must use https (plain http only on a loopback host)"
    return why


def parse_key_set(data: object) -> dict[str, dict]:
    """kid -> JWK for the signature keys of a JWKS document; JwksError if it is not a JWKS."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise JwksError("not a JSON Web Key Set (no 'keys' array)")
    keys: dict[str, dict] = {}
    for jwk in data["keys"]:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or not jwk["kid"]:
            continue  # a key we could never select (CDS Hooks requires kid)
        if jwk.get("use", "sig") != "sig":
            continue
        keys[jwk["kid"]] = jwk
    return keys


def load_key_set_file(path: str | Path) -> dict[str, dict]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise JwksError(f"cannot read key set file {path}: {type(error).__name__}") from None
    return parse_key_set(data)


def fetch_key_set(url: str, timeout: float) -> dict[str, dict]:
    """GET a JWKS document over https (or loopback http) with `timeout`, without redirects."""
    why = check_jwks_url(url)
    if why:
        raise JwksError(f"key set URL refused: {why}")
    session = requests.Session()
    # Loopback is never reached through a proxy; elsewhere the environment's proxy applies.
    session.trust_env = (urlsplit(url).hostname or "").lower() not in LOOPBACK_HOSTS
    try:
        with session.get(
            url, timeout=timeout, allow_redirects=False, stream=True,
            headers={"Accept": "application/jwk-set+json, application/json"},
        ) as response:
            if response.status_code != 200:
                raise JwksError(f"key set fetch answered HTTP {response.status_code}")
            body = b""
            for chunk in response.iter_content(65536):
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise JwksError("key set document too large")
    except requests.Timeout:
        raise JwksError("key set fetch timed out") from None
    except requests.RequestException:
        raise JwksError("key set fetch failed to connect") from None
    finally:
        session.close()
    try:
        data = json.loads(body)
    except ValueError:
        raise JwksError("key set document is not JSON") from None
    return parse_key_set(data)


@dataclass
class _CachedSet:
    keys: dict[str, dict]
    fetched_at: float


class RemoteKeySets:
    """Cache of fetched key sets, with a per-issuer refresh budget.

    `find(issuer, kid, urls)` looks the kid up in the cached sets of `urls`. A URL never tried
    before is fetched (then it counts against the issuer's budget); when the kid is unknown or
    the set is older than MAX_AGE_SECONDS, every URL is fetched again only if the issuer has not
    fetched in the last REFRESH_INTERVAL_SECONDS. One lock per issuer is held during its fetch, so
    concurrent first requests wait for one fetch rather than each fetching (or being refused).
    """

    def __init__(
        self,
        timeout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        fetch: Callable[[str, float], dict[str, dict]] = fetch_key_set,
        on_error: Callable[[str, str, str], None] | None = None,
    ):
        self.timeout = timeout
        self.clock = clock
        self._fetch = fetch
        self._on_error = on_error
        self._sets: dict[str, _CachedSet] = {}
        self._attempted: set[str] = set()
        self._last_fetch: dict[str, float] = {}  # issuer -> clock() of its last fetch
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock_for(self, issuer: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(issuer, threading.Lock())

    def _lookup(self, kid: str, urls: list[str]) -> tuple[dict | None, float]:
        for url in urls:
            cached = self._sets.get(url)
            if cached and kid in cached.keys:
                return cached.keys[kid], cached.fetched_at
        return None, 0.0

    def find(self, issuer: str, kid: str, urls: list[str]) -> dict | None:
        if not urls:
            return None
        with self._lock_for(issuer):
            now = self.clock()
            key, fetched_at = self._lookup(kid, urls)
            if key is not None and now - fetched_at < MAX_AGE_SECONDS:
                return key
            to_fetch = [u for u in urls if u not in self._attempted]
            last = self._last_fetch.get(issuer)
            if last is None or now - last >= REFRESH_INTERVAL_SECONDS:
                to_fetch = list(urls)
            if not to_fetch:
                return key  # a stale key is still better than none while the budget is spent
            self._last_fetch[issuer] = now
            for url in to_fetch:
                self._attempted.add(url)
                try:
                    self._sets[url] = _CachedSet(self._fetch(url, self.timeout), now)
                except JwksError as error:
                    # Keep the previous set (if any): an unreachable JWKS endpoint must not
                    # lock out a client whose key we already hold.
                    if self._on_error:
                        self._on_error(issuer, url, str(error))
            key, _ = self._lookup(kid, urls)
            return key
