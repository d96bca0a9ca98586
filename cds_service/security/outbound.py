"""The rules for every URL the service calls out to: the EHR's fhirServer and JSON Web Key Sets.

Role in the data flow: security at the door. The controller checks `fhirServer` with
`check_fhir_server` before anything is gathered; `gather.fhir_client` binds the bearer token to the
fhirServer origin with `origin_of`; `security.jwks` checks key-set URLs with the same rule
(CDS Hooks 2.0 "FHIR Resource Access" and "Trusting CDS Clients").

Always refused, whatever the allowlist says: link-local addresses (169.254.0.0/16, fe80::/10)
and the cloud metadata endpoints (169.254.169.254, fd00:ec2::254, metadata.google.internal,
metadata), named directly or reached through a host name that resolves to one. A name is resolved
with `socket.getaddrinfo` under a short deadline (cached briefly); a name that does not resolve
is not refused here: the fetch itself will fail.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urlsplit

METADATA_NAMES = frozenset({"metadata.google.internal", "metadata", "metadata.goog"})
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
REFUSED_ADDRESS = "must not be a link-local or cloud metadata address"
RESOLVE_TIMEOUT_SECONDS = 1.0
_CACHE_SECONDS = 60.0

_resolver = ThreadPoolExecutor(max_workers=2, thread_name_prefix="outbound-resolve")
_cache: dict[str, tuple[float, tuple[str, ...]]] = {}
_cache_lock = threading.Lock()


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def _refused_address(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped  # ::ffff:169.254.169.254 is 169.254.169.254
    return address in METADATA_ADDRESSES or any(address in network for network in LINK_LOCAL)


def _addresses(host: str) -> tuple[str, ...]:
    """The addresses `host` resolves to, within RESOLVE_TIMEOUT_SECONDS; () if it does not."""
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(host)
        if cached and now - cached[0] < _CACHE_SECONDS:
            return cached[1]
    future = _resolver.submit(socket.getaddrinfo, host, None, 0, socket.SOCK_STREAM)
    try:
        found = tuple(sorted({info[4][0] for info in future.result(timeout=RESOLVE_TIMEOUT_SECONDS)}))
    except (OSError, UnicodeError, FutureTimeout):
        found = ()
    with _cache_lock:
        if len(_cache) > 1024:
            _cache.clear()
        _cache[host] = (now, found)
    return found


def host_problem(host: str, resolve: bool = True) -> str | None:
    """Why no call may go to `host` (a URL's hostname), or None. `resolve=False` checks the name
    and literal addresses only (no DNS query)."""
    host = host.lower().rstrip(".")
    if host in METADATA_NAMES or _refused_address(host):
        return REFUSED_ADDRESS
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return None  # an address, and not a refused one
    except ValueError:
        pass
    if resolve and any(_refused_address(address) for address in _addresses(host)):
        return REFUSED_ADDRESS.replace("must not be", "must not resolve to")
    return None


def outbound_url_problem(url: str, plain_http_hosts, resolve: bool = True) -> str | None:
    """Why the service may not call `url` (FHIR server, key set), or None when it may:
    an absolute http(s) URL without credentials, https unless its host is in `plain_http_hosts`,
    never a link-local or cloud metadata host."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http(s) URL"
    if parts.username or parts.password:
        return "must not carry credentials"
    if parts.scheme == "http" and parts.hostname.lower() not in {h.lower() for h in plain_http_hosts}:
        return "must use https"
    return host_problem(parts.hostname, resolve)


def check_fhir_server(url: str, plain_http_hosts: tuple[str, ...], allowed_origins: tuple[str, ...]) -> str | None:
    """Return why `url` may not be called as fhirServer, or None when it may."""
    why = outbound_url_problem(url, plain_http_hosts, resolve=False)
    if why is None and allowed_origins and origin_of(url) not in {origin_of(o) for o in allowed_origins}:
        return "origin is not on the allowlist"
    # Resolved last: a name off the allowlist never makes the service query DNS.
    return why or host_problem(urlsplit(url).hostname or "")
