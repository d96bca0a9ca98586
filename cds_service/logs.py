"""One logging configuration: structured JSON lines on stderr, with tokens redacted.

Role in the data flow: cross-cutting. The service logs what an operator needs (service id,
hookInstance, status, duration, error codes, failure reasons) and never request bodies, patient
ids, names, birth dates or tokens. `RedactingFilter` is the safety net: whatever reaches a log
record, a bearer token or JWT in it is replaced before it is written, and so are FHIR resource ids
in URL paths (`/Patient/<id>` -> `/Patient/[id]`) and URL query strings (`?patient=<id>` ->
`?[query]`), as a library's request line (urllib3 at DEBUG) would carry them. The filter sits on
the one handler, which is the root logger's: every logger's records pass it, the package's and
third-party libraries' alike. Third-party loggers are capped at WARNING unless the operator asks
for them (CDS_LOG_THIRD_PARTY=true); gunicorn's own lines (start, listening, workers booted and
exited) are kept, in the same JSON (`web.serving.JsonGunicornLogger`).

One-time warnings (`warn_once`: a deployment choice that weakens a guarantee) are said once per
process group: under `lumbar-cds serve`, the first process to say one leaves a marker in the
instance's own folder (LUMBAR_CDS_ONCE_DIR, set by `serve`), so the other workers, and a worker
that replaces one, stay quiet; elsewhere once per process; never when the folder is `-`
(`lumbar-cds evaluate`, a developer's tool run on the shipped defaults).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from datetime import UTC, datetime

import orjson

LOGGER_NAME = "lumbar_cds"

_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]+=*")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_TOKEN_FIELD = re.compile(r'(?i)("?(?:access_token|id_token|refresh_token|authorization)"?\s*[:=]\s*"?)[^",\s}]+')
# A FHIR read or search in a URL path: /<ResourceType>/<id> (resource types are capitalised; our
# own routes, /cds-services/<service_id>, are not). And any query string after a path or host.
_FHIR_ID = re.compile(r"(/[A-Z][A-Za-z]{2,63}/)[A-Za-z0-9\-.]{1,64}")
_QUERY = re.compile(r"(?<=[\w/.\]])\?[^\s\"']+")

# Loggers of the libraries the service uses: capped at WARNING unless CDS_LOG_THIRD_PARTY=true
# (urllib3 logs every request line at DEBUG, sqlalchemy every statement at INFO).
THIRD_PARTY_LOGGERS = ("urllib3", "requests", "sqlalchemy", "alembic", "werkzeug", "uvicorn",
                       "uvicorn.error")
ONCE_ENV = "LUMBAR_CDS_ONCE_DIR"  # set by `lumbar-cds serve`; "-" turns one-time warnings off


def redact(text: str) -> str:
    text = _BEARER.sub(r"\1[REDACTED]", text)
    text = _JWT.sub("[REDACTED-JWT]", text)
    text = _TOKEN_FIELD.sub(r"\1[REDACTED]", text)
    if "/" in text:
        text = _FHIR_ID.sub(r"\1[id]", text)
    if "?" in text:
        text = _QUERY.sub("?[query]", text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            try:
                record.msg = record.msg % record.args
            except (TypeError, ValueError):
                record.msg = f"{record.msg} {record.args!r}"
            record.args = None
        record.msg = redact(str(record.msg))
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: redact(v) if isinstance(v, str) else v for k, v in fields.items()}
        return True


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            "pid": record.process,  # which worker process wrote it
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            # The exception's type and where it was raised, never its message (it may hold data).
            tb = record.exc_info[2]
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            line["exception"] = record.exc_info[0].__name__
            if tb is not None:
                line["at"] = f"{tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}"
        return orjson.dumps(line, default=str).decode()


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at emit time (as logging's lastResort does)."""

    def __init__(self):
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def configure_logging(level: str = "INFO", third_party: bool = False) -> logging.Logger:
    """Idempotent: one redacting stderr handler, on the root logger, so that every record passes
    the redaction (the package's, and urllib3's or a traceback's from any library); the package
    logger at `level`; third-party loggers at WARNING unless `third_party` (CDS_LOG_THIRD_PARTY)."""
    root = logging.getLogger()
    if not any(getattr(h, "_lumbar_cds", False) for h in root.handlers):
        handler = _CurrentStderrHandler()
        handler.setFormatter(JsonLineFormatter())
        handler.addFilter(RedactingFilter())
        handler._lumbar_cds = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level.upper())
    for stale in [h for h in logger.handlers if getattr(h, "_lumbar_cds", False)]:
        logger.removeHandler(stale)  # an older configuration's handler: the root's replaces it
    for name in THIRD_PARTY_LOGGERS:
        # Werkzeug's access log prints request lines; ours replaces it. Opted in, a library
        # logs at its own level (NOTSET: the root's), still through the redacting handler.
        logging.getLogger(name).setLevel(logging.NOTSET if third_party else logging.WARNING)
    return logger


def get_logger(name: str | None = None) -> logging.Logger:
    return logging.getLogger(LOGGER_NAME if not name else f"{LOGGER_NAME}.{name}")


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields) -> None:
    logger.log(level, event, extra={"fields": fields})


said_once: set[str] = set()  # the one-time warnings this process has seen (said or not)


def warn_once(logger: logging.Logger, key: str, event: str, level: int = logging.WARNING, **fields) -> None:
    """Log `event` once per process group (see the module docstring); `key` names the warning."""
    if key in said_once:
        return
    said_once.add(key)
    folder = os.environ.get(ONCE_ENV)
    if folder == "-":
        return
    if folder:
        try:
            os.close(os.open(os.path.join(folder, key), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return  # another process of the group said it
        except OSError:
            pass  # the folder is gone: say it here rather than not at all
    log_event(logger, event, level, **fields)
