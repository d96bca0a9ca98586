"""The value parsers of the settings: booleans, sizes, numbers, choices, lists, paths and URLs.

Role in the data flow: used by `cds_service.config` at start-up only. Each parser takes the raw
value (a string from the environment, or a Python value from the config dict) and returns the
typed value or raises `_Refused` with the end of a one-line message ("is not a boolean: ...").
"""

import math
import os
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit


class _Refused(ValueError):
    """Raised by the parsers below: `problem` completes "CDS_X='value' <problem>"."""


# --- parsers (each takes the raw value: a string from the environment, or any Python value) ----

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_BOOL_ACCEPTED = "true/false, 1/0, yes/no or on/off"


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise _Refused(f"is not a boolean: use {_BOOL_ACCEPTED}")


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*$", re.I)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
_SIZE_ACCEPTED = "a number of bytes, or a number with a unit B, kB, MB, GB (x1000) or KiB, MiB, GiB (x1024), e.g. 5MB"


def _size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        match = _SIZE.match(value) if isinstance(value, str) else None
        if not match:
            raise _Refused(f"is not a size: use {_SIZE_ACCEPTED}")
        number = float(match.group(1)) * _UNITS[(match.group(2) or "b").lower()]
        if number != int(number) and not match.group(2):
            raise _Refused(f"is not a size: use {_SIZE_ACCEPTED}")
        number = int(number)
    if number < 1:
        raise _Refused("is not a size of at least 1 byte")
    return number


def _int(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    accepted = f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"

    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise _Refused(f"is not {accepted}")
        if isinstance(value, int):
            number = value
        elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            number = int(value)
        else:
            raise _Refused(f"is not {accepted}")
        if number < minimum or (maximum is not None and number > maximum):
            raise _Refused(f"is out of range: use {accepted}")
        return number

    return parse


def _seconds(value: Any) -> float:
    accepted = "a number of seconds > 0, e.g. 2 or 0.5"
    if isinstance(value, bool):
        raise _Refused(f"is not {accepted}")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise _Refused(f"is not {accepted}") from None
    if not math.isfinite(number) or number <= 0:
        raise _Refused(f"is out of range: use {accepted}")
    return number


def _choice(*choices: str, upper: bool = False) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip() if isinstance(value, str) else None
        text = None if text is None else (text.upper() if upper else text.lower())
        if text not in choices:
            raise _Refused(f"is not one of {', '.join(choices)}")
        return text

    return parse


def _csv(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value if str(v).strip())
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    raise _Refused("is not a comma-separated list")


def _each(check: Callable[[str], str | None], what: str) -> Callable[[Any], tuple[str, ...]]:
    """A comma list whose every item passes `check` (which returns why an item is refused)."""

    def parse(value: Any) -> tuple[str, ...]:
        items = _csv(value)
        for item in items:
            why = check(item)
            if why:
                raise _Refused(f"has {item!r}, which {why}: use a comma-separated list of {what}")
        return items

    return parse


def _origin_problem(item: str) -> str | None:
    try:
        parts = urlsplit(item)
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an http(s) origin"
    if parts.username or parts.password:
        return "carries credentials"
    return None


def _code_problem(item: str) -> str | None:
    system, sep, code = item.partition("|")
    return None if sep and system.strip() and code.strip() else "is not system|code"


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def optional(value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return parse(value)

    return optional


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Refused("is not a non-empty text")
    return value


def _token(value: Any) -> str:
    return _text(value).strip()


def _host(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value.strip()):
        raise _Refused("is not a host name or IP address, e.g. 127.0.0.1 or 0.0.0.0")
    return value.strip()


def _absolute(value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise _Refused("is not a path")
    return os.path.abspath(os.path.expanduser(str(value).strip()))


def _existing_file(value: Any) -> str:
    path = _absolute(value)
    if not os.path.isfile(path):
        raise _Refused(f"is not an existing file (looked for {path})")
    return path


def _existing_dir(value: Any) -> str:
    path = _absolute(value)
    if not os.path.isdir(path):
        raise _Refused(f"is not an existing directory (looked for {path})")
    return path


def _url(*schemes: str, example: str) -> Callable[[Any], str]:
    accepted = f"a {' or '.join(s + '://' for s in schemes)} URL, e.g. {example}"

    def parse(value: Any) -> str:
        text = value.strip() if isinstance(value, str) else ""
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise _Refused(f"is not {accepted}") from None
        if parts.scheme.lower() not in schemes or not parts.netloc:
            raise _Refused(f"is not {accepted}")
        return text

    return parse


def _public_base_url(value: Any) -> str:
    text = _url("http", "https", example="https://cds.example.org")(value)
    parts = urlsplit(text)
    if not parts.hostname or parts.query or parts.fragment or parts.username or parts.password:
        raise _Refused("is not a base URL: give scheme://host[:port][/path] without credentials, query or fragment")
    return text


def _database_url(value: Any) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not re.match(r"^[a-z][a-z0-9+_.-]*://", text, re.I):
        raise _Refused("is not a SQLAlchemy URL, e.g. postgresql+psycopg://user:password@host/db")
    return text
