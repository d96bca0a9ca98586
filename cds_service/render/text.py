"""Text helpers of the render stage: safe one-line and markdown text, dates, pruning, uuids.

Role in the data flow: render stage. Patient-record text never turns into markdown links, HTML or
emphasis on a card; no value in the response is null or empty (FHIR forbids them).
"""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Any

from cds_service.hooks.response import SUMMARY_MAX  # noqa: F401 - the contract's limit of Card.summary

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#|!~])")


def new_uuid() -> str:
    return str(uuid.uuid4())


def prune(value: Any) -> Any:
    """Drop nulls and empty strings, arrays and objects, recursively (FHIR forbids them); one
    pass, each value pruned then kept or dropped (every card goes through it)."""
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            item = prune(item) if isinstance(item, (dict, list)) else item
            if not is_empty(item):
                kept[key] = item
        return kept
    if isinstance(value, list):
        items = (prune(item) if isinstance(item, (dict, list)) else item for item in value)
        return [item for item in items if not is_empty(item)]
    return value


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (
        isinstance(value, (list, dict)) and not value
    )


def plain(text: str | None, limit: int = 200) -> str:
    """Patient-record text made safe for one line: no control characters, bounded length."""
    if not text:
        return ""
    text = " ".join(CONTROL.sub(" ", str(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def md(text: str | None, limit: int = 200) -> str:
    """Patient-record text escaped for markdown: it must not turn into links, HTML or emphasis."""
    return MD_SPECIAL.sub(r"\\\1", plain(text, limit))


def ref(text: str | None) -> str:
    """A resource reference shown inside `code` spans: no backticks, one line."""
    return plain(text, 120).replace("`", "'")


def iso(day: date | None) -> str:
    return day.isoformat() if day else ""
