"""Structural limits on what a client may send (issue "Security" item 3): each a clear 4xx.

Body size (413, before parsing), Bundle entries (413 naming the Bundle), JSON nesting depth
(400), and outbound paging toward fhirServer (FHIR_MAX_PAGES pages, then stop).
"""

from __future__ import annotations

import orjson
import pytest

from tests.support.fhir_server import FhirServerBehaviour, LoopbackFhirServer

from .jwt_support import bearer, claims, sign
from .requests_support import CONDITION, PATIENT, SERVICE, full_prefetch, order_select, searchset

URL = f"/cds-services/{SERVICE}"


def error_of(response) -> dict:
    assert response.mimetype == "application/json"
    return response.get_json()["error"]


def test_body_too_large_is_413(make_app):
    client = make_app(MAX_BODY_BYTES=4000).test_client()
    body = order_select(full_prefetch())
    body["context"]["padding"] = "x" * 5000
    response = client.post(URL, data=orjson.dumps(body), content_type="application/json")
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "LCDS-1413"
    assert "4000" in error["message"]


def test_body_under_the_limit_is_accepted(make_app):
    client = make_app(MAX_BODY_BYTES=20_000).test_client()
    assert client.post(URL, json=order_select(full_prefetch())).status_code == 200


def test_too_many_prefetch_bundle_entries_is_413(make_app):
    client = make_app(MAX_BUNDLE_ENTRIES=3).test_client()
    prefetch = full_prefetch()
    prefetch["conditions"] = searchset(*[dict(CONDITION, id=f"c{i}") for i in range(4)])
    response = client.post(URL, json=order_select(prefetch))
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "LCDS-1414"
    assert error["field"] == "prefetch.conditions.entry"


def test_too_many_draft_orders_is_413(make_app):
    client = make_app(MAX_BUNDLE_ENTRIES=3).test_client()
    body = order_select(full_prefetch())
    entry = body["context"]["draftOrders"]["entry"][0]
    body["context"]["draftOrders"]["entry"] = [entry] * 4
    response = client.post(URL, json=body)
    assert response.status_code == 413
    assert error_of(response)["field"] == "context.draftOrders.entry"


def test_bundle_at_the_limit_is_accepted(make_app):
    client = make_app(MAX_BUNDLE_ENTRIES=3).test_client()
    prefetch = full_prefetch()
    prefetch["conditions"] = searchset(*[dict(CONDITION, id=f"c{i}") for i in range(3)])
    assert client.post(URL, json=order_select(prefetch)).status_code == 200


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"x": value}
    return value


def test_too_deep_json_is_400(make_app):
    client = make_app(MAX_JSON_DEPTH=10).test_client()
    body = order_select(full_prefetch())
    body["context"]["extra"] = nested(20)
    response = client.post(URL, json=body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "LCDS-1007"
    assert "10" in error["message"]


@pytest.mark.parametrize("depth", [100, 5000, 200_000])
def test_hostile_nesting_is_400_not_500(client, depth):
    """Deeper than any parser's recursion: still a JSON 400, never a crash."""
    raw = b'{"hook":' + b"[" * depth + b"]" * depth + b"}"
    response = client.post(URL, data=raw, content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["code"] in {"LCDS-1001", "LCDS-1007"}


def test_outbound_paging_stops_at_fhir_max_pages(make_app):
    with LoopbackFhirServer(FhirServerBehaviour(page_size=1)) as fhir:
        fhir.add(PATIENT, *[dict(CONDITION, id=f"c{i}") for i in range(6)])
        client = make_app(FHIR_MAX_PAGES=2).test_client()
        prefetch = full_prefetch()
        del prefetch["conditions"]
        response = client.post(URL, json=order_select(prefetch, fhirServer=fhir.base_url))
        condition_pages = [s for s in fhir.seen if s.path.endswith("/Condition")]
    assert response.status_code == 200
    assert len(condition_pages) == 2  # six pages were on offer


def test_authentication_is_checked_before_the_body_is_read(make_app, ehr_issuers_file, ec):
    client = make_app(AUTH_REQUIRED=True, TRUSTED_ISSUERS_FILE=ehr_issuers_file, MAX_BODY_BYTES=1000).test_client()
    big = orjson.dumps({"padding": "x" * 5000})
    # No token: 401 whatever the body (an anonymous caller cannot make us parse anything).
    assert client.post(URL, data=big, content_type="application/json").status_code == 401
    # With a token, the body limit applies.
    token = sign(ec, claims(f"http://localhost{URL}"))
    assert client.post(URL, data=big, content_type="application/json", headers=bearer(token)).status_code == 413
