"""The red-flag screen as FHIR: the shipped Questionnaire, and the clinician's answers read back.

Role in the data flow: read stage. `load_questionnaire()` reads the rule data
`cds_service/rules/screen/red-flag-screen.questionnaire.json` (a FHIR R4 Questionnaire, validated with fhir.resources at
start-up) into `ScreenQuestion`s; `build_response()` turns the screen page's checked form values
into a QuestionnaireResponse; `read_response()` turns a stored QuestionnaireResponse back into an
`AttestedScreen` the decide stage applies (docs/clinical-specification.md §12). Pure: no I/O
besides loading the shipped file, no clock (dates are passed in).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from cds_service.rules import RULES_DIR

QUESTIONNAIRE_FILE = RULES_DIR / "screen" / "red-flag-screen.questionnaire.json"
FACT_EXTENSION = "urn:lumbar-imaging-cds:screen-fact"
WINDOW_EXTENSION = "urn:lumbar-imaging-cds:screen-window-days"
PATIENT_KEY_SYSTEM = "urn:lumbar-imaging-cds:patient-hash"
MANAGEMENT = "management"
# The two free-valued questions: a date, or "about N weeks ago" (clinical-specification.md §12.1).
ONSET, CARE_SINCE = "onset", "care-since"
MAX_WEEKS = 520  # ten years: a longer "about N weeks" is a typing slip


class ScreenDataError(ValueError):
    """The Questionnaire file or a stored QuestionnaireResponse is not shaped as expected."""


@dataclass(frozen=True)
class ScreenQuestion:
    """One yes/no question: the red-flag group and kind (or `management` and the care kind) a
    "yes" stands for, the look-back window of that kind, its code where one names it."""

    link_id: str
    text: str
    section: str
    group: str
    kind: str
    label: str  # the short name a card gives the sign: "Urinary retention"
    window_days: int | None = None
    code: dict | None = None

    @property
    def is_red_flag(self) -> bool:
        return self.group != MANAGEMENT


@dataclass(frozen=True)
class ScreenQuestionnaire:
    resource: dict
    questions: tuple[ScreenQuestion, ...]
    onset_text: str
    care_since_text: str

    @property
    def url(self) -> str:
        return self.resource["url"]

    def question(self, link_id: str) -> ScreenQuestion | None:
        return next((q for q in self.questions if q.link_id == link_id), None)

    def sections(self, link_ids) -> list[tuple[str, list[ScreenQuestion]]]:
        """The asked questions by section, in the Questionnaire's order (the page's fieldsets)."""
        wanted = set(link_ids)
        out: list[tuple[str, list[ScreenQuestion]]] = []
        for q in self.questions:
            if q.link_id in wanted:
                if not out or out[-1][0] != q.section:
                    out.append((q.section, []))
                out[-1][1].append(q)
        return out


def load_questionnaire(path: Path = QUESTIONNAIRE_FILE) -> ScreenQuestionnaire:
    """The shipped screen, checked as FHIR and for the service's own extensions (at start-up)."""
    try:
        resource = json.loads(Path(path).read_text(encoding="utf-8"))
        Questionnaire.model_validate(resource)
    except Exception as error:  # any parse or validation error: the shipped rule data is broken
        raise ScreenDataError(f"{Path(path).name}: not a valid FHIR Questionnaire ({type(error).__name__})") from None
    questions: list[ScreenQuestion] = []
    texts = {}
    for section in resource["item"]:
        if section["linkId"] == ONSET:
            texts[ONSET] = section["text"]
            continue
        for item in section.get("item", []):
            if item["linkId"].startswith(CARE_SINCE):
                texts.setdefault(CARE_SINCE, item["text"].replace(" (date)", ""))
                continue
            extensions = {e["url"]: e for e in item.get("extension", [])}
            fact = extensions.get(FACT_EXTENSION, {}).get("valueString", "")
            if item.get("type") != "boolean" or fact.count("|") != 2:
                raise ScreenDataError(f"question {item['linkId']!r}: a boolean with a {FACT_EXTENSION} "
                                      "extension 'group|kind|label' is expected")
            group, kind, label = fact.split("|")
            window = extensions.get(WINDOW_EXTENSION, {}).get("valueInteger")
            questions.append(ScreenQuestion(item["linkId"], item["text"], section["text"], group, kind,
                                            label, window, (item.get("code") or [None])[0]))
    if ONSET not in texts or CARE_SINCE not in texts:
        raise ScreenDataError("the onset and care-since questions are missing")
    return ScreenQuestionnaire(resource, tuple(questions), texts[ONSET], texts[CARE_SINCE])


