"""Clinical scenarios: load the JSON vignettes, run them, and read what the service answered.

Role in the test data flow: `tests/scenarios/*.json` holds one clinical vignette per file (a full
CDS Hooks request with its prefetch, plus the cards and PAMA ratings a clinician expects, see
clinical-specification.md §7). This module
- loads and checks the fixtures (`load_scenarios`, `fixture_problems`), so a broken one fails loudly;
- turns a prefetch into the same data on the loopback FHIR server (`load_fhir_server`) and the
  request into one that carries no prefetch but `fhirServer` + `fhirAuthorization`
  (`without_prefetch`), so each vignette is also run through the service's own fetching path;
- reduces a CDS Hooks response to what the vignette asserts (`outcome`): per card its topic,
  indicator and the draft order it names; per order the pama-rating of its system action
  (read from `extension.systemActions`, where the CDS Hooks sandbox reads it, clinical-specification.md §7.6).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cds_service.queries import build_query_plan
from cds_service.read.valuesets import load_valuesets
from cds_service.service import with_planned_keys as complete_prefetch

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"

SERVICE_FOR_HOOK = {"order-select": "lumbar-imaging-order-select", "order-sign": "lumbar-imaging-order-sign"}

# clinical-specification.md §7, card table: each topic has one indicator.
TOPIC_INDICATORS = {
    "cauda-equina-risk": "critical",
    "imaging-before-6-weeks": "warning",
    "prefer-mri-without-contrast": "info",
    "repeat-imaging": "warning",
    "symptom-duration-unknown": "info",
    "no-prior-management": "warning",
}
RATINGS = ("appropriate", "not-appropriate", "no-criteria-apply")

PAMA_RATING_URL = "http://fhir.org/argonaut/Extension/pama-rating"
PAMA_RATING_SYSTEM = "http://fhir.org/argonaut/CodeSystem/pama-rating"
PAMA_CONSULT_ID_URL = "http://fhir.org/argonaut/Extension/pama-rating-consult-id"

# The bearer token the no-prefetch run hands the service; the loopback server demands it.
SCENARIO_TOKEN = "scenario-token-7f3c9a"
PREFETCH_KEYS = (
    "patient", "conditions", "observations", "procedures", "medications", "medicationStatements", "imagingStudies",
    "diagnosticReports", "clinicalNotes", "serviceRequests", "encounters",
)
# Every key the services announce (cds_service.queries), narrowed keys included.
PLANNED_TEMPLATES = build_query_plan(load_valuesets(), {}).templates()

_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
# An expected card: topic, indicator, the order it names, and optionally `cites`: resource
# references its markdown detail must quote (the patient's own evidence, clinical-specification.md §7).
CARD_KEYS = {"topic", "indicator", "order", "cites"}


# -- fixtures -------------------------------------------------------------------------------------
def load_scenarios(directory: Path = SCENARIO_DIR) -> list[tuple[str, dict]]:
    """(name, fixture) for every `*.json` file, sorted by name. Unreadable JSON raises here."""
    scenarios = []
    for path in sorted(directory.glob("*.json")):
        with path.open(encoding="utf-8") as handle:
            scenarios.append((path.stem, with_planned_keys(json.load(handle))))
    return scenarios


def with_planned_keys(fixture: dict) -> dict:
    """A fixture's prefetch as a client that runs every discovery template sends it (the
    service's own `with_planned_keys`: a fixture lists each resource type once)."""
    request = fixture.get("request")
    if isinstance(request, dict):
        complete_prefetch(request, PLANNED_TEMPLATES)
    return fixture


def draft_order_references(request: dict) -> list[str]:
    entries = ((request.get("context") or {}).get("draftOrders") or {}).get("entry") or []
    refs = []
    for entry in entries:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") and resource.get("id"):
            refs.append(f"{resource['resourceType']}/{resource['id']}")
    return refs


def resource_references(prefetch: dict) -> set[str]:
    """'Type/id' of every resource in a prefetch (the Patient and the searchset entries)."""
    refs = set()
    for value in prefetch.values():
        if not isinstance(value, dict):
            continue
        resources = [e.get("resource") or {} for e in value.get("entry") or []] if value.get("resourceType") == "Bundle" else [value]
        refs |= {f"{r['resourceType']}/{r['id']}" for r in resources if r.get("resourceType") and r.get("id")}
    return refs


