"""The schema of the card wording (cards/common.yaml and cards/<topic>.yaml).

Role in the data flow: shared utility, start-up only. The wording stays in `cards/` at the
repository root, as the design fixes it (a site edits it without touching the package), and is
loaded the way every rule file is: `render/content.py` reads each file with
`load_rule_file(path, CommonWording)` or `load_rule_file(path, TopicWording)`, then compiles the
Jinja2 templates (docs/clinical-specification.md section 7).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import StringConstraints, field_validator

from cds_service.rules.loader import RuleModel, problem
from cds_service.vocabulary import Rating, RedFlagGroup

Text = Annotated[str, StringConstraints(min_length=1)]


class Coding(RuleModel):
    system: Text
    code: Text
    display: Text


class PhysicalTherapy(Coding):
    description: Text  # a Jinja2 template


class GroupWords(RuleModel):
    label: Text
    short: Text | None = None
    checked: Text | None = None


class CommonWording(RuleModel):
    """cards/common.yaml: the codes, labels and shared template partials of every card."""

    topic_system: Text
    override_reason_system: Text
    non_adherence_system: Text
    system_action_description: Text  # a Jinja2 template
    # Jinja2 templates of an update suggestion's action description (Epic shows it, not the label).
    update_description: Text
    priority_description: Text
    suggested_studies: dict[str, Coding]
    physical_therapy: PhysicalTherapy
    code_system_names: dict[str, Text] = {}
    study_labels: dict[str, Text]
    priority_labels: dict[str, Text] = {}
    rating_labels: dict[Rating, Text]
    acr_variants: dict[str, Text]
    red_flag_groups: dict[RedFlagGroup, GroupWords]
    found_in: dict[str, Text] = {}
    data_labels: dict[str, Text]
    gap_reasons: dict[str, Text]
    partials: dict[str, Text]  # Jinja2 templates the topics include


class Source(RuleModel):
    label: Text
    url: str | None = None


class Link(RuleModel):
    entry_label = "link {n}"
    label: Text
    url: str

    @field_validator("url")
    @classmethod
    def _absolute_https(cls, url: str) -> str:
        if not url.startswith("https://"):
            raise problem("every link needs a label and an https url")
        return url


# The codes of the CDS Hooks 3.0 example value set (non-adherence-reason-clinical) the cards map to.
NonAdherence = Literal["cds-not-applicable", "patient-ineligible", "indication-order-exists", "action-completed",
                       "action-unsuccessful", "cds-suboptimal-context", "recipient-disagrees-evidence"]


class OverrideReason(RuleModel):
    entry_label = "override reason {n}"
    code: Text
    display: Text
    non_adherence: NonAdherence | None = None  # the 3.0 example code that fits, if one does


class TopicWording(RuleModel):
    """cards/<topic>.yaml: one card's wording; summary, detail and delete_description are templates."""

    topic: Text
    display: Text
    summary: Text
    detail: Text
    source: Source
    links: list[Link] | None = None
    override_reasons: list[OverrideReason] | None = None
    suggestion_label: Text | None = None
    priority_suggestion_label: Text | None = None  # when only the priority changes (same study)
    contrast_suggestion_label: Text | None = None  # the MRI without and with contrast alternative
    referral_suggestion_label: Text | None = None  # the physical therapy referral beside a removal
    delete_description: Text | None = None


__all__ = ["CommonWording", "Link", "OverrideReason", "Source", "TopicWording"]
