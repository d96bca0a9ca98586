"""Settings: the one table of every configuration key, its environment variable, type and default.

Role in the data flow: read once by `create_app(config)` (and by the `lumbar-cds` commands). A key
given in the `config` dict wins; otherwise the environment variable `CDS_<KEY>` is read; otherwise
the documented default applies. Every value is parsed and validated here, at start-up, so a typo
in a deployment stops the service with one line naming the variable instead of a surprise later:

- booleans: `true/false`, `1/0`, `yes/no`, `on/off` (any case); anything else is refused;
- sizes: a number of bytes, or a number with a unit: `B`, `kB`/`MB`/`GB` (x1000) or
  `KiB`/`MiB`/`GiB` (x1024), any case, e.g. `5MB` = 5 000 000, `5MiB` = 5 242 880;
- comma lists: `a,b,c` (blanks dropped; an empty value is the empty list);
- optional values: an empty value is the same as unset (None);
- paths are made absolute at load, relative to the working directory at start.

The model is a pydantic-settings `BaseSettings`; the public surface is `load_settings`, `SETTINGS`
(key, env, default, doc, accepted), `settings_markdown` (the README table) and `SettingsError`.
"""

import os
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from cds_service.config.values import (  # noqa: F401 - the parsers the table below uses
    _BOOL_ACCEPTED,
    _FALSE,
    _SIZE,
    _SIZE_ACCEPTED,
    _TRUE,
    _UNITS,
    _absolute,
    _bool,
    _choice,
    _code_problem,
    _csv,
    _database_url,
    _each,
    _existing_dir,
    _existing_file,
    _host,
    _int,
    _optional,
    _origin_problem,
    _public_base_url,
    _Refused,
    _seconds,
    _size,
    _text,
    _token,
    _url,
)

ENV_PREFIX = "CDS_"


