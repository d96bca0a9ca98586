"""Settings: the one table of every configuration key, its environment variable and default.

Role in the data flow: read once by `create_app(config)`. A key given in the `config` dict wins;
otherwise the environment variable `CDS_<KEY>` is read; otherwise the documented default applies.
The README's "Configuration" section is generated from this table (see `settings_markdown`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


def _bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def _csv(value: str | list | tuple) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(part.strip() for part in str(value).split(",") if part.strip())


def _optional_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


@dataclass(frozen=True)
class Setting:
    key: str
    parse: Callable[[Any], Any]
    default: Any
    doc: str

    @property
    def env(self) -> str:
        return f"CDS_{self.key}"


SETTINGS: tuple[Setting, ...] = (
    # --- HTTP surface -------------------------------------------------------------------------
    Setting("MAX_BODY_BYTES", int, 5_000_000, "Largest accepted request body in bytes (413 above)."),
    Setting("MAX_BUNDLE_ENTRIES", int, 50_000, "Most entries accepted in one prefetch or draftOrders Bundle (413 above)."),
    Setting("MAX_JSON_DEPTH", int, 64, "Deepest JSON nesting accepted in a request body (400 above)."),
    Setting("CORS_ORIGINS", _csv, ("*",), "Comma-separated origins allowed by CORS (browser clients such as the CDS Hooks sandbox)."),
    Setting("LOG_LEVEL", str, "INFO", "Log level of the structured JSON log lines written to stderr."),
    # --- Fetching from the EHR's FHIR server --------------------------------------------------
    Setting("FHIR_CONNECT_TIMEOUT", float, 2.0, "Connect timeout in seconds for calls to the EHR's FHIR server."),
    Setting("FHIR_READ_TIMEOUT", float, 5.0, "Read timeout in seconds for calls to the EHR's FHIR server."),
    Setting("FHIR_MAX_PAGES", int, 10, "Most Bundle pages followed (via `next` links) for one prefetch key."),
    Setting("FHIR_PLAIN_HTTP_HOSTS", _csv, ("127.0.0.1", "localhost", "::1"), "Hosts whose fhirServer may be plain http (all others must be https)."),
    Setting("FHIR_ALLOWED_ORIGINS", _csv, (), "If set, the only fhirServer origins (scheme://host:port) the service will call (SSRF guard)."),
    # --- Client authentication (CDS Hooks 2.0 'Trusting CDS Clients') -------------------------
    Setting("AUTH_REQUIRED", _bool, False, "Require a signed JWT from the CDS client on discovery, services and feedback."),
    Setting("TRUSTED_ISSUERS_FILE", _optional_str, None, "JSON or YAML file listing trusted issuers: `[{iss, jwks_file | jwks_url | jku_allowlist, tenant?}]`."),
    Setting("TRUST_SANDBOX", _bool, True, "Trust the public CDS Hooks sandbox issuer with its shipped key set (only matters when AUTH_REQUIRED)."),
    Setting("JWT_LEEWAY_SECONDS", int, 30, "Clock skew tolerated on exp / iat."),
    Setting("JWKS_TIMEOUT", float, 3.0, "Timeout in seconds for fetching a JSON Web Key Set."),
    Setting("REDIS_URL", _optional_str, None, "Redis URL for the shared JWT replay (jti) store; in-process store when unset."),
    Setting("PUBLIC_BASE_URL", _optional_str, None, "The service's external base URL (e.g. `https://cds.example.org`); the JWT `aud` is checked against it plus the path. Set it behind a reverse proxy; when unset, the URL of the request is used."),
    # --- Behaviour ------------------------------------------------------------------------------
    Setting("MODE", str, "active", "`active` returns cards; `silent` decides and records but returns no cards or actions."),
    Setting("CARDS_DIR", _optional_str, None, "Folder of card content files; defaults to the shipped `cards/`."),
    Setting("POST_VOID_RESIDUAL_CODES", _csv, (), "Local `system|code` Observation codes for post-void residual volume (mL); > 200 mL counts as urinary retention."),
    # --- Governance store -----------------------------------------------------------------------
    Setting("DATABASE_URL", _optional_str, None, "SQLAlchemy URL of the judgement/feedback store; embedded SQLite at DATABASE_PATH when unset."),
    Setting("DATABASE_PATH", str, "instance/lumbar-cds.sqlite3", "Path of the embedded SQLite store (created on first start)."),
    Setting("PATIENT_HASH_KEY", str, "change-me-in-production", "Key of the HMAC that replaces patient ids in the store."),
    Setting("DASHBOARD_TOKEN", _optional_str, None, "Token that turns on /dashboard; requests must carry it. Off when unset."),
    Setting("RECORD_JUDGEMENTS", _bool, True, "Record every card and rating in the governance store."),
)

SETTINGS_BY_KEY = {s.key: s for s in SETTINGS}


def load_settings(
    config: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Resolve every setting: explicit config dict, then `CDS_*` environment, then default."""
    config = dict(config or {})
    environ = os.environ if environ is None else environ
    resolved: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.key in config:
            raw = config.pop(setting.key)
            resolved[setting.key] = raw if raw is None else setting.parse(raw)
        elif setting.env in environ:
            resolved[setting.key] = setting.parse(environ[setting.env])
        else:
            resolved[setting.key] = setting.default
    if resolved["MODE"] not in {"active", "silent"}:
        raise ValueError(f"CDS_MODE must be 'active' or 'silent', not {resolved['MODE']!r}")
    # Unknown keys pass through untouched (Flask's own keys such as TESTING).
    resolved.update(config)
    return resolved


def settings_markdown() -> str:
    """The README table of settings."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for s in SETTINGS:
        default = ",".join(s.default) if isinstance(s.default, tuple) else s.default
        rows.append(f"| `{s.env}` | `{default if default not in (None, '') else '(unset)'}` | {s.doc} |")
    return "\n".join(rows)
