"""The OpenAPI description at /openapi.yaml, and schemathesis run against the app with it.

Schemathesis generates valid and invalid requests from `cds_service/openapi.yaml` for every
documented operation and checks that the app never answers 500 and that every answer (status
code, content type, headers, body) is one the description documents. The number of examples is
bounded so this runs in seconds, and derandomised so a failure reproduces.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cds_service.app import create_app

_store = Path(tempfile.mkdtemp(prefix="lumbar-cds-openapi-")) / "store.sqlite3"
# Only an origin no example can name may be fetched from: generated fhirServer URLs are refused
# (400) instead of sending the test suite to random hosts.
APP = create_app({
    "TESTING": True,
    "DATABASE_PATH": str(_store),
    "FHIR_ALLOWED_ORIGINS": "https://fhir-server.invalid",
})

schema = schemathesis.openapi.from_wsgi("/openapi.yaml", APP)
schema.config.generation.update(deterministic=True)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_openapi_document_is_served_and_names_every_endpoint():
    response = APP.test_client().get("/openapi.yaml")
    assert response.status_code == 200
    assert response.mimetype == "application/yaml"
    document = yaml.safe_load(response.get_data(as_text=True))
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/cds-services", "/cds-services/lumbar-imaging-order-select", "/cds-services/lumbar-imaging-order-sign",
        "/cds-services/{service_id}/feedback",
        "/healthz", "/readyz", "/openapi.yaml",
    }
    error = document["components"]["schemas"]["ErrorBody"]["properties"]["error"]
    assert set(error["properties"]) == {"code", "status", "message", "field"}


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_description(case):
    case.call_and_validate(checks=CHECKS)


def _schema_of(name: str) -> dict:
    """A component schema with every $ref inlined (the document has no cycles)."""
    document = yaml.safe_load(APP.test_client().get("/openapi.yaml").get_data(as_text=True))

    def inline(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(document["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return inline(document["components"]["schemas"][name])


def _openapi_valid(schema: dict, body) -> bool:
    import jsonschema

    # OpenAPI 3.0 `nullable` is not JSON Schema: none of the cases below needs it.
    return jsonschema.Draft7Validator(schema).is_valid(body)


def test_the_description_refuses_what_the_service_refuses():
    """The schemathesis findings (a schema-valid request the service refused): order-select
    without `selections`, `feedback: []`, and `prefetch: {}` with no fhirServer."""
    from tests.support.hook_requests import full_prefetch, hook_request

    client = APP.test_client()
    select = hook_request("order-select", prefetch=full_prefetch())
    assert _openapi_valid(_schema_of("OrderSelectRequest"), select)
    del select["context"]["selections"]
    assert not _openapi_valid(_schema_of("OrderSelectRequest"), select)
    assert client.post("/cds-services/lumbar-imaging-order-select", json=select).status_code == 400

    assert not _openapi_valid(_schema_of("FeedbackRequest"), {"feedback": []})
    response = client.post("/cds-services/lumbar-imaging-order-sign/feedback", json={"feedback": []})
    assert response.status_code == 400

    sign = hook_request("order-sign", prefetch={})
    assert not _openapi_valid(_schema_of("OrderSignRequest"), sign)
    assert client.post("/cds-services/lumbar-imaging-order-sign", json=sign).status_code == 412
    sign["prefetch"] = {"patient": full_prefetch()["patient"], "conditions": full_prefetch()["conditions"]}
    assert _openapi_valid(_schema_of("OrderSignRequest"), sign)
    assert client.post("/cds-services/lumbar-imaging-order-sign", json=sign).status_code == 200

    accepted_without_suggestions = {"feedback": [{"card": "c", "outcome": "accepted",
                                                  "outcomeTimestamp": "2026-01-01T00:00:00Z"}]}
    assert not _openapi_valid(_schema_of("FeedbackRequest"), accepted_without_suggestions)
    assert client.post("/cds-services/lumbar-imaging-order-sign/feedback",
                       json=accepted_without_suggestions).status_code == 400