class SettingsError(ValueError):
    """A setting's value is refused. str() is one line: variable, value (or "(hidden)"), what is accepted."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems  # [(environment variable, one-line message)]
        self.env = problems[0][0]
        first = problems[0][1]
        if len(problems) > 1:
            first += "; also invalid: " + ", ".join(env for env, _ in problems[1:])
        super().__init__(first)


# --- the model -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Meta:
    """Annotation metadata of a field: what the README says is accepted, how its default is shown."""

    accepted: str
    show: Callable[[Any], str] | None = None
    secret: bool = False  # never shown in an error message


def _kind(parse: Callable[[Any], Any], accepted: str, *, py: Any, show: Callable[[Any], str] | None = None,
          secret: bool = False):
    return Annotated[py, NoDecode, BeforeValidator(parse), _Meta(accepted, show, secret)]


def _show_size(n: int) -> str:
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


Bool = _kind(_bool, _BOOL_ACCEPTED, py=bool, show=lambda v: str(v).lower())
Size = _kind(_size, "bytes, or with a unit: kB, MB, GB (x1000) or KiB, MiB, GiB (x1024), e.g. 5MB", py=int, show=_show_size)
Count = _kind(_int(1), "integer >= 1", py=int)
Seconds = _kind(_seconds, "seconds > 0", py=float)
Csv = _kind(_csv, "comma-separated list", py=tuple[str, ...])
Origins = _kind(_each(_origin_problem, "http(s) origins"), "comma-separated http(s) origins", py=tuple[str, ...])
Token = _kind(_optional(_token), "text", py=str | None, secret=True)
SecretText = _kind(_text, "text", py=str, secret=True)
Text = _kind(_text, "text", py=str)
LogLevel = _kind(_choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", upper=True),
                 "DEBUG, INFO, WARNING, ERROR, CRITICAL", py=str)
Mode = _kind(_choice("active", "silent"), "active, silent", py=str)
Host = _kind(_host, "host name or IP address", py=str)
Port = _kind(_int(1, 65535), "integer from 1 to 65535", py=int)
NonNegative = _kind(_int(0), "integer >= 0", py=int)
ExistingFile = _kind(_optional(_existing_file), "existing file", py=str | None)
ExistingDir = _kind(_optional(_existing_dir), "existing directory", py=str | None)
Path_ = _kind(_absolute, "path (made absolute)", py=str)
OptionalPath = _kind(_optional(_absolute), "path (made absolute)", py=str | None)
RedisUrl = _kind(_optional(_url("redis", "rediss", example="redis://redis:6379/0")), "redis:// or rediss:// URL", py=str | None)
BaseUrl = _kind(_optional(_public_base_url), "http:// or https:// URL", py=str | None)
DatabaseUrl = _kind(_optional(_database_url), "SQLAlchemy URL", py=str | None)
Codes = _kind(_each(_code_problem, "system|code"), "comma-separated system|code", py=tuple[str, ...])


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading the mapping given to `load_settings`."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k: v for k, v in self._environ.items() if k.startswith(ENV_PREFIX)}


_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("lumbar_cds_environ", default=None)


class Settings(BaseSettings):
    """Every setting. Field name = key; environment variable = CDS_<key>; description = README text."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, case_sensitive=True, extra="ignore", validate_default=True, frozen=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The config dict (init kwargs) wins over the environment; no .env or secrets files.
        environ = _ENVIRON.get()
        return (init_settings, _EnvSource(settings_cls, os.environ if environ is None else environ))

    # --- HTTP surface -------------------------------------------------------------------------
    MAX_BODY_BYTES: Size = Field(5_000_000, description="Largest accepted request body (413 above).")
    MAX_BUNDLE_ENTRIES: Count = Field(50_000, description="Most entries accepted in one prefetch or draftOrders Bundle (413 above).")
    MAX_JSON_DEPTH: Count = Field(64, description="Deepest JSON nesting accepted in a request body (400 above).")
    CORS_ORIGINS: Csv = Field(("*",), description="Comma-separated origins allowed by CORS (browser clients such as the CDS Hooks sandbox).")
    LOG_LEVEL: LogLevel = Field("INFO", description="Log level of the structured JSON log lines written to stderr.")
    HOST: Host = Field("127.0.0.1", description="Address `lumbar-cds serve` binds (`0.0.0.0` in a container).")
    PORT: Port = Field(8080, description="Port `lumbar-cds serve` listens on.")
    # --- Fetching from the EHR's FHIR server --------------------------------------------------
    GATHER_BUDGET_MS: Count = Field(3000, description="Time budget in milliseconds for gathering the data of one call (prefetch gaps fetched from the FHIR server).")
    FHIR_CONNECT_TIMEOUT: Seconds = Field(2.0, description="Connect timeout in seconds for calls to the EHR's FHIR server.")
    FHIR_READ_TIMEOUT: Seconds = Field(5.0, description="Read timeout in seconds for calls to the EHR's FHIR server.")
    FHIR_MAX_PAGES: Count = Field(50, description="Most Bundle pages followed (via `next` links) for one prefetch key.")
    FHIR_MAX_BYTES_PER_KEY: Size = Field(20_000_000, description="Most bytes (decompressed) read from the FHIR server for one prefetch key, all pages together.")
    FHIR_MAX_ENTRIES_PER_KEY: Count = Field(50_000, description="Most Bundle entries read from the FHIR server for one prefetch key, all pages together.")
    FHIR_PLAIN_HTTP_HOSTS: Csv = Field(("127.0.0.1", "localhost", "::1"), description="Hosts whose fhirServer may be plain http (all others must be https).")
    FHIR_ALLOWED_ORIGINS: Origins = Field((), description="If set, the only fhirServer origins (scheme://host:port) the service will call (SSRF guard).")
    # --- Client authentication (CDS Hooks 2.0 'Trusting CDS Clients') -------------------------
    AUTH_REQUIRED: Bool = Field(False, description="Require a signed JWT from the CDS client on discovery, services and feedback.")
    TRUSTED_ISSUERS_FILE: ExistingFile = Field(None, description="JSON or YAML file listing trusted issuers: `[{iss, jwks_file | jwks_url | jku_allowlist, tenant?}]`.")
    TRUST_SANDBOX: Bool = Field(True, description="Trust the public CDS Hooks sandbox issuer with its shipped key set (only matters when AUTH_REQUIRED).")
    JWT_LEEWAY_SECONDS: NonNegative = Field(30, description="Clock skew tolerated on exp / iat.")
    JWKS_TIMEOUT: Seconds = Field(3.0, description="Timeout in seconds for fetching a JSON Web Key Set.")
    REDIS_URL: RedisUrl = Field(None, description="Redis URL for the shared JWT replay (jti) store; in-process store when unset.")
    PUBLIC_BASE_URL: BaseUrl = Field(None, description="The service's external base URL (e.g. `https://cds.example.org`); the JWT `aud` is checked against it plus the path. Set it behind a reverse proxy; when unset, the URL of the request is used.")
    # --- Behaviour ------------------------------------------------------------------------------
    MODE: Mode = Field("active", description="`active` returns cards; `silent` decides and records but returns no cards or actions.")
    MAX_JUDGED_ORDERS: Count = Field(50, description="Most draft orders judged in one call; further orders are not rated.")
    CARDS_DIR: ExistingDir = Field(None, description="Folder of card content files; defaults to the shipped `cards/`.")
    LOCAL_CODES_FILE: ExistingFile = Field(None, description="YAML file of the site's local codes added to the shipped value sets.")
    POST_VOID_RESIDUAL_CODES: Codes = Field((), description="Local `system|code` Observation codes for post-void residual volume (mL); > 200 mL counts as urinary retention.")
    # --- Governance store -----------------------------------------------------------------------
    DATABASE_URL: DatabaseUrl = Field(None, description="SQLAlchemy URL of the judgement/feedback store (e.g. `postgresql+psycopg://user:pw@host/db`); embedded SQLite at DATABASE_PATH when unset.")
    DATABASE_PATH: Path_ = Field("instance/lumbar-cds.sqlite3", description="Path of the embedded SQLite store (created on first start), relative to the working directory.")
    SPOOL_DIR: OptionalPath = Field(None, description="Folder where judgements wait, on disk, while the store is unreachable; when unset, `spool/` beside the embedded SQLite file (DATABASE_PATH's folder, `instance/` by default).")
    PATIENT_HASH_KEY: SecretText = Field("change-me-in-production", description="Key of the HMAC that replaces patient ids in the store.")
    DASHBOARD_TOKEN: Token = Field(None, description="Token that turns on /dashboard; requests must carry it. Off when unset.")
    METRICS_TOKEN: Token = Field(None, description="Token that turns on /metrics; requests must carry it. Off when unset.")
    RECORD_JUDGEMENTS: Bool = Field(True, description="Record every card and rating in the governance store.")
    # --- Red-flag screen (clinical-specification.md §12) ----------------------------------------
    SCREEN_ENABLED: Bool = Field(True, description="Offer the red-flag screen (a link on cards that withhold the rating or cannot date the episode) and read its answers on the next hook call.")
    SCREEN_SECRET: SecretText = Field("dev-screen-secret-change-me", description="Key that signs the screen's link handles and form tokens; the same in every worker and instance. The shipped default is for development only.")
    SCREEN_LINK_MINUTES: Count = Field(30, description="Minutes a screen link stays valid after the card that carries it.")
    SCREEN_KEEP_DAYS: Count = Field(90, description="Days a completed screen's answers are read for the patient's episode.")
    SMART_LAUNCH_URL: BaseUrl = Field(None, description="When set, cards that offer the red-flag screen also carry a `smart` link to this launch URL (normally `<public base URL>/screen/launch`) with the screen's handle as `appContext`; the service then runs the SMART EHR launch.")
    SMART_CLIENT_ID: Text = Field("lumbar-imaging-cds-screen", description="The OAuth client id the service is registered under at the EHR's SMART authorization server (a public client, PKCE S256).")