def fixture_problems(name: str, fixture: Any) -> list[str]:
    """Everything wrong with one fixture's shape (empty list: well formed)."""
    problems: list[str] = []
    if not _NAME.match(name):
        problems.append("file name must be kebab-case")
    if not isinstance(fixture, dict):
        return problems + ["fixture must be a JSON object"]
    # `binaries`: Binary resources a clinical note's attachment url names (clinical-specification.md
    # §9.1); the runner puts them on the FHIR server, which serves them as raw bytes.
    # `server_only`: resources only the FHIR server holds, never prefetched (a Medication that a
    # medicationReference names, clinical-specification.md §3.7); the runner puts them there.
    extra = set(fixture) - {"title", "description", "request", "expected", "binaries", "server_only"}
    if extra:
        problems.append(f"unknown top-level keys {sorted(extra)}")
    for key in ("title", "description"):
        if not isinstance(fixture.get(key), str) or len(fixture[key].strip()) < 10:
            problems.append(f"{key} must be a sentence")
    request = fixture.get("request")
    if not isinstance(request, dict):
        return problems + ["request must be an object"]
    if request.get("hook") not in SERVICE_FOR_HOOK:
        problems.append("request.hook must be order-select or order-sign")
    if not request.get("hookInstance"):
        problems.append("request.hookInstance missing")
    if "fhirServer" in request or "fhirAuthorization" in request:
        problems.append("request must not name a fhirServer: the runner sets the loopback one")
    context = request.get("context")
    if not isinstance(context, dict):
        return problems + ["request.context must be an object"]
    for key in ("userId", "patientId", "draftOrders"):
        if key not in context:
            problems.append(f"request.context.{key} missing")
    orders = draft_order_references(request)
    if request.get("hook") == "order-select":
        selections = context.get("selections")
        if not isinstance(selections, list) or not selections:
            problems.append("order-select needs context.selections")
        else:
            problems += [f"selection {s} is not a draft order" for s in selections if s not in orders]
    # A coded order without authoredOn would be judged on today's date: results would drift.
    for entry in (context.get("draftOrders") or {}).get("entry") or []:
        resource = entry.get("resource") or {}
        coded = any(c.get("code") for c in (resource.get("code") or {}).get("coding") or [])
        if coded and not resource.get("authoredOn"):
            problems.append(f"ServiceRequest/{resource.get('id')} has a code but no authoredOn")
    binaries = fixture.get("binaries", [])
    if not isinstance(binaries, list) or not all(
        isinstance(b, dict) and b.get("resourceType") == "Binary" and b.get("id") and b.get("contentType")
        and isinstance(b.get("data"), str) for b in binaries
    ):
        problems.append("binaries must be a list of Binary resources with id, contentType and data")
    server_only = fixture.get("server_only", [])
    if not isinstance(server_only, list) or not all(
        isinstance(r, dict) and r.get("resourceType") and r.get("id") for r in server_only
    ):
        problems.append("server_only must be a list of FHIR resources with resourceType and id")
    prefetch = request.get("prefetch")
    if not isinstance(prefetch, dict):
        problems.append("request.prefetch must be an object")
    else:
        missing = [k for k in PREFETCH_KEYS if k not in prefetch]
        if missing:
            problems.append(f"prefetch keys missing: {missing}")
        patient = prefetch.get("patient") or {}
        if patient.get("resourceType") != "Patient" or patient.get("id") != context.get("patientId"):
            problems.append("prefetch.patient must be the Patient of context.patientId")
    expected = fixture.get("expected")
    if not isinstance(expected, dict) or not {"cards", "ratings"} <= set(expected) <= {"cards", "ratings", "never_cites"}:
        return problems + ["expected must have 'cards' and 'ratings' (and optionally 'never_cites')"]
    known = set(orders) | resource_references(request.get("prefetch") or {})
    if not isinstance(expected["cards"], list):
        problems.append("expected.cards must be a list")
    else:
        for card in expected["cards"]:
            if not isinstance(card, dict) or not {"topic", "indicator", "order"} <= set(card) <= CARD_KEYS:
                problems.append(f"expected card {card} must have topic, indicator, order (and optionally cites)")
                continue
            if TOPIC_INDICATORS.get(card["topic"]) != card["indicator"]:
                problems.append(f"expected card {card}: unknown topic or wrong indicator for it")
            if card["order"] not in orders:
                problems.append(f"expected card {card} names no draft order")
            problems += [f"expected card cites {ref}: no such resource" for ref in card.get("cites", []) if ref not in known]
    problems += [f"never_cites {ref}: no such resource" for ref in expected.get("never_cites", []) if ref not in known]
    if not isinstance(expected["ratings"], dict):
        problems.append("expected.ratings must be an object")
    else:
        for order, rating in expected["ratings"].items():
            if order not in orders:
                problems.append(f"rating for {order}: not a draft order")
            if rating not in RATINGS:
                problems.append(f"rating {rating!r} is not a pama-rating code")
    return problems


