"""Every error path of the hook endpoint: status, numbered code, and the field it names."""

import json

import pytest

from tests.support.hook_requests import full_prefetch, hook_request

SELECT = "/cds-services/lumbar-imaging-order-select"
SIGN = "/cds-services/lumbar-imaging-order-sign"


def post(client, url, body, **kwargs):
    return client.post(url, data=json.dumps(body), content_type="application/json", **kwargs)


def assert_error(response, status, code, field=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["status"] == status
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert error["field"] == field
    # The same error as a FHIR OperationOutcome (CDS Hooks 3.0): the LCDS code in details, the path in expression.
    outcome = response.get_json()
    (issue,) = outcome["issue"]
    assert outcome["resourceType"] == "OperationOutcome" and issue["severity"] in ("error", "fatal")
    assert issue["details"] == {"coding": [{"system": "urn:lumbar-imaging-cds:error-code", "code": code}],
                                "text": error["message"]}
    assert issue.get("expression") == ([field] if field is not None else issue.get("expression"))
    assert "Traceback" not in response.get_data(as_text=True)


def test_a_400_is_a_fhir_operation_outcome(client):
    """What a CDS Hooks 3.0 client reads: a valid R4 OperationOutcome, its issue naming the field."""
    from fhir.resources.R4B.operationoutcome import OperationOutcome

    body = hook_request(prefetch=full_prefetch())
    del body["context"]["patientId"]
    response = post(client, SELECT, body)
    assert response.status_code == 400
    answer = response.get_json()
    outcome = OperationOutcome.model_validate({k: v for k, v in answer.items() if k != "error"})
    (issue,) = outcome.issue
    assert (issue.severity, issue.code, issue.expression) == ("error", "required", ["context.patientId"])
    assert issue.details.coding[0].code == "LCDS-1003" == answer["error"]["code"]
    assert issue.details.text == "Required field 'context.patientId' is missing."


def test_valid_request_answers_cards(client):
    response = post(client, SELECT, hook_request(prefetch=full_prefetch()))
    assert response.status_code == 200
    assert isinstance(response.get_json()["cards"], list)


def test_unknown_service_is_404(client):
    assert_error(post(client, "/cds-services/no-such-service", hook_request(prefetch=full_prefetch())), 404, "LCDS-1404")


def test_get_on_a_service_is_405(client):
    assert_error(client.get(SELECT), 405, "LCDS-1405")


def test_non_json_content_type_is_415(client):
    assert_error(client.post(SELECT, data="hook=order-select", content_type="text/plain"), 415, "LCDS-1415")


def test_malformed_json_is_400(client):
    assert_error(client.post(SELECT, data="{not json", content_type="application/json"), 400, "LCDS-1001")


def test_json_array_body_is_400(client):
    assert_error(client.post(SELECT, data="[]", content_type="application/json"), 400, "LCDS-1002")


def test_body_over_the_configured_limit_is_413(app_config):
    from cds_service.app import create_app

    app = create_app({**app_config, "MAX_BODY_BYTES": 2_000})
    body = hook_request(prefetch=full_prefetch())
    body["padding"] = "x" * 3_000
    assert_error(post(app.test_client(), SELECT, body), 413, "LCDS-1413")


def test_wrong_hook_for_the_service_is_400(client):
    assert_error(post(client, SIGN, hook_request("order-select", prefetch=full_prefetch())), 400, "LCDS-1005", "hook")


@pytest.mark.parametrize(
    "mutate, field, code",
    [
        (lambda b: b.pop("hook"), "hook", "LCDS-1003"),
        (lambda b: b.pop("hookInstance"), "hookInstance", "LCDS-1003"),
        (lambda b: b.update(hookInstance=""), "hookInstance", "LCDS-1006"),
        (lambda b: b.update(hookInstance=42), "hookInstance", "LCDS-1004"),
        (lambda b: b.pop("context"), "context", "LCDS-1003"),
        (lambda b: b.update(context=[]), "context", "LCDS-1004"),
        (lambda b: b["context"].pop("userId"), "context.userId", "LCDS-1003"),
        (lambda b: b["context"].pop("patientId"), "context.patientId", "LCDS-1003"),
        (lambda b: b["context"].update(patientId=7), "context.patientId", "LCDS-1004"),
        (lambda b: b["context"].pop("selections"), "context.selections", "LCDS-1003"),
        (lambda b: b["context"].update(selections=[1]), "context.selections[0]", "LCDS-1004"),
        (lambda b: b["context"].pop("draftOrders"), "context.draftOrders", "LCDS-1003"),
        (lambda b: b["context"]["draftOrders"].update(resourceType="Patient"), "context.draftOrders.resourceType", "LCDS-1006"),
        (lambda b: b["context"]["draftOrders"].update(entry={}), "context.draftOrders.entry", "LCDS-1004"),
        (lambda b: b["context"]["draftOrders"]["entry"].append({"resource": {"id": "x"}}), "context.draftOrders.entry[1].resource", "LCDS-1006"),
        (lambda b: b.update(prefetch=[]), "prefetch", "LCDS-1004"),
        (lambda b: b.update(fhirServer=5), "fhirServer", "LCDS-1004"),
    ],
)
def test_envelope_errors_name_the_field(client, mutate, field, code):
    body = hook_request(prefetch=full_prefetch())
    mutate(body)
    assert_error(post(client, SELECT, body), 400, code, field)


FHIR_AUTH = {"access_token": "secret-token", "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read", "subject": "cds-service"}


def test_fhir_authorization_without_fhir_server_is_400(client):
    body = hook_request(prefetch=full_prefetch(), fhirAuthorization=FHIR_AUTH)
    assert_error(post(client, SELECT, body), 400, "LCDS-1008", "fhirServer")


@pytest.mark.parametrize("missing", sorted(FHIR_AUTH))
def test_fhir_authorization_fields_are_all_required(client, missing):
    auth = {k: v for k, v in FHIR_AUTH.items() if k != missing}
    body = hook_request(prefetch=full_prefetch(), fhirServer="http://127.0.0.1:9/fhir", fhirAuthorization=auth)
    assert_error(post(client, SELECT, body), 400, "LCDS-1003", f"fhirAuthorization.{missing}")


def test_fhir_authorization_must_be_bearer(client):
    auth = {**FHIR_AUTH, "token_type": "MAC"}
    body = hook_request(prefetch=full_prefetch(), fhirServer="http://127.0.0.1:9/fhir", fhirAuthorization=auth)
    assert_error(post(client, SELECT, body), 400, "LCDS-1006", "fhirAuthorization.token_type")


def test_sandbox_shapes_are_tolerated(client):
    """clinical-specification.md §7.6: empty coding, empty reasonCode, no Bundle type, no encounterId."""
    body = hook_request(prefetch=full_prefetch())
    order = body["context"]["draftOrders"]["entry"][0]["resource"]
    order["code"] = {"coding": [{}]}
    order["reasonCode"] = []
    del order["authoredOn"]
    assert "type" not in body["context"]["draftOrders"]
    assert "encounterId" not in body["context"]
    response = post(client, SELECT, body)
    assert response.status_code == 200
    assert response.get_json()["cards"] == []


def test_order_sign_needs_no_selections(client):
    response = post(client, SIGN, hook_request("order-sign", prefetch=full_prefetch()))
    assert response.status_code == 200
