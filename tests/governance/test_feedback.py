"""The CDS Hooks 2.0 feedback endpoint, against the embedded SQLite and the local PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from cds_service.app import create_app
from cds_service.governance.store.schema import feedback as feedback_table
from cds_service.governance.store.schema import judgement as judgement_table

from .support import (
    OVERRIDE_SYSTEM,
    SELECT,
    SIGN,
    accepted,
    hook_request,
    judgement,
    overridden,
    result,
)

NOW = datetime(2026, 3, 16, 9, 30, tzinfo=UTC)


def issue_card(app, card: str, suggestions=("sug-delete", "sug-pt"), service_id: str = SIGN) -> None:
    """Record a judgement with a card, as the controller does after evaluating a hook call (one
    call per card: the store keeps one judgement per call and order)."""
    recorder = app.extensions["lumbar_cds"].recorder
    recorder.record(hook_request(service_id, hook_instance=f"hi-{card}"),
                    result(judgement(card, suggestions=suggestions)), NOW)


def stored_feedback(app) -> list:
    store = app.extensions["lumbar_cds"].recorder.store
    with store.engine.connect() as connection:
        return list(connection.execute(select(feedback_table).order_by(feedback_table.c.id)))


def post(client, items, service_id: str = SIGN):
    return client.post(f"/cds-services/{service_id}/feedback", json={"feedback": items})


def test_accepted_and_overridden_feedback_round_trip(gov_app, gov_client):
    issue_card(gov_app, "card-1")
    issue_card(gov_app, "card-2")
    response = post(gov_client, [
        accepted("card-1", "sug-pt", at="2026-03-16T09:31:00Z"),
        overridden("card-2", "patient-declines-wait", at="2026-03-16T09:32:00+01:00",
                   comment="wants imaging now", display="Patient declines to wait"),
    ])
    assert response.status_code == 200
    assert response.get_json() == {"received": 2, "stored": 2, "duplicates": 0, "orphans": 0, "recorded": True}

    first, second = stored_feedback(gov_app)
    assert (first.card_uuid, first.outcome, first.accepted_suggestions, first.orphan) == (
        "card-1", "accepted", ["sug-pt"], False)
    assert first.outcome_at == datetime(2026, 3, 16, 9, 31)
    assert (second.card_uuid, second.outcome, second.orphan) == ("card-2", "overridden", False)
    assert (second.override_system, second.override_code, second.override_display) == (
        OVERRIDE_SYSTEM, "patient-declines-wait", "Patient declines to wait")
    assert second.user_comment == "wants imaging now"
    assert second.outcome_at == datetime(2026, 3, 16, 8, 32)  # +01:00 stored as UTC
    assert second.service_id == SIGN


def test_feedback_joins_the_card_it_is_about(gov_app, gov_client):
    issue_card(gov_app, "card-join", suggestions=("sug-a",))
    post(gov_client, [accepted("card-join", "sug-a")])
    store = gov_app.extensions["lumbar_cds"].recorder.store
    joined = select(judgement_table.c.topic, judgement_table.c.service_id, feedback_table.c.outcome).join(
        feedback_table, feedback_table.c.card_uuid == judgement_table.c.card_uuid)
    with store.engine.connect() as connection:
        assert list(connection.execute(joined)) == [("imaging-before-6-weeks", SIGN, "accepted")]


def test_sandbox_override_with_only_code_and_system_is_accepted(gov_app, gov_client):
    issue_card(gov_app, "card-sb")
    # The shape the CDS Hooks sandbox sends when a card is dismissed with a reason.
    item = {"card": "card-sb", "outcome": "overridden", "outcomeTimestamp": "2026-03-16T09:40:00.123Z",
            "overrideReason": {"reason": {"code": "other", "system": OVERRIDE_SYSTEM}}}
    response = post(gov_client, [item])
    assert response.status_code == 200 and response.get_json()["stored"] == 1
    (row,) = stored_feedback(gov_app)
    assert (row.override_code, row.override_system, row.override_display, row.user_comment) == (
        "other", OVERRIDE_SYSTEM, None, None)


def test_retries_are_stored_once(gov_app, gov_client):
    issue_card(gov_app, "card-r")
    items = [overridden("card-r", at="2026-03-16T09:45:00Z")]
    assert post(gov_client, items).get_json()["stored"] == 1
    again = post(gov_client, items)
    assert again.status_code == 200
    assert again.get_json() == {"received": 1, "stored": 0, "duplicates": 1, "orphans": 0, "recorded": True}
    # The same instant written another way is the same item.
    same = post(gov_client, [overridden("card-r", at="2026-03-16T10:45:00+01:00")])
    assert same.get_json()["duplicates"] == 1
    # A later change of mind is a new item.
    later = post(gov_client, [accepted("card-r", "sug-pt", at="2026-03-16T09:50:00Z")])
    assert later.get_json()["stored"] == 1
    assert [r.outcome for r in stored_feedback(gov_app)] == ["overridden", "accepted"]


def test_duplicates_within_one_body_are_stored_once(gov_app, gov_client):
    issue_card(gov_app, "card-d")
    item = accepted("card-d", "sug-pt")
    response = post(gov_client, [item, item])
    assert response.get_json() == {"received": 2, "stored": 1, "duplicates": 1, "orphans": 0, "recorded": True}


def test_feedback_about_a_card_never_issued_is_stored_as_orphan(gov_app, gov_client):
    issue_card(gov_app, "card-known")
    response = post(gov_client, [overridden("card-unknown"), accepted("card-known", "sug-pt")])
    assert response.status_code == 200
    assert response.get_json() == {"received": 2, "stored": 2, "duplicates": 0, "orphans": 1, "recorded": True}
    rows = {r.card_uuid: r.orphan for r in stored_feedback(gov_app)}
    assert rows == {"card-unknown": True, "card-known": False}


def test_feedback_right_after_the_card_joins_it_although_the_write_is_queued(gov_app, gov_client):
    # No wait between issuing the card and the feedback: the endpoint flushes the writer queue.
    for n in range(50):
        issue_card(gov_app, f"card-q{n}")
    response = post(gov_client, [overridden(f"card-q{n}") for n in range(50)])
    assert response.get_json()["orphans"] == 0


def test_feedback_on_order_select_service(gov_app, gov_client):
    issue_card(gov_app, "card-sel", service_id=SELECT)
    response = post(gov_client, [accepted("card-sel", "sug-pt")], service_id=SELECT)
    assert response.status_code == 200 and response.get_json()["stored"] == 1


def test_unknown_service_is_404(client):
    response = post(client, [accepted("c", "s")], service_id="no-such-service")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "LCDS-1404"


BAD_ITEMS = [
    ("not an object", "must be an object"),
    ({"outcome": "accepted", "acceptedSuggestions": [{"id": "s"}], "outcomeTimestamp": "2026-03-16T09:00:00Z"},
     "'card' is required"),
    ({"card": "", "outcome": "overridden", "outcomeTimestamp": "2026-03-16T09:00:00Z"}, "'card' must not be empty"),
    ({"card": 7, "outcome": "overridden", "outcomeTimestamp": "2026-03-16T09:00:00Z"}, "'card' must be a string"),
    ({"card": "c", "outcome": "ignored", "outcomeTimestamp": "2026-03-16T09:00:00Z"},
     "'outcome' must be 'accepted' or 'overridden'"),
    ({"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-03-16T09:00:00Z"},
     "'acceptedSuggestions' must be a non-empty array when outcome is 'accepted'"),
    ({"card": "c", "outcome": "accepted", "acceptedSuggestions": [], "outcomeTimestamp": "2026-03-16T09:00:00Z"},
     "'acceptedSuggestions' must be a non-empty array when outcome is 'accepted'"),
    ({"card": "c", "outcome": "accepted", "acceptedSuggestions": [{"uuid": "s"}], "outcomeTimestamp": "2026-03-16T09:00:00Z"},
     "'acceptedSuggestions[0].id' is required"),
    ({"card": "c", "outcome": "accepted", "acceptedSuggestions": ["s"], "outcomeTimestamp": "2026-03-16T09:00:00Z"},
     "'acceptedSuggestions[0]' must be an object with 'id'"),
    ({"card": "c", "outcome": "overridden", "acceptedSuggestions": [{"id": "s"}], "outcomeTimestamp": "2026-03-16T09:00:00Z"},
     "'acceptedSuggestions' is only allowed when outcome is 'accepted'"),
    ({"card": "c", "outcome": "accepted", "acceptedSuggestions": [{"id": "s"}], "outcomeTimestamp": "2026-03-16T09:00:00Z",
      "overrideReason": {"reason": {"code": "x"}}}, "'overrideReason' is only allowed when outcome is 'overridden'"),
    ({"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-03-16T09:00:00Z", "overrideReason": "busy"},
     "'overrideReason' must be an object"),
    ({"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-03-16T09:00:00Z",
      "overrideReason": {"reason": "busy"}}, "'overrideReason.reason' must be a Coding object"),
    ({"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-03-16T09:00:00Z",
      "overrideReason": {"reason": {"system": OVERRIDE_SYSTEM}}}, "'overrideReason.reason.code' is required"),
    ({"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-03-16T09:00:00Z",
      "overrideReason": {"userComment": 5}}, "'overrideReason.userComment' must be a string"),
    ({"card": "c", "outcome": "overridden"}, "'outcomeTimestamp' is required"),
    ({"card": "c", "outcome": "overridden", "outcomeTimestamp": "yesterday"},
     "'outcomeTimestamp' is not an ISO 8601 date-time"),
    ({"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-03-16T09:00:00"},
     "'outcomeTimestamp' must include a time zone offset (e.g. Z)"),
]


@pytest.mark.parametrize(("item", "reason"), BAD_ITEMS)
def test_malformed_item_is_400_naming_its_index_and_reason(app, client, item, reason):
    issue_card(app, "card-ok")
    response = post(client, [accepted("card-ok", "sug-pt"), item])
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "LCDS-1010"
    assert error["message"] == f"Feedback item 1 is invalid: {reason}."
    assert error["field"] == "feedback[1]"
    assert stored_feedback(app) == []  # a body with a bad item stores nothing


@pytest.mark.parametrize(("body", "code"), [
    ({}, "LCDS-1003"),
    ({"feedback": {"card": "c"}}, "LCDS-1004"),
    ({"feedback": []}, "LCDS-1006"),
    ([], "LCDS-1002"),
])
def test_malformed_body_is_400(client, body, code):
    response = client.post(f"/cds-services/{SIGN}/feedback", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == code


def test_not_json_is_rejected(client):
    response = client.post(f"/cds-services/{SIGN}/feedback", data="{", content_type="application/json")
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "LCDS-1001"
    response = client.post(f"/cds-services/{SIGN}/feedback", data="x", content_type="text/plain")
    assert response.status_code == 415


def test_with_recording_off_feedback_is_acknowledged_not_stored(tmp_path):
    app = create_app({"TESTING": True, "RECORD_JUDGEMENTS": False,
                      "DATABASE_PATH": str(tmp_path / "none" / "store.sqlite3")})
    try:
        response = app.test_client().post(f"/cds-services/{SIGN}/feedback",
                                          json={"feedback": [overridden("card-x")]})
        assert response.status_code == 200
        assert response.get_json() == {"received": 1, "stored": 0, "duplicates": 0, "orphans": 0, "recorded": False}
        assert not (tmp_path / "none").exists()  # no store was created
    finally:
        app.extensions["lumbar_cds_shutdown"]()


# Epic sends `overrideReasons`, an array, where CDS Hooks 2.0 has one `overrideReason`; an entry may
# carry Epic's own extension keys. Both shapes are stored with every reason.
EPIC_OVERRIDE = {
    "card": "card-epic",
    "outcome": "overridden",
    "outcomeTimestamp": "2026-03-16T09:40:00-05:00",
    "overrideReasons": [
        {"reason": {"system": OVERRIDE_SYSTEM, "code": "specialist-request", "display": "Requested by a spine specialist"},
         "userComment": "spine clinic asked for it",
         "extension": {"com.epic.cdshooks.feedback.reason-id": "1001"}},
        {"reason": {"system": OVERRIDE_SYSTEM, "code": "red-flag-not-in-record"}},
    ],
    "extension": {"com.epic.cdshooks.feedback.user-role": "physician"},
}


def test_an_epic_shaped_override_is_stored_with_every_reason(gov_app, gov_client):
    issue_card(gov_app, "card-epic")
    response = post(gov_client, [EPIC_OVERRIDE])
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["stored"] == 1
    (row,) = stored_feedback(gov_app)
    assert row.override_reasons == [
        {"system": OVERRIDE_SYSTEM, "code": "specialist-request", "display": "Requested by a spine specialist"},
        {"system": OVERRIDE_SYSTEM, "code": "red-flag-not-in-record", "display": None},
    ]
    # The first reason also fills the single reason columns, as the specification's shape does.
    assert (row.override_code, row.user_comment) == ("specialist-request", "spine clinic asked for it")
    # The report counts both reasons of the override.
    store = gov_app.extensions["lumbar_cds"].recorder.store
    (figures,) = store.report(None, None)["topics"]
    assert (figures["overridden"], [(r["code"], r["count"]) for r in figures["top_override_reasons"]]) == (
        1, [("red-flag-not-in-record", 1), ("specialist-request", 1)])


def test_the_specification_shape_and_epic_codings_are_read_alike(gov_app, gov_client):
    issue_card(gov_app, "card-spec")
    issue_card(gov_app, "card-coding")
    spec = overridden("card-spec", "specialist-request", at="2026-03-16T09:41:00Z")
    # Both shapes in one item: the reason given twice counts once.
    spec["overrideReasons"] = [spec["overrideReason"], {"reason": {"system": OVERRIDE_SYSTEM, "code": "other"}}]
    bare = {"card": "card-coding", "outcome": "overridden", "outcomeTimestamp": "2026-03-16T09:42:00Z",
            "overrideReasons": [{"system": OVERRIDE_SYSTEM, "code": "onset-earlier-than-recorded"}]}
    assert post(gov_client, [spec, bare]).status_code == 200
    first, second = stored_feedback(gov_app)
    assert [r["code"] for r in first.override_reasons] == ["specialist-request", "other"]
    assert [r["code"] for r in second.override_reasons] == ["onset-earlier-than-recorded"]


@pytest.mark.parametrize(("item", "message"), [
    ({"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-03-16T09:00:00Z", "acceptedSuggestions": [{"id": "s"}],
      "overrideReasons": [{"reason": {"code": "x"}}]}, "'overrideReasons' is only allowed when outcome is 'overridden'"),
    ({"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-03-16T09:00:00Z", "overrideReasons": {"reason": {}}},
     "'overrideReasons' must be an array"),
    ({"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-03-16T09:00:00Z",
      "overrideReasons": [{"reason": {"system": OVERRIDE_SYSTEM}}]}, "'overrideReasons[0].reason.code' is required"),
])
def test_a_bad_epic_override_is_a_400_naming_it(gov_client, item, message):
    response = post(gov_client, [item])
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == f"Feedback item 0 is invalid: {message}."
