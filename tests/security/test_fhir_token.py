"""The EHR's FHIR token (fhirAuthorization.access_token) goes to fhirServer and nowhere else.

Two real loopback FHIR servers on different ports (so different origins): the first redirects
or pages to the second, and the second must never see a request, let alone the token.
CDS Hooks 2.0 "FHIR Resource Access"; issue "Security" item 2.
"""

from __future__ import annotations

import pytest

from tests.support.fhir_server import FhirServerBehaviour, LoopbackFhirServer

from .requests_support import CONDITION, PATIENT, SERVICE, order_select

FHIR_TOKEN = "fhir-access-token-6pW3xQ"


def fhir_authorization(token: str = FHIR_TOKEN) -> dict:
    return {"access_token": token, "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read", "subject": "cds-service"}


@pytest.fixture
def elsewhere():
    """The server a hostile or misconfigured fhirServer points at."""
    with LoopbackFhirServer(FhirServerBehaviour()) as server:
        server.add(PATIENT, CONDITION)
        yield server


def test_token_goes_to_fhir_server(client):
    with LoopbackFhirServer(FhirServerBehaviour(required_token=FHIR_TOKEN)) as fhir:
        fhir.add(PATIENT, CONDITION)
        body = order_select(prefetch=None, fhirServer=fhir.base_url, fhirAuthorization=fhir_authorization())
        response = client.post(f"/cds-services/{SERVICE}", json=body)
        assert response.status_code == 200
        assert fhir.seen and all(s.authorization == f"Bearer {FHIR_TOKEN}" for s in fhir.seen)


def test_token_not_forwarded_through_a_cross_origin_redirect(client, elsewhere):
    with LoopbackFhirServer(FhirServerBehaviour(redirect_to=elsewhere.base_url)) as redirecting:
        body = order_select(prefetch=None, fhirServer=redirecting.base_url, fhirAuthorization=fhir_authorization())
        response = client.post(f"/cds-services/{SERVICE}", json=body)
        assert redirecting.seen  # the service did call fhirServer...
    # ...but did not follow it elsewhere: the other origin saw no request and no token.
    assert elsewhere.seen == []
    # Without patient and conditions the service cannot decide: 412 naming the key, not a 500.
    assert response.status_code == 412
    error = response.get_json()["error"]
    assert error["code"] == "LCDS-1412"
    # The answer names the key, not what the network did (the log keeps that for the operator).
    assert "did not answer usably" in error["message"] and "another origin" not in error["message"]
    assert FHIR_TOKEN not in response.get_data(as_text=True)


class CrossOriginPager(LoopbackFhirServer):
    """A FHIR server whose search Bundles carry a `next` link to another origin."""

    def __init__(self, next_base: str):
        super().__init__(FhirServerBehaviour())
        self.next_base = next_base

    def _search(self, resource_type, query):
        bundle = super()._search(resource_type, query)
        bundle["link"].append({"relation": "next", "url": f"{self.next_base}/{resource_type}?patient=x&_page=2"})
        return bundle


def test_token_not_sent_to_a_next_link_on_another_origin(client, elsewhere):
    with CrossOriginPager(elsewhere.base_url) as pager:
        pager.add(PATIENT, CONDITION)
        body = order_select(prefetch=None, fhirServer=pager.base_url, fhirAuthorization=fhir_authorization())
        response = client.post(f"/cds-services/{SERVICE}", json=body)
        assert pager.seen
    assert elsewhere.seen == []
    assert response.status_code == 412  # conditions (required) could not be read safely
    assert response.get_json()["error"]["field"] == "prefetch.conditions"


@pytest.mark.parametrize(
    "fhir_server, reason",
    [
        ("http://fhir.example.org/r4", "must use https"),
        ("http://10.1.2.3/fhir", "must use https"),
        ("ftp://fhir.example.org/r4", "absolute http(s) URL"),
        ("https://user:secret@fhir.example.org/r4", "credentials"),
        ("not a url", "absolute http(s) URL"),
    ],
)
def test_unsafe_fhir_server_is_refused_with_400(client, fhir_server, reason):
    body = order_select(prefetch=None, fhirServer=fhir_server, fhirAuthorization=fhir_authorization())
    response = client.post(f"/cds-services/{SERVICE}", json=body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "LCDS-1009"
    assert error["field"] == "fhirServer"
    assert reason in error["message"]


def test_fhir_origin_allowlist(make_app, elsewhere):
    with LoopbackFhirServer(FhirServerBehaviour()) as allowed:
        allowed.add(PATIENT, CONDITION)
        client = make_app(FHIR_ALLOWED_ORIGINS=allowed.base_url).test_client()
        ok = client.post(
            f"/cds-services/{SERVICE}",
            json=order_select(prefetch=None, fhirServer=allowed.base_url, fhirAuthorization=fhir_authorization()),
        )
        assert ok.status_code == 200
        refused = client.post(
            f"/cds-services/{SERVICE}",
            json=order_select(prefetch=None, fhirServer=elsewhere.base_url, fhirAuthorization=fhir_authorization()),
        )
    assert refused.status_code == 400
    assert "allowlist" in refused.get_json()["error"]["message"]
    assert elsewhere.seen == []


def test_plain_http_host_allowlist_is_configurable(make_app):
    client = make_app(FHIR_PLAIN_HTTP_HOSTS="127.0.0.1").test_client()
    body = order_select(prefetch=None, fhirServer="http://localhost:9/fhir", fhirAuthorization=fhir_authorization())
    response = client.post(f"/cds-services/{SERVICE}", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "LCDS-1009"
