"""The CDS Hooks contract as models (hooks.request, hooks.response, hooks.feedback): the
specification's rules hold, and a broken rule is named with its field path."""

from __future__ import annotations

import copy
import uuid

import pytest
from pydantic import ValidationError

from cds_service.hooks.envelope import parse_hook_request
from cds_service.hooks.errors import CdsError
from cds_service.hooks.feedback import FeedbackItem, parse_feedback_body
from cds_service.hooks.registry import ServiceRegistry
from cds_service.hooks.request import REQUEST_MODELS, OrderSelectRequest, OrderSignRequest
from cds_service.hooks.response import SUMMARY_MAX, CdsResponse
from cds_service.hooks.validation import first_problem
from tests.support.hook_requests import full_prefetch, hook_request

SELECT = ServiceRegistry().get("lumbar-imaging-order-select")


def problem_of(model, body):
    with pytest.raises(ValidationError) as raised:
        model.model_validate(body)
    return first_problem(raised.value)


# --- the request ------------------------------------------------------------------------------

def test_one_request_model_per_hook_served():
    assert set(REQUEST_MODELS) == {service.hook for service in ServiceRegistry()}
    assert "selections" in OrderSelectRequest.model_fields["context"].annotation.model_fields
    assert "selections" not in OrderSignRequest.model_fields["context"].annotation.model_fields


def test_a_valid_request_reads_into_the_model_and_the_hook_request():
    body = hook_request("order-select", prefetch=full_prefetch())
    call = OrderSelectRequest.model_validate(body)
    assert call.context.selections == body["context"]["selections"]
    parsed = parse_hook_request(body, SELECT)
    assert parsed.draft_orders is body["context"]["draftOrders"]  # the stages read the client's JSON
    assert parsed.selections == body["context"]["selections"]


@pytest.mark.parametrize(("mutate", "path", "kind"), [
    (lambda b: b["context"]["selections"].append(7), "context.selections[1]", "type"),
    (lambda b: b["context"].update(userId=None), "context.userId", "missing"),
    (lambda b: b["context"]["draftOrders"]["entry"].append(None), "context.draftOrders.entry[1]", "type"),
    (lambda b: b.update(fhirServer="http://x", fhirAuthorization={"access_token": "t"}),
     "fhirAuthorization.token_type", "missing"),
    (lambda b: b.update(fhirServer="http://x", fhirAuthorization={
        "access_token": "t", "token_type": "MAC", "expires_in": 1, "scope": "s", "subject": "c"}),
     "fhirAuthorization.token_type", "invalid"),
    (lambda b: b.update(fhirServer="http://x", fhirAuthorization={
        "access_token": "t", "token_type": "Bearer", "expires_in": True, "scope": "s", "subject": "c"}),
     "fhirAuthorization.expires_in", "type"),
    (lambda b: b["context"]["draftOrders"]["entry"][0]["resource"].update(note=[{"text": "a\u0000"}]),
     "context.draftOrders.entry[0].resource.note[0].text", "invalid"),
])
def test_a_request_problem_names_its_field_path(mutate, path, kind):
    body = hook_request("order-select", prefetch=full_prefetch())
    mutate(body)
    problem = problem_of(OrderSelectRequest, body)
    assert (problem.path, problem.kind) == (path, kind)
    with pytest.raises(CdsError) as raised:
        parse_hook_request(body, SELECT)
    assert raised.value.field == path


def test_json_true_is_no_integer_and_a_string_no_number():
    body = hook_request("order-select", prefetch=full_prefetch(), fhirServer="http://x")
    body["fhirAuthorization"] = {"access_token": "t", "token_type": "Bearer", "expires_in": "300",
                                 "scope": "s", "subject": "c"}
    with pytest.raises(CdsError) as raised:
        parse_hook_request(body, SELECT)
    assert raised.value.code == "LCDS-1004"
    assert raised.value.message == "Field 'fhirAuthorization.expires_in' has the wrong type: expected integer."


# --- the response -----------------------------------------------------------------------------

def card(**changes) -> dict:
    body = {
        "uuid": str(uuid.uuid4()), "summary": "Avoid lumbar imaging before 6 weeks", "indicator": "warning",
        "source": {"label": "ACR", "url": "https://acsearch.acr.org/", "topic": {"system": "urn:t", "code": "x"}},
        "suggestions": [{"label": "Remove the order", "uuid": str(uuid.uuid4()), "actions": [
            {"type": "delete", "description": "Remove it", "resourceId": ["ServiceRequest/1"]}]}],
        "selectionBehavior": "at-most-one",
        "overrideReasons": [{"system": "urn:r", "code": "other", "display": "Other"}],
        "links": [{"label": "NICE NG59", "url": "https://www.nice.org.uk/guidance/ng59", "type": "absolute"}],
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not ...}


def test_a_conforming_response_validates():
    CdsResponse.model_validate({"cards": [card()], "systemActions": [
        {"type": "update", "description": "Rated", "resource": {"resourceType": "ServiceRequest", "id": "1"}}]})
    CdsResponse.model_validate({"cards": []})


