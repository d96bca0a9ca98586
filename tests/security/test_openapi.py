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
        "/cds-services", "/cds-services/{service_id}", "/cds-services/{service_id}/feedback",
        "/healthz", "/openapi.yaml",
    }
    error = document["components"]["schemas"]["ErrorBody"]["properties"]["error"]
    assert set(error["properties"]) == {"code", "status", "message", "field"}


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_description(case):
    case.call_and_validate(checks=CHECKS)