# -- the two ways of sending a vignette -------------------------------------------------------------
def service_path(request: dict) -> str:
    return f"/cds-services/{SERVICE_FOR_HOOK[request['hook']]}"


def load_fhir_server(server, prefetch: dict, binaries: list[dict] = (), server_only: list[dict] = ()) -> int:
    """Put every resource of the prefetch (and the fixture's Binaries and server-only resources,
    with the same ids) on the FHIR server (once each); returns how many."""
    resources: dict[str, dict] = {f"Binary/{b['id']}": copy.deepcopy(b) for b in binaries}
    resources.update({f"{r['resourceType']}/{r['id']}": copy.deepcopy(r) for r in server_only})
    for value in prefetch.values():
        if not isinstance(value, dict):
            continue
        items = [e.get("resource") for e in value.get("entry") or []] if value.get("resourceType") == "Bundle" else [value]
        for resource in items:
            if isinstance(resource, dict) and resource.get("id"):
                resources[f"{resource['resourceType']}/{resource['id']}"] = copy.deepcopy(resource)
    if resources:
        server.add(*resources.values())
    return len(resources)


def without_prefetch(request: dict, fhir_base_url: str, token: str = SCENARIO_TOKEN) -> dict:
    """The same hook call with no prefetch: the service must fetch everything from fhirServer."""
    body = copy.deepcopy(request)
    body.pop("prefetch", None)
    body["fhirServer"] = fhir_base_url
    body["fhirAuthorization"] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/Patient.read patient/Condition.read patient/Observation.read "
        "patient/Procedure.read patient/MedicationRequest.read patient/MedicationStatement.read "
        "patient/Medication.read patient/ImagingStudy.read "
        "patient/DiagnosticReport.read patient/DocumentReference.read patient/Binary.read",
        "subject": "lumbar-imaging-cds",
    }
    return body


# -- reading the answer ------------------------------------------------------------------------------
@dataclass
class Outcome:
    cards: list[tuple[str, str, str]] = field(default_factory=list)  # sorted (topic, indicator, order)
    ratings: dict[str, str] = field(default_factory=dict)  # order -> pama-rating code
    problems: list[str] = field(default_factory=list)  # contract breaches seen while reading
    details: dict[tuple[str, str, str], str] = field(default_factory=dict)  # card -> its markdown detail
    # card -> the resource references of its machine-readable evidence (card.extension, §7.3)
    evidence: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)
    text: str = ""  # the whole response as JSON text

    def as_expected(self) -> dict:
        """In the fixtures' own shape, for readable assertion diffs."""
        return {
            "cards": [{"topic": t, "indicator": i, "order": o} for t, i, o in self.cards],
            "ratings": dict(sorted(self.ratings.items())),
        }

    def citation_problems(self, expected: dict) -> list[str]:
        """Each expected card's machine-readable evidence (its `extension`) holds its `cites`;
        nothing anywhere quotes a `never_cites`."""
        problems = []
        for card in expected["cards"]:
            evidence = self.evidence.get((card["topic"], card["indicator"], card["order"]), set())
            problems += [
                f"{card['topic']} card for {card['order']} does not cite {ref}"
                for ref in card.get("cites", []) if ref not in evidence
            ]
        problems += [f"the response cites {ref}" for ref in expected.get("never_cites", []) if _mentions(self.text, ref)]
        return problems


# A FHIR resource id as a clinician must never read it in a card's summary or detail (§7.3).
RESOURCE_ID = re.compile(
    r"\b(?:Patient|Condition|Observation|Procedure|Medication(?:Request|Statement)?|ServiceRequest|ImagingStudy"
    r"|DiagnosticReport|Encounter|DocumentReference|Binary|Bundle)/[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*")
EVIDENCE_EXTENSION = "org.lumbar-imaging-cds.evidence"


def card_evidence(card: dict) -> dict:
    """The card's machine-readable evidence (`extension`), {} when it has none."""
    value = (card.get("extension") or {}).get(EVIDENCE_EXTENSION)
    return value if isinstance(value, dict) else {}


def _mentions(text: str, reference: str) -> bool:
    return re.search(re.escape(reference) + r"(?![\w.-])", text) is not None


