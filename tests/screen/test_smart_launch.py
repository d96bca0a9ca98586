"""The red-flag screen launched as a SMART app (docs/clinical-specification.md §12.7), against a
SMART authorization server running on loopback (tests/support/smart_ehr.py, authlib): the card's
`smart` link and its opaque appContext, the EHR launch (PKCE), the token response's patient and
appContext checked against the handle, and the same screen answered in Chromium."""

from __future__ import annotations

import socket

import pytest
import requests

from cds_service.app import create_app
from tests.governance.browser import browser_page, chromium_missing, served
from tests.screen.support import SELECT, lbp, rating_of, request_for
from tests.support.smart_ehr import SmartEhr

CLIENT_ID = "lumbar-imaging-cds-screen"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smart(tmp_path, monkeypatch):
    """(service base URL, the EHR, its FHIR base): both on loopback, over plain http, which
    authlib allows only with AUTHLIB_INSECURE_TRANSPORT (production endpoints are https)."""
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    port = free_port()
    service = f"http://127.0.0.1:{port}"
    app = create_app({"TESTING": True, "DATABASE_PATH": str(tmp_path / "s.sqlite3"),
                      "SMART_LAUNCH_URL": f"{service}/screen/launch", "SMART_CLIENT_ID": CLIENT_ID})
    ehr = SmartEhr(CLIENT_ID, f"{service}/screen/launch/callback")
    try:
        with served(app, port), served(ehr.app) as ehr_base:
            yield service, ehr, f"{ehr_base}/fhir"
    finally:
        app.extensions["lumbar_cds_shutdown"]()


def _smart_link(service: str, pid: str) -> tuple[dict, dict]:
    body = request_for(pid, lbp(pid))
    response = requests.post(service + SELECT, json=body, timeout=30).json()
    links = {link["type"]: link for card in response["cards"] for link in card.get("links", [])
             if "screen" in link["url"]}
    assert set(links) == {"absolute", "smart"}
    return links["smart"], body


def test_the_card_carries_a_smart_link_with_an_opaque_app_context(smart):
    service, _ehr, _fhir = smart
    link, _ = _smart_link(service, "pat-smart-0")
    assert link["url"] == f"{service}/screen/launch"
    assert "pat-smart-0" not in link["appContext"] and link["appContext"].count(".") == 2  # signed handle


@pytest.mark.skipif(chromium_missing() is not None, reason=chromium_missing() or "")
def test_the_ehr_launch_opens_the_same_screen_and_the_order_is_rated(smart):
    service, ehr, fhir = smart
    link, body = _smart_link(service, "pat-smart-1")
    ehr.launches["launch-1"] = {"patient": "pat-smart-1", "appContext": link["appContext"],
                                "fhirUser": "Practitioner/example"}
    with browser_page(400, 900) as page:
        page.goto(f"{link['url']}?iss={fhir}&launch=launch-1")
        page.wait_for_url(f"{service}/screen/{link['appContext']}")
        assert "56 years, female" in page.inner_text("main")
        page.get_by_label("or about how many weeks ago").fill("3")
        for legend in ("Physical therapy or supervised exercise", "Analgesics (paracetamol, NSAIDs or others)"):
            page.get_by_role("group", name=legend).get_by_label("No").check()
        with page.expect_navigation():
            page.get_by_role("button", name="Save answers").click()
        assert "Answers saved" in page.inner_text("main")
    assert ehr.codes == {}  # the code was exchanged (and spent)
    again = requests.post(service + SELECT, json=body, timeout=30).json()
    assert [c["source"]["topic"]["code"] for c in again["cards"]] == ["imaging-before-6-weeks"]
    assert rating_of(again) == "not-appropriate"


@pytest.mark.parametrize(("context", "status", "says"), [
    ({"patient": "pat-someone-else", "fhirUser": "Practitioner/example"}, 403, "another patient"),
    ({"patient": "pat-smart-2", "fhirUser": "Practitioner/another-clinician"}, 403, "another user"),
    ({"patient": "pat-smart-2", "fhirUser": "Practitioner/example", "appContext": "forged.handle.x"}, 400,
     "carries no screen"),
])
def test_a_launch_for_another_patient_or_user_is_refused(smart, context, status, says):
    service, ehr, fhir = smart
    link, _ = _smart_link(service, "pat-smart-2")
    ehr.launches["launch-2"] = {"appContext": link["appContext"], **context}
    browser = requests.Session()
    answer = browser.get(f"{link['url']}?iss={fhir}&launch=launch-2", timeout=30)
    assert answer.status_code == status and says in answer.text
    assert "Save answers" not in answer.text


def test_a_launch_naming_a_server_off_the_rules_is_refused(smart):
    service, _ehr, _fhir = smart
    answer = requests.get(f"{service}/screen/launch?iss=http://ehr.example.org/fhir&launch=x", timeout=30)
    assert answer.status_code == 400 and "may not call" in answer.text  # plain http off loopback
