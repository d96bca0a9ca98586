"""The red-flag screen's loop through the service (docs/clinical-specification.md §12): a card
without a usable rating or onset -> its link -> the page -> the answers -> the re-fired hook ->
a rated order whose card says the screen was used."""

from __future__ import annotations

import copy

from cds_service.render.evidence import day
from tests.screen.support import (
    SIGN,
    answer,
    lbp,
    open_page,
    patient,
    post_hook,
    rating_of,
    request_for,
    screen_link,
    screen_path,
    today,
)
from tests.support.hook_requests import MRI_ORDER

XR_ORDER = dict(copy.deepcopy(MRI_ORDER), id="order-xr-1", code={"coding": [
    {"system": "http://www.ama-assn.org/go/cpt", "code": "72100", "display": "X-ray lumbar spine, 2 or 3 views"}]})
ALL_RED_FLAGS_NO = {q: "no" for q in (
    "urinary-retention", "urinary-incontinence", "saddle-anaesthesia", "fecal-incontinence", "bilateral-sciatica",
    "progressive-weakness", "fever", "iv-drug-use", "immunosuppression", "history-of-cancer", "weight-loss",
    "trauma", "osteoporosis", "long-term-steroids")}


def fever_observation(pid: str = patient()["id"]) -> dict:
    return {"resourceType": "Observation", "id": "obs-fever-1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5", "display": "Body temperature"}]},
            "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": today().isoformat(),
            "valueQuantity": {"value": 38.6, "unit": "C", "system": "http://unitsofmeasure.org", "code": "Cel"}}


def test_an_unknown_onset_is_asked_and_the_re_fired_hook_rates_the_order(client):
    body = request_for("pat-onset", lbp("pat-onset"))
    first = post_hook(client, body)
    assert [c["source"]["topic"]["code"] for c in first["cards"]] == ["symptom-duration-unknown"]
    assert screen_link(first)["label"] == "Complete the red-flag screen (3 questions)"
    assert screen_link(first)["type"] == "absolute"
    assert "pat-onset" not in screen_link(first)["url"]  # the handle is opaque

    path = screen_path(first)
    page = client.get(path).get_data(as_text=True)
    assert "MRI lumbar spine without contrast" in page and "56 years, female" in page
    assert "When did this episode of back pain begin?" in page
    assert 'name="fever"' not in page  # the record is complete: red flags are not asked
    assert "none found" in page  # ... they are shown as screened in the record

    saved = answer(client, path, {"onset-weeks": "10", "physical-therapy": "yes", "analgesics": "no",
                                  "care-since-weeks": "8"})
    assert saved.status_code == 200 and "Answers saved" in saved.get_data(as_text=True)

    again = post_hook(client, body)
    # 10 weeks of pain, 8 of physical therapy, no red flag: MRI without contrast is usually
    # appropriate under ACR variant 3 -- rated, and silent.
    assert again["cards"] == [] and rating_of(again) == "appropriate"
    signed = post_hook(client, request_for("pat-onset", lbp("pat-onset"), hook="order-sign"), SIGN)
    assert rating_of(signed) == "appropriate"


def test_the_card_says_the_screen_was_used(client):
    body = request_for("pat-early", lbp("pat-early"))
    path = screen_path(post_hook(client, body))
    answer(client, path, {"onset-weeks": "2", "physical-therapy": "no", "analgesics": "no"})
    again = post_hook(client, body)
    [card] = again["cards"]
    assert card["source"]["topic"]["code"] == "imaging-before-6-weeks"
    assert rating_of(again) == "not-appropriate"
    assert f"**Red-flag screen** (clinician-attested on {day(today())})" in card["detail"]
    assert "attested by the clinician in the red-flag screen" in card["detail"]
    assert screen_link(again) is None  # nothing left open: no second link
    evidence = card["extension"]["org.lumbar-imaging-cds.evidence"]["evidence"]
    assert any(e["resourceType"] == "QuestionnaireResponse" and e["role"] == "episode" for e in evidence)


def test_a_withheld_rating_is_given_once_every_red_flag_is_attested(client):
    # Prior management could not be read (no `procedures`, no FHIR server): the rating is withheld.
    body = request_for("pat-gap", lbp("pat-gap", onset_days_ago=70), drop_keys=("procedures",))
    first = post_hook(client, body)
    [card] = first["cards"]
    assert rating_of(first) is None and "No appropriateness rating is given" in card["detail"]
    path = screen_path(first)
    page = client.get(path).get_data(as_text=True)
    for question in ("Faecal incontinence", "Saddle (perineal) numbness", "History of cancer"):
        assert question in page
    assert "When did this episode" not in page  # the record dates the episode

    answer(client, path, {**ALL_RED_FLAGS_NO, "physical-therapy": "no", "analgesics": "no"})
    again = post_hook(client, body)
    [card] = again["cards"]
    assert card["source"]["topic"]["code"] == "no-prior-management"
    assert rating_of(again) == "not-appropriate"
    assert "It answers what could not be read" in card["detail"]
    assert "**Not checked:**" in card["detail"]  # the gap is still named


def test_a_yes_is_a_red_flag_like_a_coded_one(client):
    body = request_for("pat-yes", lbp("pat-yes", onset_days_ago=10), drop_keys=("procedures",))
    path = screen_path(post_hook(client, body))
    answer(client, path, {**ALL_RED_FLAGS_NO, "saddle-anaesthesia": "yes", "physical-therapy": "no",
                          "analgesics": "no"})
    again = post_hook(client, body)
    [card] = again["cards"]
    assert card["indicator"] == "critical" and card["source"]["topic"]["code"] == "cauda-equina-risk"
    assert "Saddle anaesthesia attested by the clinician in the red-flag screen" in card["detail"]