# --- the public table --------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    key: str
    default: Any
    doc: str
    accepted: str
    show_default: Callable[[Any], str] | None = None
    secret: bool = False

    @property
    def env(self) -> str:
        return f"{ENV_PREFIX}{self.key}"


def _settings_table() -> Iterator[Setting]:
    for key, field in Settings.model_fields.items():
        meta = next(m for m in field.metadata if isinstance(m, _Meta))
        yield Setting(key, field.default, field.description or "", meta.accepted, meta.show, meta.secret)


SETTINGS: tuple[Setting, ...] = tuple(_settings_table())
SETTINGS_BY_KEY = {s.key: s for s in SETTINGS}


def _shown(setting: Setting, value: Any) -> str:
    """The value as an error message may show it: never a token, key or URL with credentials."""
    if setting.secret:
        return "(hidden)"
    if setting.key.endswith("_URL") and isinstance(value, str):
        try:
            parts = urlsplit(value.strip())
            userinfo = parts.username is not None or parts.password is not None
        except ValueError:
            userinfo = True
        if userinfo or "@" in value:
            return "(hidden)"
    return repr(value)


def _problems(error: ValidationError, raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors(include_url=False):
        key = str(item["loc"][0]) if item["loc"] else "?"
        setting = SETTINGS_BY_KEY.get(key)
        if setting is None:  # not expected: every field has a parser
            problems.append((key, f"{key}: {item['msg']}"))
            continue
        cause = (item.get("ctx") or {}).get("error")
        problem = str(cause) if isinstance(cause, _Refused) else f"is invalid: {item['msg']} (use {setting.accepted})"
        value = raw.get(key, item.get("input"))
        problems.append((setting.env, f"{setting.env}={_shown(setting, value)} {problem}"))
    return problems


def load_settings(
    config: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Resolve every setting: explicit config dict, then `CDS_*` environment, then default.

    A config value of None means the setting's default. Keys that are not settings (Flask's own
    such as TESTING) pass through untouched. Raises SettingsError on the first refused value(s).
    """
    config = dict(config or {})
    given = {}
    for setting in SETTINGS:
        if setting.key in config:
            value = config.pop(setting.key)
            given[setting.key] = setting.default if value is None else value
    source = os.environ if environ is None else environ
    raw = {s.key: source[s.env] for s in SETTINGS if s.env in source}
    raw.update(given)
    token = _ENVIRON.set(environ)
    try:
        settings = Settings(**given)
    except ValidationError as error:
        raise SettingsError(_problems(error, raw)) from None
    finally:
        _ENVIRON.reset(token)
    resolved = settings.model_dump()
    resolved.update(config)  # unknown keys pass through untouched
    return resolved


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def settings_markdown() -> str:
    """The README table of settings (between its `settings-table` markers)."""
    rows = ["| variable | default | accepted values | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        if s.default is None or s.default == () or s.default == "":
            default = "(unset)"
        elif s.show_default is not None:
            default = s.show_default(s.default)
        elif isinstance(s.default, tuple):
            default = ",".join(s.default)
        else:
            default = str(s.default)
        rows.append(f"| `{s.env}` | `{_cell(default)}` | {_cell(s.accepted)} | {_cell(s.doc)} |")
    return "\n".join(rows)
