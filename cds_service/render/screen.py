"""The red-flag screen on cards: what the card says when the screen was used, and what a card
that offers the screen hands to the controller (docs/clinical-specification.md §12).

Role in the data flow: render stage, after `CardRenderer.render`. `ScreenRenderer.decorate()`
adds the "Red-flag screen (clinician-attested on ...)" paragraph and any record/screen conflict
to the cards of decisions the screen entered, and returns one `ScreenOffer` per card that offers
the screen: the open questions and the "from the record" lines the page shows, the order's name,
the patient's age and sex (never the name). The link itself needs a stored handle, so the
controller adds it (`ScreenOffer.add_link`). Wording: `cards/screen.yaml`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml
from jinja2 import Environment, StrictUndefined

from cds_service.decide.screen import ScreenUse, offers_screen, open_questions
from cds_service.read.inputs import Evidence
from cds_service.read.screen import AttestedScreen, ScreenQuestionnaire
from cds_service.render.cards import RenderedOrder
from cds_service.render.content import CardContentError
from cds_service.render.context import CardContext
from cds_service.render.evidence import EvidenceWords, day
from cds_service.render.text import md

SCREEN_EXTENSION_KEY = "org.lumbar-imaging-cds.screen"
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]<>()#|!~.+-])")


def _no_note_words(evidence: Evidence) -> Evidence:
    """What, where and when of a fact from free text, without the note's words: the stored page
    keeps no record text (a measured value such as a temperature stays)."""
    if evidence.resource_type == "DocumentReference" or "free text" in (evidence.display or ""):
        return replace(evidence, text=None)
    return evidence


def _in_a_list(label: str) -> str:
    """"Fever" -> "fever" inside a sentence; an initialism stays ("IV drug use")."""
    return label if label[1:2].isupper() else label[:1].lower() + label[1:]


def _unescape(text: str) -> str:
    """Card words (markdown-escaped) as page text: the page's template escapes them for HTML."""
    return _MD_ESCAPE.sub(r"\1", text)


@dataclass
class ScreenOffer:
    """One card that offers the screen, and what its page needs (no patient name or id)."""

    card: dict
    order_reference: str
    link_label: str  # "Complete the red-flag screen (3 questions)"
    topic: str | None
    rating: str | None
    page: dict = field(default_factory=dict)  # stored server-side, keyed by the link's handle

    def add_link(self, url: str, smart_url: str | None = None, app_context: str | None = None) -> None:
        """The absolute link; with a SMART launch URL, the same screen as a SMART app (§12.7)."""
        links = self.card.setdefault("links", [])
        links.append({"label": self.link_label, "url": url, "type": "absolute"})
        if smart_url and app_context:
            links.append({"label": self.link_label + " (in the EHR)", "url": smart_url, "type": "smart",
                          "appContext": app_context})


class ScreenRenderer:
    """`cards/screen.yaml` compiled once; `decorate()` per hook call."""

    def __init__(self, cards_directory: Path, common: dict, questionnaire: ScreenQuestionnaire):
        path = Path(cards_directory) / "screen.yaml"
        if not path.is_file():
            raise CardContentError(f"card content file missing: {path}")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        env = Environment(undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True)
        keys = ("link_label", "used", "conflict", "from_record")
        if not isinstance(data, dict) or any(not data.get(k) for k in keys):
            raise CardContentError(f"{path.name}: needs the keys {', '.join(keys)}")
        self.templates = {k: env.from_string(data[k]) for k in keys}
        self.words = EvidenceWords(common)
        self.context = CardContext(common)
        self.questionnaire = questionnaire

    def decorate(self, rendered: list[RenderedOrder], use: ScreenUse | None, attested: AttestedScreen | None,
                 age: int | None, sex: str | None, order_label) -> list[ScreenOffer]:
        offers = []
        for out in rendered:
            decision = out.decision
            if out.card is None:
                continue
            if use is not None:
                self._say_used(out, use)
            if not offers_screen(decision):
                continue
            questions = open_questions(decision, self.questionnaire, attested)
            if questions.empty:
                continue
            ref = decision.order.reference
            page = {
                "order": order_label(decision),
                "age": age, "sex": sex,
                "onset": questions.onset,
                "asked": list(questions.asked),
                "from_record": [
                    {"linkId": q.link_id, "label": q.label, "text": _unescape(self.templates["from_record"].render(
                        facts=[self.words.phrase(_no_note_words(e), ref, label=label) for label, e in evidence[:3]]))}
                    for q, evidence in questions.from_record
                ],
                # "Screened in the record: ...: none found": what the record showed, group by group.
                "record_screen": _unescape(self.context.screen(decision)),
            }
            label = self.templates["link_label"].render(count=len(questions.asked) + int(questions.onset))
            offers.append(ScreenOffer(out.card, ref, label, decision.topic, decision.rating, page))
        return offers

    def _say_used(self, out: RenderedOrder, use: ScreenUse) -> None:
        attested = use.screen
        onset = ""
        if use.onset_used and attested.onset:
            onset = f"{day(attested.onset)}"
        text = self.templates["used"].render(
            day=day(attested.attested_on), yes=[md(_in_a_list(q.label), 60) for q in use.yes],
            no=[md(_in_a_list(q.label), 60) for q in use.no], onset=onset, covers_gaps=use.covers_gaps,
        ).strip()
        for _question, facts in use.conflicts:
            signs = "; ".join(self.words.fact(f, out.decision.order.reference) for f in facts[:3])
            text += "\n\n" + self.templates["conflict"].render(sign=signs)
        out.card["detail"] = out.card["detail"] + "\n\n" + text
        extension = out.card.setdefault("extension", {})
        extension[SCREEN_EXTENSION_KEY] = {
            "questionnaireResponse": attested.reference,
            "attestedOn": attested.attested_on.isoformat(),
            "yes": [q.link_id for q in use.yes], "no": [q.link_id for q in use.no],
            "conflicts": [q.link_id for q, _ in use.conflicts],
            "coversGaps": use.covers_gaps,
        }
