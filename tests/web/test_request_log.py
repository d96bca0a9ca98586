"""Structured request logging: service id, hookInstance, status, duration in ms; no PHI."""

import json

from tests.support.hook_requests import PATIENT, full_prefetch, hook_request


def test_request_log_line_has_the_operational_fields_only(client, capsys):
    body = hook_request("order-sign", prefetch=full_prefetch())
    response = client.post("/cds-services/lumbar-imaging-order-sign", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    request_lines = [line for line in lines if line["event"] == "request"]
    assert len(request_lines) == 1
    line = request_lines[0]
    assert line["service"] == "lumbar-imaging-order-sign"
    assert line["hookInstance"] == body["hookInstance"]
    assert line["status"] == 200
    assert isinstance(line["ms"], float)
    text = json.dumps(lines)
    assert PATIENT["id"] not in text and PATIENT["birthDate"] not in text


def test_error_log_line_names_the_error_code(client, capsys):
    client.post("/cds-services/lumbar-imaging-order-sign", data="{", content_type="application/json")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert any(line.get("error") == "LCDS-1001" and line["status"] == 400 for line in lines)
