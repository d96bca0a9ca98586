"""Property-based: whatever JSON a client throws at the hook endpoints, never a 500."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.hook_requests import full_prefetch, hook_request

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)

SERVICES = ["lumbar-imaging-order-select", "lumbar-imaging-order-sign"]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_never_500(response):
    assert response.status_code < 500, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert "cards" in body or "error" in body


@FUZZ
@given(body=json_values, service=st.sampled_from(SERVICES))
def test_arbitrary_json_never_500(client, body, service):
    response = client.post(f"/cds-services/{service}", data=json.dumps(body), content_type="application/json")
    assert_never_500(response)


# Paths into a valid request where arbitrary values are planted.
PLANT_PATHS = [
    ("hook",), ("hookInstance",), ("fhirServer",), ("fhirAuthorization",), ("context",),
    ("context", "userId"), ("context", "patientId"), ("context", "selections"), ("context", "draftOrders"),
    ("context", "draftOrders", "entry"), ("prefetch",), ("prefetch", "patient"), ("prefetch", "conditions"),
    ("prefetch", "observations"), ("prefetch", "procedures"), ("prefetch", "medications"),
]


@FUZZ
@given(
    path=st.sampled_from(PLANT_PATHS),
    value=json_values,
    hook=st.sampled_from(["order-select", "order-sign"]),
)
def test_valid_request_with_one_field_replaced_never_500(client, path, value, hook):
    body = hook_request(hook, prefetch=full_prefetch())
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    service = SERVICES[0] if hook == "order-select" else SERVICES[1]
    response = client.post(f"/cds-services/{service}", data=json.dumps(body), content_type="application/json")
    assert_never_500(response)


resource_like = st.fixed_dictionaries(
    {"resourceType": st.sampled_from(["Condition", "Observation", "ServiceRequest", "Patient", "Procedure"])},
    optional={
        "id": st.text(max_size=8),
        "code": json_values,
        "subject": json_values,
        "clinicalStatus": json_values,
        "onsetDateTime": st.text(max_size=25),
        "valueQuantity": json_values,
        "birthDate": st.text(max_size=12),
    },
)


@FUZZ
@given(resources=st.lists(resource_like, max_size=5), hook=st.sampled_from(["order-select", "order-sign"]))
def test_malformed_resources_in_prefetch_and_orders_never_500(client, resources, hook):
    body = hook_request(hook, prefetch=full_prefetch())
    body["prefetch"]["conditions"]["entry"].extend({"resource": r} for r in resources)
    body["prefetch"]["observations"]["entry"].extend({"resource": r} for r in resources)
    body["context"]["draftOrders"]["entry"].extend({"resource": r} for r in resources)
    service = SERVICES[0] if hook == "order-select" else SERVICES[1]
    response = client.post(f"/cds-services/{service}", data=json.dumps(body), content_type="application/json")
    assert_never_500(response)
