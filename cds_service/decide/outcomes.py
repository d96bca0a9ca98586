"""What a decision is: the topics, ratings and suggestion kinds, and the `OrderDecision` per order.

Role in the data flow: decide stage (pure data). `render` turns an `OrderDecision` into a card and
a system action; the governance store records its topic and rating
(docs/clinical-specification.md sections 6 and 7).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from cds_service.read.inputs import (
    RED_FLAG_GROUPS,
    Evidence,
    ImagingOrder,
    PriorImaging,
    RedFlagFact,
)
from cds_service.vocabulary import Indicator, Rating, SuggestionKind, Topic

# Topics, ratings and suggestion kinds are defined once, in cds_service.vocabulary (§7); these
# names stay for the modules and tests that still import them from here (the members themselves).
(CAUDA_EQUINA_RISK, IMAGING_BEFORE_6_WEEKS, PREFER_MRI, REPEAT_IMAGING, DURATION_UNKNOWN,
 NO_PRIOR_MANAGEMENT) = Topic
TOPICS = tuple(Topic)
APPROPRIATE, NOT_APPROPRIATE, NO_CRITERIA_APPLY = Rating
SUGGEST_UPDATE_TO_MRI, SUGGEST_DELETE_AND_REFER, SUGGEST_DELETE = SuggestionKind

# --- Why no card / which branch (machine-readable, for tests and the governance store) -------
REASON_UNDER_18 = "under-18"
REASON_NO_EPISODE = "no-qualifying-episode"
REASON_APPROPRIATE_RED_FLAG = "appropriate-for-red-flag"
REASON_APPROPRIATE_6_WEEKS = "appropriate-after-6-weeks"


@dataclass(frozen=True)
class Alternative:
    """The study a suggestion proposes instead, and the rating it would get."""

    modality: str
    contrast: str
    priority: str | None
    rating: Rating


@dataclass
class OrderDecision:
    order: ImagingOrder
    topic: Topic | None
    indicator: Indicator | None
    rating: Rating | None
    acr_variant: str | None
    reason: str  # the branch taken (a topic code or one of the REASON_* constants)
    evidence: list[Evidence] = field(default_factory=list)  # the facts that drove the decision
    red_flags: list[RedFlagFact] = field(default_factory=list)  # active red flags (all groups)
    documented_absent: list[RedFlagFact] = field(default_factory=list)  # cancelled by negation
    red_flag_groups_checked: tuple[str, ...] = RED_FLAG_GROUPS
    alternative: Alternative | None = None
    # A second alternative where the variant makes contrast usually appropriate too (5, 7).
    contrast_alternative: Alternative | None = None
    suggestion: SuggestionKind | None = None
    age: int | None = None
    onset: date | None = None
    onset_is_lower_bound: bool = False  # onset taken from a recordedDate
    onset_evidence: Evidence | None = None
    days_since_onset: int | None = None
    weeks_since_onset: int | None = None
    six_weeks_date: date | None = None
    prior_imaging: PriorImaging | None = None
    prior_surgery: list[Evidence] = field(default_factory=list)
    # Conservative care within the episode (clinical-specification.md §5.8), what variant 3 rests on.
    management: list[Evidence] = field(default_factory=list)
    unavailable_data: list[str] = field(default_factory=list)
    incomplete_data: dict[str, str] = field(default_factory=dict)  # key -> why (§8.3)
    rating_withheld: bool = False  # a rating was due but rests on incomplete data (§8.3)
    skipped_resources: list[str] = field(default_factory=list)

    @property
    def red_flag_groups_found(self) -> list[str]:
        return [g for g in RED_FLAG_GROUPS if any(f.group == g for f in self.red_flags)]


