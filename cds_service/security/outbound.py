"""The rules for every URL the service calls out to: the EHR's fhirServer and JSON Web Key Sets.

Role in the data flow: security at the door. The controller checks `fhirServer` with
`check_fhir_server` before anything is gathered; `gather.fhir_client` binds the bearer token to the
fhirServer origin with `origin_of`; `security.jwks` checks key-set URLs with the same rule
(CDS Hooks 2.0 "FHIR Resource Access" and "Trusting CDS Clients").
"""

from __future__ import annotations

from urllib.parse import urlsplit


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def outbound_url_problem(url: str, plain_http_hosts) -> str | None:
    """Why the service may not call `url` (FHIR server, key set), or None when it may:
    an absolute http(s) URL without credentials, https unless its host is in `plain_http_hosts`."""
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
    return None


def check_fhir_server(url: str, plain_http_hosts: tuple[str, ...], allowed_origins: tuple[str, ...]) -> str | None:
    """Return why `url` may not be called as fhirServer, or None when it may."""
    why = outbound_url_problem(url, plain_http_hosts)
    if why is None and allowed_origins and origin_of(url) not in {origin_of(o) for o in allowed_origins}:
        return "origin is not on the allowlist"
    return why