def normalise_expected(expected: dict) -> dict:
    cards = sorted((c["topic"], c["indicator"], c["order"]) for c in expected["cards"])
    return {
        "cards": [{"topic": t, "indicator": i, "order": o} for t, i, o in cards],
        "ratings": dict(sorted(expected["ratings"].items())),
    }


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _action_references(action: dict) -> set[str]:
    refs = set()
    resource = action.get("resource")
    if isinstance(resource, dict) and resource.get("resourceType") and resource.get("id"):
        refs.add(f"{resource['resourceType']}/{resource['id']}")
    resource_id = action.get("resourceId")
    for item in resource_id if isinstance(resource_id, list) else [resource_id]:
        if isinstance(item, str):
            refs.add(item)
    return refs


def card_orders(card: dict, orders: list[str]) -> set[str]:
    """The draft orders a card names: structured places first (its extension, its suggestions'
    actions), the markdown detail and summary only when nothing structured names one."""
    known = set(orders)
    order = card_evidence(card).get("order")
    structured = {order} & known if isinstance(order, str) else set()
    for suggestion in card.get("suggestions") or []:
        for action in suggestion.get("actions") or []:
            if action.get("type") in ("update", "delete"):
                structured |= _action_references(action) & known
    if structured:
        return structured
    text = f"{card.get('summary', '')}\n{card.get('detail', '')}"
    return {ref for ref in orders if _mentions(text, ref)}


def _rating_of(resource: dict) -> tuple[str | None, str | None]:
    rating = consult = None
    for ext in resource.get("extension") or []:
        if ext.get("url") == PAMA_RATING_URL:
            for coding in (ext.get("valueCodeableConcept") or {}).get("coding") or []:
                if coding.get("system") == PAMA_RATING_SYSTEM:
                    rating = coding.get("code")
        elif ext.get("url") == PAMA_CONSULT_ID_URL:
            consult = ext.get("valueUri")
    return rating, consult


def ratings_of(actions: list, problems: list[str], where: str) -> dict[str, str]:
    ratings: dict[str, str] = {}
    consults: set[str] = set()
    for action in actions or []:
        resource = action.get("resource") or {}
        if action.get("type") != "update" or resource.get("resourceType") != "ServiceRequest":
            continue
        rating, consult = _rating_of(resource)
        if rating is None:
            continue
        ref = f"ServiceRequest/{resource.get('id')}"
        if ref in ratings:
            problems.append(f"{where}: two ratings for {ref}")
        ratings[ref] = rating
        if not (isinstance(consult, str) and consult.startswith("urn:uuid:")):
            problems.append(f"{where}: {ref} has no urn:uuid pama-rating-consult-id")
        elif consult in consults:
            problems.append(f"{where}: consult id {consult} reused")
        else:
            consults.add(consult)
    return ratings


def suggestion_problems(card: dict, topic: str | None) -> list[str]:
    """What keeps an EHR from applying a card's suggestions: Epic applies one action per suggestion,
    supports `selectionBehavior: any` and shows each action's description instead of the label
    (clinical-specification.md §7.4)."""
    problems = []
    suggestions = card.get("suggestions") or []
    if suggestions and card.get("selectionBehavior") not in ("any", "at-most-one"):
        problems.append(f"card {topic!r}: suggestions without a selectionBehavior")
    for index, suggestion in enumerate(suggestions):
        actions = suggestion.get("actions") or []
        if len(actions) != 1:
            problems.append(f"card {topic!r}: suggestion {index} holds {len(actions)} actions, not one")
        for action in actions:
            if not str(action.get("description") or "").strip():
                problems.append(f"card {topic!r}: suggestion {index} has an action without a description")
    return problems


