"""The redaction sits on the root handler: third-party lines are redacted too, or not written.

At root level DEBUG, a call whose data is fetched from a loopback FHIR server makes urllib3 log
its request lines (`GET /fhir/Patient/<id>`, `GET /fhir/Condition?patient=<id>`). With third-party
logging opted in (CDS_LOG_THIRD_PARTY), those lines reach the log with the ids and queries
redacted; by default third-party loggers are capped at WARNING and they are not written at all.
Either way the patient id and the FHIR token never appear in what the handler writes.
"""

from __future__ import annotations

import logging

import pytest

from cds_service.logs import redact
from tests.support.fhir_server import FhirServerBehaviour, LoopbackFhirServer

from .requests_support import CONDITION, PATIENT, PATIENT_ID, SERVICE, order_select

FHIR_TOKEN = "fhir-token-Zr81Lq"
AUTH = {"access_token": FHIR_TOKEN, "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read",
        "subject": "cds-service"}


@pytest.fixture
def root_at_debug():
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.DEBUG)
    yield
    root.setLevel(before)
    for name in ("urllib3", "requests", "sqlalchemy", "alembic", "werkzeug"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _fetching_call(app) -> None:
    with LoopbackFhirServer(FhirServerBehaviour(required_token=FHIR_TOKEN)) as fhir:
        fhir.add(PATIENT, CONDITION)
        body = order_select(None, fhirServer=fhir.base_url, fhirAuthorization=AUTH)
        response = app.test_client().post(f"/cds-services/{SERVICE}", json=body)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert fhir.seen


def test_third_party_debug_lines_are_redacted_when_opted_in(make_app, root_at_debug, capsys):
    app = make_app(LOG_LEVEL="DEBUG", LOG_THIRD_PARTY=True)
    capsys.readouterr()
    _fetching_call(app)
    written = capsys.readouterr().err
    urllib3_lines = [line for line in written.splitlines() if '"logger":"urllib3' in line]
    assert any("/Patient/[id]" in line for line in urllib3_lines), urllib3_lines
    assert any("?[query]" in line for line in urllib3_lines), urllib3_lines
    assert PATIENT_ID not in written and FHIR_TOKEN not in written


def test_third_party_loggers_are_capped_at_warning_by_default(make_app, root_at_debug, capsys):
    app = make_app(LOG_LEVEL="DEBUG")
    capsys.readouterr()
    _fetching_call(app)
    written = capsys.readouterr().err
    assert '"logger":"urllib3' not in written
    assert '"logger":"lumbar_cds.api"' in written  # the package's own lines still come
    assert PATIENT_ID not in written and FHIR_TOKEN not in written


def test_redact_blanks_fhir_ids_in_paths_and_query_strings_but_not_our_routes():
    line = '"GET /fhir/Patient/pat-9 HTTP/1.1" 200; GET /fhir/Condition?patient=pat-9&_count=50'
    assert redact(line) == '"GET /fhir/Patient/[id] HTTP/1.1" 200; GET /fhir/Condition?[query]'
    assert redact("/cds-services/<service_id>/feedback") == "/cds-services/<service_id>/feedback"
    assert redact("is the store up? no") == "is the store up? no"
