"""Which CDS clients are trusted: the issuers, their key sets, allowlisted `jku`s and tenants.

Role in the data flow: configuration read once when the app is made (and by `lumbar-cds serve`'s
preflight), before any request; `security.auth` verifies each call's JWT against what this
module loaded. The sources: the public CDS Hooks sandbox preset (`TRUST_SANDBOX`, its key set
shipped in `security/trust/sandbox-jwks.json`) and a JSON or YAML issuers file
(`TRUSTED_ISSUERS_FILE`). An unusable configuration is a `TrustConfigError`: the app refuses to
start, with a message naming the file and the entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cds_service.security.jwks import JwksError, check_jwks_url, load_key_set_file

SANDBOX_ISSUER = "https://sandbox.cds-hooks.org"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
SANDBOX_JWKS_FILE = Path(__file__).parent / "trust" / "sandbox-jwks.json"


class TrustConfigError(ValueError):
    """The trusted-issuers configuration is unusable: the app refuses to start."""


@dataclass
class TrustedIssuer:
    iss: str
    static_keys: dict[str, dict] = field(default_factory=dict)  # kid -> JWK, from jwks_file
    jwks_urls: list[str] = field(default_factory=list)  # fetched when the kid is not static
    jku_allowlist: frozenset[str] = frozenset()  # a token's jku must be one of these
    tenants: frozenset[str] | None = None  # when set, the token's `tenant` claim must be one


def sandbox_issuer() -> TrustedIssuer:
    """The public CDS Hooks sandbox: its shipped key set, its jku allowlisted."""
    return TrustedIssuer(
        iss=SANDBOX_ISSUER,
        static_keys=load_key_set_file(SANDBOX_JWKS_FILE),
        jku_allowlist=frozenset({SANDBOX_JKU}),
    )


def _string_list(entry: dict, key: str, where: str) -> list[str]:
    value = entry.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise TrustConfigError(f"{where}: '{key}' must be a string or a list of strings")
    return list(value)


def parse_issuer(entry: Any, where: str, base_dir: Path) -> TrustedIssuer:
    if not isinstance(entry, dict):
        raise TrustConfigError(f"{where}: must be a mapping with 'iss'")
    unknown = set(entry) - {"iss", "jwks_file", "jwks_url", "jku_allowlist", "tenant"}
    if unknown:
        raise TrustConfigError(f"{where}: unknown keys {sorted(unknown)}")
    iss = entry.get("iss")
    if not isinstance(iss, str) or not iss.strip():
        raise TrustConfigError(f"{where}: 'iss' is required")
    files = _string_list(entry, "jwks_file", where)
    urls = _string_list(entry, "jwks_url", where)
    allowlist = _string_list(entry, "jku_allowlist", where)
    if not (files or urls or allowlist):
        raise TrustConfigError(f"{where} ({iss}): give jwks_file, jwks_url or jku_allowlist")
    for url in urls + allowlist:
        why = check_jwks_url(url)
        if why:
            raise TrustConfigError(f"{where} ({iss}): key set URL {url!r} {why}")
    static: dict[str, dict] = {}
    for name in files:
        path = Path(name) if Path(name).is_absolute() else base_dir / name
        try:
            static.update(load_key_set_file(path))
        except JwksError as error:
            raise TrustConfigError(f"{where} ({iss}): {error}") from None
    tenants = _string_list(entry, "tenant", where)
    return TrustedIssuer(
        iss=iss,
        static_keys=static,
        jwks_urls=urls,
        # A configured jwks_url is trusted by definition, so a jku naming it is accepted too.
        jku_allowlist=frozenset(allowlist) | frozenset(urls),
        tenants=frozenset(tenants) if tenants else None,
    )


def load_issuers_file(path: str | Path) -> list[TrustedIssuer]:
    """Read a JSON or YAML issuers file: a list of entries, or {"issuers": [...]}."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise TrustConfigError(f"cannot read trusted issuers file {path}: {error.strerror}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError):
        raise TrustConfigError(f"trusted issuers file {path} is not valid JSON/YAML") from None
    if isinstance(data, dict) and "issuers" in data:
        data = data["issuers"]
    if data is None:
        data = []
    if not isinstance(data, list):
        raise TrustConfigError(f"trusted issuers file {path}: expected a list of issuers")
    base_dir = path.parent
    return [parse_issuer(entry, f"{path.name} entry {i + 1}", base_dir) for i, entry in enumerate(data)]


def trusted_issuers(settings: dict) -> dict[str, TrustedIssuer]:
    issuers: dict[str, TrustedIssuer] = {}
    if settings.get("TRUST_SANDBOX", True):
        issuers[SANDBOX_ISSUER] = sandbox_issuer()
    if settings.get("TRUSTED_ISSUERS_FILE"):
        seen: set[str] = set()
        for issuer in load_issuers_file(settings["TRUSTED_ISSUERS_FILE"]):
            if issuer.iss in seen:
                raise TrustConfigError(f"issuer {issuer.iss} is listed twice")
            seen.add(issuer.iss)
            issuers[issuer.iss] = issuer  # an entry for the sandbox replaces the preset
    return issuers