def outcome(response: dict, request: dict) -> Outcome:
    """What a clinician sees and what the EHR records, reduced to the fixture's terms."""
    orders = draft_order_references(request)
    result = Outcome(text=json.dumps(response))
    cards = []
    for card in response.get("cards") or []:
        topic = ((card.get("source") or {}).get("topic") or {}).get("code")
        named = card_orders(card, orders)
        if len(named) != 1:
            result.problems.append(f"card {topic!r} names {len(named)} draft orders ({sorted(named)}), not exactly one")
        result.problems += suggestion_problems(card, topic)
        # clinical-specification.md §7.6: an update suggestion without the pama-rating crashes the sandbox's PAMA tab.
        for suggestion in card.get("suggestions") or []:
            for action in suggestion.get("actions") or []:
                resource = action.get("resource") or {}
                if action.get("type") == "update" and resource.get("resourceType") == "ServiceRequest":
                    if _rating_of(resource)[0] not in RATINGS:
                        result.problems.append(f"card {topic!r}: an update suggestion carries no pama-rating")
        order = sorted(named)[0] if named else "(none)"
        cards.append((topic, card.get("indicator"), order))
        result.details[cards[-1]] = str(card.get("detail", ""))
        evidence = card_evidence(card)
        result.evidence[cards[-1]] = {item.get("reference") for item in evidence.get("evidence") or []
                                      if isinstance(item, dict)} | {evidence.get("order")}
        for field_name in ("summary", "detail"):
            shown = RESOURCE_ID.findall(str(card.get(field_name, "")))
            if shown:
                result.problems.append(f"card {topic!r}: its {field_name} shows resource ids {shown}")
    result.cards = sorted(cards, key=lambda c: tuple(str(x) for x in c))
    # The sandbox reads extension.systemActions (clinical-specification.md §7.6); CDS Hooks 2.0 the top level.
    in_extension = ratings_of(
        (response.get("extension") or {}).get("systemActions") or [], result.problems, "extension.systemActions"
    )
    top_level = ratings_of(response.get("systemActions") or [], result.problems, "systemActions")
    if in_extension != top_level:
        result.problems.append(
            f"extension.systemActions ratings {in_extension} differ from systemActions ratings {top_level}"
        )
    result.ratings = in_extension
    return result


# -- the README's "Clinical behaviour" example ---------------------------------------------------------
README_EXAMPLE_SCENARIO = "acute-lbp-2-weeks-xray"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def readme_example_request(fixture: dict) -> dict:
    """The vignette's request with the empty optional prefetch keys sent as `null` ("the client
    knows there is no such data", clinical-specification.md §7), so the README example stays short."""
    request = copy.deepcopy(fixture["request"])
    for key, value in request["prefetch"].items():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle" and not value.get("entry"):
            request["prefetch"][key] = None
    return request


def without_uuids(text: str) -> str:
    return _UUID.sub("<uuid>", text)


def extract_json_block(markdown: str, marker: str) -> Any:
    """The first ```json block after `<!-- marker -->` in `markdown`."""
    start = markdown.index(f"<!-- {marker} -->")
    block = re.search(r"```json\n(.*?)\n```", markdown[start:], re.S)
    return json.loads(block.group(1))


README_PATH = SCENARIO_DIR.parent.parent / "README.md"
EXAMPLE_START, EXAMPLE_END = "<!-- scenario-example:start -->", "<!-- scenario-example:end -->"


def render_readme_example(client) -> str:
    """The README example, from a real run of the example vignette through `client`."""
    fixture = dict(load_scenarios())[README_EXAMPLE_SCENARIO]
    request = readme_example_request(fixture)
    body = client.post(service_path(request), json=request).get_json()
    card = body["cards"][0]
    rating = _rating_of(body["extension"]["systemActions"][0]["resource"])[0]
    service = service_path(request).rsplit("/", 1)[1]
    return f"""{EXAMPLE_START}
Vignette `{README_EXAMPLE_SCENARIO}` ({fixture["title"]}): `POST /cds-services/{service}` with

<!-- scenario-example:request -->
```json
{json.dumps(request, indent=2, ensure_ascii=False)}
```

answers this card, and a system action rating the order `{rating}`:

<!-- scenario-example:card -->
```json
{json.dumps(card, indent=2, ensure_ascii=False)}
```
{EXAMPLE_END}"""


def readme_example_block(readme: str) -> str:
    start, end = readme.index(EXAMPLE_START), readme.index(EXAMPLE_END) + len(EXAMPLE_END)
    return readme[start:end]


def update_readme() -> None:
    """Regenerate the README example in place (`python -m tests.support.scenario`)."""
    import tempfile

    from cds_service.app import create_app

    with tempfile.TemporaryDirectory() as folder:
        app = create_app({"TESTING": True, "DATABASE_PATH": str(Path(folder) / "store.sqlite3")})
        try:
            block = render_readme_example(app.test_client())
        finally:
            app.extensions["lumbar_cds_shutdown"]()
    readme = README_PATH.read_text(encoding="utf-8")
    if without_uuids(readme_example_block(readme)) != without_uuids(block):  # no churn of uuids alone
        README_PATH.write_text(readme.replace(readme_example_block(readme), block), encoding="utf-8")


if __name__ == "__main__":
    update_readme()