@dataclass(frozen=True)
class AttestedScreen:
    """What the clinician attested, merged over the patient's screens (the latest answer wins)."""

    reference: str  # "QuestionnaireResponse/<id>" of the latest screen
    attested_on: date  # the latest screen's day
    answers: dict[str, tuple[bool, date]] = field(default_factory=dict)  # linkId -> (yes?, day)
    onset: date | None = None
    care_since: date | None = None


def when_from(values: dict[str, str], prefix: str, today: date) -> tuple[date | None, str | None]:
    """A date, or "about N weeks ago", from the form (`<prefix>-date`, `<prefix>-weeks`):
    (the day, None) or (None, why the value is refused). Both empty: (None, None)."""
    raw_date = (values.get(f"{prefix}-date") or "").strip()
    raw_weeks = (values.get(f"{prefix}-weeks") or "").strip()
    if raw_date:
        try:
            day = date.fromisoformat(raw_date)
        except ValueError:
            return None, "is not a date (use the date picker or YYYY-MM-DD)"
        if day > today:
            return None, "is after today"
        if day.year < 1900:
            return None, "is before 1900"
        return day, None
    if raw_weeks:
        if not raw_weeks.isdigit() or int(raw_weeks) > MAX_WEEKS:
            return None, f"is not a number of weeks from 0 to {MAX_WEEKS}"
        return today - timedelta(weeks=int(raw_weeks)), None
    return None, None


def build_response(questionnaire: ScreenQuestionnaire, response_id: str, answers: dict[str, bool],
                   onset: date | None, care_since: date | None, patient_key: str, author: str | None,
                   authored: str) -> dict:
    """The QuestionnaireResponse of one completed screen: the patient as its hashed key (never
    the id), the user the hook named as author, the time (clinical-specification.md §12.3)."""
    items = []
    if onset is not None:
        items.append({"linkId": ONSET, "text": questionnaire.onset_text, "item": [
            {"linkId": "onset-date", "answer": [{"valueDate": onset.isoformat()}]}]})
    for question in questionnaire.questions:
        if question.link_id in answers:
            items.append({"linkId": question.link_id, "text": question.text,
                          "answer": [{"valueBoolean": answers[question.link_id]}]})
    if care_since is not None:
        items.append({"linkId": "care-since-date", "text": questionnaire.care_since_text,
                      "answer": [{"valueDate": care_since.isoformat()}]})
    resource = {
        "resourceType": "QuestionnaireResponse", "id": response_id,
        "questionnaire": questionnaire.url, "status": "completed",
        "subject": {"identifier": {"system": PATIENT_KEY_SYSTEM, "value": patient_key}},
        "authored": authored, "item": items,
    }
    if author:
        resource["author"] = {"reference": author}
    QuestionnaireResponse.model_validate(resource)
    return resource


def read_response(resource: dict, on: date) -> AttestedScreen:
    """A stored QuestionnaireResponse -> its answers, each dated `on` (the day it was completed)."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "QuestionnaireResponse":
        raise ScreenDataError("not a QuestionnaireResponse")
    answers: dict[str, tuple[bool, date]] = {}
    onset = care_since = None
    for item in resource.get("item") or []:
        link = item.get("linkId")
        if link == ONSET:
            value = _answer(item.get("item", [{}])[0], "valueDate")
            onset = date.fromisoformat(value) if value else None
        elif link == "care-since-date":
            value = _answer(item, "valueDate")
            care_since = date.fromisoformat(value) if value else None
        else:
            value = _answer(item, "valueBoolean")
            if isinstance(value, bool):
                answers[link] = (value, on)
    return AttestedScreen(f"QuestionnaireResponse/{resource.get('id')}", on, answers, onset, care_since)


def merge(screens: list[AttestedScreen]) -> AttestedScreen | None:
    """The patient's screens, oldest first, as one: a later answer replaces an earlier one."""
    if not screens:
        return None
    answers: dict[str, tuple[bool, date]] = {}
    onset = care_since = None
    for screen in screens:
        answers.update(screen.answers)
        onset = screen.onset or onset
        care_since = screen.care_since or care_since
    latest = screens[-1]
    return AttestedScreen(latest.reference, latest.attested_on, answers, onset, care_since)


def _answer(item: dict, key: str):
    answer = (item.get("answer") or [{}])[0]
    return answer.get(key) if isinstance(answer, dict) else None
