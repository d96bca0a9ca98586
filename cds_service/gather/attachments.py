"""The attachments of the clinical notes: Binary contents fetched from fhirServer, as raw bytes.

Role in the data flow: gather stage, after the prefetch keys are in (`gather.prefetch.gather`).
A clinical note (DocumentReference, key `clinicalNotes`) carries its text either inline
(`attachment.data`, base64, read by the read stage) or as `attachment.url`, usually a Binary on
the EHR's FHIR server. Those urls are fetched here (clinical-specification.md §9.1) under the rules
of every other fetch (`gather.fhir_client`): only on the fhirServer origin (a url elsewhere is
refused, never followed), with the fhirAuthorization token bound to that origin, redirects checked
hop by hop, within the call's gathering deadline, and refused past the byte cap. A server that
answers a Binary as FHIR JSON (Accept ignored) is understood too.

Only notes the read stage would read are fetched: status `current`, not entered-in-error, a text
content type (or none stated), the newest `MAX_ATTACHMENTS`. A failed attachment makes the
`clinicalNotes` key incomplete (with the failure's kind), as does a note past the cap or an
attachment url with no fhirServer to fetch it from. Nothing fetched is logged.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import orjson

from cds_service.gather.fhir_client import (
    FhirClient,
    FhirFetchError,
)
from cds_service.gather.parallel import fetch_in_parallel

NOTES_KEY = "clinicalNotes"
MAX_ATTACHMENTS = 20
MAX_PARALLEL = 4
# The content types the read stage turns into text (cds_service/read/text/attachments.py).
TEXT_TYPES = frozenset({"text/plain", "text/html", "application/xhtml+xml", "text/rtf", "application/rtf"})
ACCEPT = "text/plain, text/html, text/rtf, application/rtf, */*;q=0.1"
IGNORED_NOTE_STATUS = frozenset({"superseded", "entered-in-error"})


@dataclass(frozen=True)
class Attachment:
    """One fetched attachment: its bytes and the content type the server gave (or the note said)."""

    content_type: str | None
    data: bytes


def media_type(content_type: Any) -> str | None:
    if not isinstance(content_type, str) or not content_type.strip():
        return None
    return content_type.split(";")[0].strip().lower()


def readable_note(resource: Any) -> bool:
    """A note the read stage reads: a current DocumentReference not entered in error."""
    return (isinstance(resource, dict) and resource.get("resourceType") == "DocumentReference"
            and resource.get("status", "current") == "current"
            and resource.get("docStatus") != "entered-in-error")


def note_attachments(resource: dict) -> list[dict]:
    return [c["attachment"] for c in resource.get("content") or []
            if isinstance(c, dict) and isinstance(c.get("attachment"), dict)]


def urls_to_fetch(bundle: Any) -> list[tuple[str, str | None]]:
    """(url, stated content type) of the note attachments held only by url, newest note first."""
    notes = []
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not readable_note(resource):
            continue
        when = resource.get("date") if isinstance(resource.get("date"), str) else ""
        for attachment in note_attachments(resource):
            url, stated = attachment.get("url"), media_type(attachment.get("contentType"))
            if attachment.get("data") or not isinstance(url, str) or not url.strip():
                continue
            if stated is not None and stated not in TEXT_TYPES:
                continue  # not fetched: the read stage says the note's format was not readable
            notes.append((when, url, attachment.get("contentType")))
    notes.sort(key=lambda n: n[0], reverse=True)
    seen: dict[str, str | None] = {}
    for _, url, stated in notes:
        seen.setdefault(url, stated)
    return list(seen.items())


def fetch_binary(client: FhirClient, url: str) -> Attachment:
    """GET one attachment url on the fhirServer origin (the client's guarded GET: origin, token,
    deadline, byte cap): raw bytes, or a Binary resource's data."""
    content, served = client.get_bytes(urljoin(client.base_url, url), accept=ACCEPT)
    if media_type(served) in ("application/fhir+json", "application/json"):
        return _binary_resource(content)
    return Attachment(served, content)


def _binary_resource(content: bytes) -> Attachment:
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise FhirFetchError("answer is not JSON", kind="unreadable") from None
    if not isinstance(body, dict) or body.get("resourceType") != "Binary" or not isinstance(body.get("data"), str):
        raise FhirFetchError("answer is not a Binary with data", kind="unreadable")
    try:
        return Attachment(body.get("contentType"), base64.b64decode(body["data"], validate=False))
    except (binascii.Error, ValueError):
        raise FhirFetchError("a Binary's data is not base64", kind="unreadable") from None


def gather_attachments(gathered, make_client: Callable[[], FhirClient] | None, deadline: float) -> None:
    """Fetch the url attachments of the gathered clinical notes into `gathered.attachments`."""
    wanted = urls_to_fetch(gathered.data.get(NOTES_KEY))
    if not wanted:
        return
    if make_client is None:
        gathered.mark_incomplete(NOTES_KEY, "not-fetched")
        return
    if len(wanted) > MAX_ATTACHMENTS:
        gathered.mark_incomplete(NOTES_KEY, "entry-cap")
        wanted = wanted[:MAX_ATTACHMENTS]
    urls = [url for url, _ in wanted]
    results, failures, requests = fetch_in_parallel(urls, fetch_binary, make_client, deadline, MAX_PARALLEL,
                                                    "gather-note")
    gathered.attachments.update(results)
    for kind in failures.values():
        gathered.mark_incomplete(NOTES_KEY, kind)
    gathered.requests += requests