def test_a_sign_in_the_record_is_not_cancelled_by_a_no(client):
    # The screen said no fever; the record now shows one: both are shown, the fever counts.
    body = request_for("pat-conflict", lbp("pat-conflict", onset_days_ago=10), drop_keys=("procedures",),
                       order=XR_ORDER)
    path = screen_path(post_hook(client, body))
    answer(client, path, {**ALL_RED_FLAGS_NO, "physical-therapy": "no", "analgesics": "no"})
    with_fever = request_for("pat-conflict", lbp("pat-conflict", onset_days_ago=10),
                             fever_observation("pat-conflict"), drop_keys=("procedures",), order=XR_ORDER)
    again = post_hook(client, with_fever)
    [card] = again["cards"]
    # Fever: ACR variant 7, where MRI is preferred to an X-ray; not the 6-week warning.
    assert card["source"]["topic"]["code"] == "prefer-mri-without-contrast"
    assert "The record and the screen differ:" in card["detail"]
    assert "Fever" in card["detail"] and "although the screen answered no" in card["detail"]
    assert card["extension"]["org.lumbar-imaging-cds.screen"]["conflicts"] == ["fever"]


def test_what_the_record_shows_is_not_asked_but_shown_with_its_source(client):
    body = request_for("pat-shown", lbp("pat-shown", onset_days_ago=10), fever_observation("pat-shown"),
                       drop_keys=("procedures",), order=XR_ORDER)
    page = client.get(screen_path(post_hook(client, body))).get_data(as_text=True)
    assert 'name="fever"' not in page and 'name="trauma"' in page
    assert f"Fever: from the record: Fever (body temperature 38.6 °C) in the observations, {day(today())}" in page


def test_answers_belong_to_their_patient(client):
    a = request_for("pat-a", lbp("pat-a"))
    b = request_for("pat-b", lbp("pat-b"))
    path_a = screen_path(post_hook(client, a))
    path_b = screen_path(post_hook(client, b))
    answer(client, path_a, {"onset-weeks": "2", "physical-therapy": "no", "analgesics": "no"})
    # Patient B's card still asks; A's is decided.
    again_b = post_hook(client, b)
    assert [c["source"]["topic"]["code"] for c in again_b["cards"]] == ["symptom-duration-unknown"]
    assert screen_link(again_b) is not None
    assert [c["source"]["topic"]["code"] for c in post_hook(client, a)["cards"]] == ["imaging-before-6-weeks"]
    # A's page token does not carry answers into B's screen.
    token_a = open_page(client, screen_path(post_hook(client, request_for("pat-a2", lbp("pat-a2")))))
    refused = answer(client, path_b, {"onset-weeks": "3", "physical-therapy": "no", "analgesics": "no"}, token=token_a)
    assert refused.status_code == 403
    assert [c["source"]["topic"]["code"] for c in post_hook(client, b)["cards"]] == ["symptom-duration-unknown"]


def test_the_screen_is_off_when_disabled(tmp_path):
    from cds_service.app import create_app

    app = create_app({"TESTING": True, "DATABASE_PATH": str(tmp_path / "s.sqlite3"), "SCREEN_ENABLED": False})
    try:
        response = post_hook(app.test_client(), request_for("pat-off", lbp("pat-off")))
        assert response["cards"] and screen_link(response) is None
        assert app.test_client().get("/screen/anything").status_code == 404
    finally:
        app.extensions["lumbar_cds_shutdown"]()


def test_a_gap_the_screen_cannot_cover_asks_no_red_flags(client):
    # Only prior imaging could not be read: no answer about red flags would make a rating safe.
    body = request_for("pat-imaging-gap", lbp("pat-imaging-gap"), drop_keys=("imagingStudies",))
    first = post_hook(client, body)
    assert rating_of(first) is None
    page = client.get(screen_path(first)).get_data(as_text=True)
    assert "When did this episode" in page and 'name="fever"' not in page


def test_silent_mode_offers_no_screen(tmp_path):
    from cds_service.app import create_app

    app = create_app({"TESTING": True, "DATABASE_PATH": str(tmp_path / "s.sqlite3"), "MODE": "silent"})
    try:
        assert post_hook(app.test_client(), request_for("pat-silent", lbp("pat-silent")))["cards"] == []
        from cds_service.governance.screen.counts import load_screen_counts

        assert load_screen_counts(app.extensions["lumbar_cds_screen"].engine, None, None)["offered"] == 0
    finally:
        app.extensions["lumbar_cds_shutdown"]()


def test_the_loop_with_the_record_fetched_from_the_fhir_server(client, fhir_server):
    """The same loop when the EHR sends no prefetch: the service reads the record from the real
    FHIR server on loopback, and the answers from its store."""
    from tests.support.scenario import load_fhir_server, without_prefetch

    body = request_for("pat-fetched", lbp("pat-fetched"))
    load_fhir_server(fhir_server, body["prefetch"])
    fetched = without_prefetch(body, fhir_server.base_url)
    first = post_hook(client, fetched)
    assert [c["source"]["topic"]["code"] for c in first["cards"]] == ["symptom-duration-unknown"]
    answer(client, screen_path(first), {"onset-weeks": "7", "physical-therapy": "no", "analgesics": "no"})
    again = post_hook(client, fetched)
    assert [c["source"]["topic"]["code"] for c in again["cards"]] == ["no-prior-management"]
    assert rating_of(again) == "not-appropriate"