@pytest.mark.parametrize(("response", "path"), [
    ({}, "cards"),
    ({"cards": [card(summary="x" * (SUMMARY_MAX + 1))]}, "cards[0].summary"),
    ({"cards": [card(selectionBehavior=...)]}, "cards[0].selectionBehavior"),
    ({"cards": [card(indicator="urgent")]}, "cards[0].indicator"),
    ({"cards": [card(detail=None)]}, "cards[0].detail"),
    ({"cards": [card(summary="  ")]}, "cards[0].summary"),
    ({"cards": [card(links=[{"label": "l", "url": "https://x.org", "type": "relative"}])]}, "cards[0].links[0].type"),
    ({"cards": [card(links=[{"label": "l", "url": "/guide", "type": "absolute"}])]}, "cards[0].links[0].url"),
    ({"cards": [card(links=[{"label": "l", "url": "https://x.org", "type": "absolute", "appContext": "a"}])]},
     "cards[0].links[0].appContext"),
    ({"cards": [card(overrideReasons=[{"system": "urn:r", "code": "other"}])]}, "cards[0].overrideReasons[0].display"),
    ({"cards": [card(source={"url": "https://x.org"})]}, "cards[0].source.label"),
    ({"cards": [card(uuid="card-1")]}, "cards[0].uuid"),
    ({"cards": [card(sumary="typo")]}, "cards[0].sumary"),
    ({"cards": [card(suggestions=[{"label": "s", "uuid": str(uuid.uuid4()), "actions": [
        {"type": "update", "description": "d", "resource": {"resourceType": "ServiceRequest"}}]}])]},
     "cards[0].suggestions[0].actions[0].resource.id"),
    ({"cards": [card(suggestions=[{"label": "s", "uuid": str(uuid.uuid4()), "actions": [
        {"type": "delete", "description": "d", "resourceId": "1"}]}])]},
     "cards[0].suggestions[0].actions[0].resourceId"),
    ({"cards": [card(suggestions=[{"label": "s", "uuid": str(uuid.uuid4()), "actions": []}])]},
     "cards[0].suggestions[0].actions"),
    ({"cards": [], "systemActions": [{"type": "create", "description": "d"}]}, "systemActions[0].resource"),
    ({"cards": [], "extension": {"systemActions": [{"type": "update", "resource": {"resourceType": "X", "id": "1"}}]}},
     "extension.systemActions[0].description"),
])
def test_a_broken_response_rule_is_named(response, path):
    assert problem_of(CdsResponse, response).path == path


def test_uuids_are_unique_across_cards_and_suggestions():
    first = card()
    second = card(uuid=first["suggestions"][0]["uuid"])
    assert problem_of(CdsResponse, {"cards": [first, second]}).path == "cards[1].uuid"
    assert problem_of(CdsResponse, {"cards": [first, copy.deepcopy(first)]}).path == "cards[1].uuid"


# --- the feedback -----------------------------------------------------------------------------

def test_feedback_reads_into_models_with_an_aware_utc_instant():
    body = parse_feedback_body({"feedback": [
        {"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-03-16T10:00:00+01:00",
         "overrideReason": {"reason": {"code": "other", "system": "urn:r"}, "userComment": "busy"}}]})
    (item,) = body.feedback
    assert isinstance(item, FeedbackItem)
    assert item.outcomeTimestamp.isoformat() == "2026-03-16T09:00:00+00:00"
    assert (item.overrideReason.reason.code, item.overrideReason.userComment) == ("other", "busy")


@pytest.mark.parametrize(("item", "message"), [
    ({"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-03-16T09:00:00Z",
      "acceptedSuggestions": [{"id": "s"}], "overrideReason": {}},
     "Feedback item 0 is invalid: 'overrideReason' is only allowed when outcome is 'overridden'."),
    ({"card": "c" * 129, "outcome": "overridden", "outcomeTimestamp": "2026-03-16T09:00:00Z"},
     "Feedback item 0 is invalid: 'card' is longer than 128 characters."),
    ({"card": "c", "outcome": "overridden", "outcomeTimestamp": "9999-12-31T23:59:59-10:00"},
     "Feedback item 0 is invalid: 'outcomeTimestamp' is out of range (years 1 to 9999 in UTC)."),
])
def test_a_bad_feedback_item_is_named_by_index_and_field(item, message):
    with pytest.raises(CdsError) as raised:
        parse_feedback_body({"feedback": [item]})
    assert (raised.value.code, raised.value.field, raised.value.message) == ("LCDS-1010", "feedback[0]", message)


def test_too_many_feedback_items_is_413_before_any_item_is_read():
    with pytest.raises(CdsError) as raised:
        parse_feedback_body({"feedback": [None] * 1001})
    assert (raised.value.code, raised.value.field) == ("LCDS-1414", "feedback")
