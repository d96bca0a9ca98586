"""What the HTTP edge refuses, and how: NUL in stored ids, too many orders, 405 with `Allow`, a
chunked body over the limit, and a 412 that names the key but not the network behind fhirServer."""

from __future__ import annotations

import copy
import io
import json
import logging

import pytest

from tests.support.fhir_server import LoopbackFhirServer
from tests.support.hook_requests import MRI_ORDER, full_prefetch, hook_request

SELECT = "/cds-services/lumbar-imaging-order-select"
SIGN = "/cds-services/lumbar-imaging-order-sign"
NUL = "\u0000"
FHIR_AUTH = {"access_token": "tok", "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read",
             "subject": "cds"}


def post(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()["error"]


@pytest.mark.parametrize("path", [
    ("hookInstance",), ("context", "userId"), ("context", "patientId"), ("context", "encounterId"),
])
def test_nul_in_an_id_is_400_naming_the_field(client, path):
    body = hook_request("order-sign", prefetch=full_prefetch())
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = f"id{NUL}x"
    error = error_of(post(client, SIGN, body), 400)
    assert (error["code"], error["field"]) == ("LCDS-1006", ".".join(path))
    assert "NUL" in error["message"]


def test_nul_in_a_selection_or_a_draft_order_is_400_naming_where(client):
    body = hook_request("order-select", prefetch=full_prefetch())
    body["context"]["selections"] = [f"ServiceRequest/x{NUL}"]
    assert error_of(post(client, SELECT, body), 400)["field"] == "context.selections[0]"
    body = hook_request("order-sign", prefetch=full_prefetch())
    body["context"]["draftOrders"]["entry"][0]["resource"]["code"]["coding"][0]["display"] = f"MRI{NUL}"
    error = error_of(post(client, SIGN, body), 400)
    assert error["field"] == "context.draftOrders.entry[0].resource.code.coding[0].display"


def test_a_literal_backslash_u0000_in_text_is_not_a_nul(client):
    body = hook_request("order-sign", prefetch=full_prefetch())
    body["context"]["draftOrders"]["entry"][0]["resource"]["code"]["coding"][0]["display"] = "MRI \\u0000"
    assert post(client, SIGN, body).status_code == 200


def _orders(n: int) -> list[dict]:
    orders = []
    for index in range(n):
        order = copy.deepcopy(MRI_ORDER)
        order["id"] = f"order-{index}"
        orders.append({"resource": order})
    return orders


def test_more_orders_than_max_judged_orders_is_400(make_client):
    client = make_client(MAX_JUDGED_ORDERS=3)
    body = hook_request("order-sign", prefetch=full_prefetch())
    body["context"]["draftOrders"]["entry"] = _orders(3)
    assert post(client, SIGN, body).status_code == 200
    body["context"]["draftOrders"]["entry"] = _orders(4) + [{"resource": {"resourceType": "MedicationRequest"}}]
    error = error_of(post(client, SIGN, body), 400)
    assert (error["code"], error["field"]) == ("LCDS-1011", "context.draftOrders.entry")
    assert "Too many orders" in error["message"] and "4" in error["message"] and "3" in error["message"]

    body = hook_request("order-select", prefetch=full_prefetch())
    body["context"]["draftOrders"]["entry"] = _orders(4)
    body["context"]["selections"] = [f"ServiceRequest/order-{i}" for i in range(4)]
    error = error_of(post(client, SELECT, body), 400)
    assert (error["code"], error["field"]) == ("LCDS-1011", "context.selections")


def test_the_default_cap_is_50_judged_orders(client):
    body = hook_request("order-select", prefetch=full_prefetch())
    body["context"]["draftOrders"]["entry"] = _orders(51)
    body["context"]["selections"] = [f"ServiceRequest/order-{i}" for i in range(51)]
    assert error_of(post(client, SELECT, body), 400)["code"] == "LCDS-1011"


def test_405_names_the_allowed_methods(client):
    response = client.put(SELECT)
    assert error_of(response, 405)["code"] == "LCDS-1405"
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"POST", "OPTIONS"}
    response = client.delete("/cds-services")
    assert "GET" in response.headers["Allow"]


def test_a_chunked_body_over_the_limit_is_413_not_invalid_json(make_client):
    client = make_client(MAX_BODY_BYTES=5000)
    body = json.dumps(hook_request("order-sign", prefetch=full_prefetch())).encode()
    body = body[:-1] + b" " * 6000 + b"}"  # valid JSON, over the limit, no Content-Length
    # As a WSGI server that de-chunks the body says it (gunicorn's gthread worker did: the stream
    # was then cut at the limit and the rest answered 400 "not valid JSON").
    response = client.post(SIGN, input_stream=io.BytesIO(body), content_type="application/json",
                           headers={"Transfer-Encoding": "chunked"},
                           environ_base={"wsgi.input_terminated": True})
    assert error_of(response, 413)["code"] == "LCDS-1413"


def test_412_names_the_key_but_not_what_the_network_did(client, caplog):
    caplog.set_level(logging.INFO, logger="lumbar_cds")
    server = LoopbackFhirServer()
    base_url = server.base_url
    server._httpd.server_close()  # bound once, now nothing listens there
    body = hook_request("order-select", fhirServer=base_url, fhirAuthorization=FHIR_AUTH)
    error = error_of(post(client, SELECT, body), 412)
    assert error["code"] == "LCDS-1412" and error["field"] in ("prefetch.patient", "prefetch.conditions")
    assert "the EHR's FHIR server did not answer usably" in error["message"]
    assert "connect" not in error["message"] and "HTTP" not in error["message"]
    logged = [r for r in caplog.records if r.getMessage() == "required data unavailable"]
    assert logged and logged[0].fields["reason"] == "could not connect"
    # A reason that says nothing of the network stays in the answer.
    error = error_of(post(client, SELECT, hook_request("order-select")), 412)
    assert "no fhirServer to fetch it from" in error["message"]


@pytest.fixture
def make_client(make_app):
    return lambda **settings: make_app(**settings).test_client()


@pytest.fixture
def make_app(tmp_path):
    from cds_service.app import create_app

    made = []

    def factory(**settings):
        app = create_app({"TESTING": True, "DATABASE_PATH": str(tmp_path / f"s{len(made)}.sqlite3"), **settings})
        made.append(app)
        return app

    yield factory
    for app in made:
        app.extensions["lumbar_cds_shutdown"]()
