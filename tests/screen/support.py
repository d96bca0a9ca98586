"""Helpers of the red-flag screen tests: hook requests dated today, the card's screen link, the
page's form token, and answers posted as a browser posts them (docs/clinical-specification.md §12)."""

from __future__ import annotations

import copy
import re
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit

from tests.support.hook_requests import LBP_CONDITION, MRI_ORDER, PATIENT, hook_request, prefetch_of

SELECT = "/cds-services/lumbar-imaging-order-select"
SIGN = "/cds-services/lumbar-imaging-order-sign"
RATING_URL = "http://fhir.org/argonaut/Extension/pama-rating"


def today() -> date:
    return datetime.now(UTC).date()


def patient(pid: str = PATIENT["id"]) -> dict:
    return dict(PATIENT, id=pid)


def lbp(pid: str = PATIENT["id"], onset_days_ago: int | None = None, **fields) -> dict:
    """The low back pain Condition; without an onset unless `onset_days_ago` is given."""
    condition = copy.deepcopy(LBP_CONDITION)
    condition.pop("onsetDateTime")
    condition["subject"] = {"reference": f"Patient/{pid}"}
    if onset_days_ago is not None:
        condition["onsetDateTime"] = (today() - timedelta(days=onset_days_ago)).isoformat()
    condition.update(fields)
    return condition


def request_for(pid: str = PATIENT["id"], *resources: dict, hook: str = "order-select",
                drop_keys: tuple[str, ...] = (), order: dict | None = None) -> dict:
    """A hook request for patient `pid` whose order is written today; `drop_keys` are prefetch
    keys not sent (and, without a fhirServer, not fetched: the rating is withheld)."""
    order = copy.deepcopy(order or MRI_ORDER)
    order["subject"] = {"reference": f"Patient/{pid}"}
    order["authoredOn"] = today().isoformat()
    order["code"].setdefault("text", order["code"]["coding"][0]["display"])  # the order form shows it
    conditions = [r for r in resources if r["resourceType"] == "Condition"]
    prefetch = prefetch_of(patient(pid), *conditions)
    others = [r for r in resources if r["resourceType"] != "Condition"]
    if others:
        prefetch["observations"]["entry"] = [{"resource": r} for r in others if r["resourceType"] == "Observation"]
    for key in drop_keys:
        prefetch.pop(key, None)
    body = hook_request(hook, prefetch=prefetch)
    body["context"]["patientId"] = pid
    body["context"]["draftOrders"]["entry"][0]["resource"] = order
    if hook == "order-select":
        body["context"]["selections"] = [f"ServiceRequest/{order['id']}"]
    return body


def post_hook(client, body: dict, path: str = SELECT) -> dict:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def rating_of(response: dict) -> str | None:
    for action in response.get("systemActions", []):
        for extension in action["resource"].get("extension", []):
            if extension["url"] == RATING_URL:
                return extension["valueCodeableConcept"]["coding"][0]["code"]
    return None


def screen_link(response: dict) -> dict | None:
    links = [link for card in response["cards"] for link in card.get("links", []) if "/screen/" in link["url"]]
    assert len(links) <= 1, links
    return links[0] if links else None


def screen_path(response: dict) -> str:
    link = screen_link(response)
    assert link is not None, [c["summary"] for c in response["cards"]]
    return urlsplit(link["url"]).path


def form_token(html: str) -> str:
    return re.search(r'name="form_token" value="([^"]+)"', html)[1]


def open_page(client, path: str) -> str:
    """GET the page (the test client keeps its nonce cookie, as a browser does); its form token."""
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    return form_token(page.get_data(as_text=True))


def answer(client, path: str, answers: dict, token: str | None = None, **headers):
    """POST the answers as the page's form does."""
    token = token if token is not None else open_page(client, path)
    return client.post(path, data={"form_token": token, **answers}, headers=headers)


def all_no(html_or_questions) -> dict:
    names = re.findall(r'type="radio" name="([^"]+)" value="no"', html_or_questions)
    return {name: "no" for name in names}
