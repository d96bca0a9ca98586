"""The clinical notes' url attachments (gather/attachments.py, clinical-specification.md §9.1).

Fetched from a real FHIR server (Medplum's, which serves GET Binary/<id> as raw bytes): with the
token, only on the fhirServer origin, within the byte cap; a failure makes clinicalNotes incomplete.
"""

from __future__ import annotations

import base64
import time

import pytest

from cds_service.gather.attachments import (
    NOTES_KEY,
    _binary_resource,
    fetch_binary,
    gather_attachments,
    urls_to_fetch,
)
from cds_service.gather.fhir_client import FhirClient, FhirFetchError
from cds_service.gather.prefetch import GatheredData
from tests.support.medplum import MedplumFhirServer

TOKEN = "attachment-token-3x9"
TEXT = "HPI: new urinary retention since yesterday."


def note(nid: str, url: str | None = None, ctype: str = "text/plain", status: str = "current", **extra) -> dict:
    attachment = {"contentType": ctype, "url": url} if url else {"contentType": ctype, "data": "SGk="}
    return {"resourceType": "DocumentReference", "id": nid, "status": status, "date": "2024-06-14T10:00:00Z",
            "subject": {"reference": "Patient/p1"}, "content": [{"attachment": attachment}], **extra}


def notes(*resources: dict) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


@pytest.fixture(scope="module")
def server():
    with MedplumFhirServer(required_token=TOKEN) as fhir:
        yield fhir


def client(server, **options) -> FhirClient:
    return FhirClient(server.base_url, TOKEN, deadline=time.monotonic() + 5, **options)


def test_only_readable_current_notes_held_by_url_are_fetched():
    bundle = notes(
        note("a", "Binary/a"), note("b", "Binary/b", ctype="application/pdf"), note("c"),
        note("d", "Binary/d", status="superseded"), note("e", "Binary/e", docStatus="entered-in-error"),
        note("f", "Binary/f", ctype="text/html; charset=utf-8"),
    )
    assert [url for url, _ in urls_to_fetch(bundle)] == ["Binary/a", "Binary/f"]


def test_a_binary_is_fetched_as_raw_bytes_with_the_token(server):
    server.reset()
    server.add({"resourceType": "Binary", "id": "n1", "contentType": "text/plain",
                "data": base64.b64encode(TEXT.encode()).decode()})
    gathered = GatheredData(data={NOTES_KEY: notes(note("x", "Binary/n1"))})
    gather_attachments(gathered, lambda: client(server), time.monotonic() + 5)
    assert gathered.incomplete == {}
    fetched = gathered.attachments["Binary/n1"]
    assert fetched.data == TEXT.encode() and fetched.content_type.startswith("text/plain")
    assert {s.authorization for s in server.seen() if "Binary" in s.path} == {f"Bearer {TOKEN}"}
    assert gathered.requests == 1


def test_a_missing_binary_makes_the_notes_incomplete(server):
    server.reset()
    gathered = GatheredData(data={NOTES_KEY: notes(note("x", "Binary/nowhere"))})
    gather_attachments(gathered, lambda: client(server), time.monotonic() + 5)
    assert gathered.attachments == {} and gathered.incomplete == {NOTES_KEY: "refused"}


def test_a_url_on_another_origin_is_refused_and_never_called(server):
    server.reset()
    gathered = GatheredData(data={NOTES_KEY: notes(note("x", "https://elsewhere.example.org/Binary/1"))})
    gather_attachments(gathered, lambda: client(server), time.monotonic() + 5)
    assert gathered.incomplete == {NOTES_KEY: "refused"}
    assert gathered.attachments == {}


def test_an_attachment_over_the_byte_cap_is_unreadable(server):
    server.reset()
    server.add({"resourceType": "Binary", "id": "big", "contentType": "text/plain",
                "data": base64.b64encode(b"x" * 5000).decode()})
    with pytest.raises(FhirFetchError) as error:
        fetch_binary(client(server, max_bytes=1000), "Binary/big")
    assert error.value.kind == "unreadable"


def test_no_fhir_server_means_not_fetched():
    gathered = GatheredData(data={NOTES_KEY: notes(note("x", "Binary/n1"))})
    gather_attachments(gathered, None, time.monotonic() + 5)
    assert gathered.incomplete == {NOTES_KEY: "not-fetched"}


def test_a_binary_answered_as_fhir_json_is_understood():
    body = b'{"resourceType": "Binary", "contentType": "text/html", "data": "PHA+SGk8L3A+"}'
    attachment = _binary_resource(body)
    assert attachment.content_type == "text/html" and attachment.data == b"<p>Hi</p>"
    with pytest.raises(FhirFetchError):
        _binary_resource(b'{"resourceType": "Patient"}')
