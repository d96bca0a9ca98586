"""Property-based: whatever JSON a client throws at the hook endpoints, never a 500."""

import json

from hypothesis import HealthCheck, example, given, settings
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


FEEDBACK_URLS = [f"/cds-services/{service}/feedback" for service in SERVICES]
offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: ("+" if minutes >= 0 else "-") + f"{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}")
timestamps = st.one_of(
    st.builds(lambda moment, offset: moment.isoformat(timespec="seconds") + offset, st.datetimes(), offsets),
    st.text(max_size=40),
    json_values,
)


@FUZZ
@given(moment=timestamps, url=st.sampled_from(FEEDBACK_URLS),
       outcome=st.sampled_from(["accepted", "overridden"]))
@example(moment="9999-12-31T23:59:59-10:00", url=FEEDBACK_URLS[1], outcome="overridden")
@example(moment="0001-01-01T00:30:00+01:00", url=FEEDBACK_URLS[0], outcome="overridden")
@example(moment="9999-12-31T23:59:59-10:00", url=FEEDBACK_URLS[0], outcome="accepted")
def test_any_feedback_outcome_timestamp_never_500(client, moment, url, outcome):
    item = {"card": "card-1", "outcome": outcome, "outcomeTimestamp": moment}
    if outcome == "accepted":
        item["acceptedSuggestions"] = [{"id": "s-1"}]
    response = client.post(url, data=json.dumps({"feedback": [item]}), content_type="application/json")
    assert response.status_code < 500, response.get_data(as_text=True)
    error = response.get_json().get("error") or {}
    if error.get("code") == "LCDS-1010":  # (a lone surrogate is refused earlier, as not JSON)
        assert error["field"] == "feedback[0]" and "outcomeTimestamp" in error["message"]


@FUZZ
@given(item=st.dictionaries(st.sampled_from(["card", "outcome", "outcomeTimestamp", "acceptedSuggestions",
                                             "overrideReason"]), json_values, max_size=5))
@example(item={"card": "c\u0000", "outcome": "overridden", "outcomeTimestamp": "2026-03-16T10:00:00Z"})
def test_arbitrary_feedback_items_never_500(client, item):
    response = client.post(FEEDBACK_URLS[0], data=json.dumps({"feedback": [item]}), content_type="application/json")
    assert_never_feedback_500(response)


def assert_never_feedback_500(response):
    assert response.status_code < 500, response.get_data(as_text=True)
    assert response.mimetype == "application/json"


# Extreme values inside otherwise valid resources (issue "Reliability", finding 4): dates at the
# years 1 and 9999, huge and negative numbers, wrong JSON types inside Bundles.
extreme_dates = st.sampled_from(["0001-01-01", "9999-12-31", "0001-01-01T00:30:00+01:00",
                                 "9999-12-31T23:59:59-10:00", "2026-02-30", "1799-12-31", "2026"])
extreme_numbers = st.sampled_from([1e308, -1e308, 1e20, -1, 0, 2**63, -(2**63)]) | st.floats(allow_nan=False)
bundle_junk = st.sampled_from([5, "abc", [5], [None], [{"resource": 5}], {"entry": 5}, None])


@FUZZ
@given(onset=extreme_dates, authored=extreme_dates, birth=extreme_dates, age=extreme_numbers,
       supply=extreme_numbers, temperature=extreme_numbers, when=extreme_dates, junk=bundle_junk)
@example(onset="9999-12-31", authored="0001-01-01", birth="1970-05-01", age=1e308, supply=1e308,
         temperature=1e308, when="0001-01-01", junk=5)
def test_extreme_values_inside_resources_never_500(client, onset, authored, birth, age, supply, temperature, when, junk):
    from tests.support.hook_requests import LBP_CONDITION, MRI_ORDER, PATIENT, PATIENT_ID, searchset

    subject = {"reference": f"Patient/{PATIENT_ID}"}
    prefetch = full_prefetch()
    prefetch["patient"] = dict(PATIENT, birthDate=birth)
    prefetch["conditions"] = searchset(
        dict(LBP_CONDITION, onsetDateTime=onset),
        {k: v for k, v in dict(LBP_CONDITION, id="c-age", onsetAge={"value": age, "unit": "a", "code": "a"}).items()
         if k != "onsetDateTime"},
    )
    prefetch["observations"] = searchset({
        "resourceType": "Observation", "id": "t1", "status": "final", "subject": subject, "effectiveDateTime": when,
        "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
        "valueQuantity": {"value": temperature, "unit": "Cel", "code": "Cel"},
    })
    prefetch["medications"] = searchset({
        "resourceType": "MedicationRequest", "id": "m1", "status": "active", "intent": "order", "subject": subject,
        "authoredOn": when, "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "8640"}]},
        "dispenseRequest": {"expectedSupplyDuration": {"value": supply, "unit": "d", "code": "d"}},
    })
    prefetch["procedures"] = {"resourceType": "Bundle", "entry": junk}
    body = hook_request("order-sign", prefetch=prefetch)
    body["context"]["draftOrders"]["entry"][0]["resource"] = dict(MRI_ORDER, authoredOn=authored)
    response = client.post(f"/cds-services/{SERVICES[1]}", data=json.dumps(body), content_type="application/json")
    assert_never_500(response)
