"""Pathway inputs: the plain dataclass tree the parser fills and the pathway decides on.

Role in the data flow: the contract between `read` (FHIR JSON -> these facts) and `decide`
(these facts + reference date -> decisions). Nothing here does I/O or reads the clock. Every fact
keeps `Evidence` pointing at the resource it came from (clinical-specification.md §3), so that a card can
cite it. Dates are `datetime.date`; look-back windows are applied by the pathway, not the parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from cds_service.vocabulary import Contrast, Modality, RecognisedBy, RedFlagGroup

# The words are defined once, in cds_service.vocabulary; these names stay for the modules and
# tests that still import them from here (the members themselves, not copies).
CAUDA_EQUINA, NEURO_DEFICIT, INFECTION, MALIGNANCY, FRACTURE = RedFlagGroup
RED_FLAG_GROUPS = tuple(RedFlagGroup)
XR, CT, CT_MYELOGRAPHY, MRI = Modality
WITHOUT, WITH, WITHOUT_WITH, UNSPECIFIED = Contrast


@dataclass(frozen=True)
class Evidence:
    """One fact's source: `reference` like 'Condition/123', the code that matched, its date."""

    reference: str
    resource_type: str
    code: str | None = None
    system: str | None = None
    display: str | None = None
    date: date | None = None
    text: str | None = None  # a short human description, e.g. "Body temperature 38.4 Cel"; for a
    # free-text fact, the <= 120 character snippet of the source text the card may quote (§9.3)
    # How a medicine was recognised (§3.7): "code" (RxNorm, ATC) or "name" (ingredient or brand in
    # its text); None for every other fact.
    recognised_by: str | None = None


@dataclass(frozen=True)
class PatientFacts:
    reference: str | None = None
    birth_date: date | None = None
    sex: str | None = None

    def age_on(self, day: date) -> int | None:
        if self.birth_date is None:
            return None
        years = day.year - self.birth_date.year
        if (day.month, day.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return years


@dataclass(frozen=True)
class EpisodeCondition:
    """A qualifying low back pain / sciatica / radiculopathy diagnosis."""

    evidence: Evidence
    onset: date | None  # from onsetDateTime / onsetPeriod.start / onsetAge
    recorded: date | None  # recordedDate: a lower bound of the duration only
    laterality: frozenset[str] = frozenset()  # {"left", "right"}
    from_order_reason: bool = False  # the draft order's own reasonCode


@dataclass(frozen=True)
class RedFlagFact:
    """A sign that counts for a red-flag group, with the look-back window of its value set."""

    group: str  # one of RED_FLAG_GROUPS
    kind: str  # the value set / sign id, e.g. "urinary-retention", "fever", "history-of-cancer"
    label: str  # clinician-facing name, e.g. "Urinary retention"
    evidence: Evidence
    window_days: int | None = None  # None: counts at any time
    negated: bool = False  # an observation saying the sign is absent: evidence against


@dataclass(frozen=True)
class Measurement:
    """A dated quantity (body weight in kg, motor grade 0-5) for trend rules."""

    kind: str  # "body-weight-kg", "motor-grade"
    value: float
    evidence: Evidence


@dataclass(frozen=True)
class PriorImaging:
    modality: str  # XR, CT, CT-myelography, MRI
    evidence: Evidence


@dataclass(frozen=True)
class ImagingOrder:
    """A lumbar spine imaging ServiceRequest from context.draftOrders."""

    reference: str  # "ServiceRequest/<id>"
    modality: str
    contrast: str
    code: Evidence
    priority: str | None = None
    authored_on: date | None = None
    resource: dict = field(default_factory=dict, compare=False, repr=False)  # raw JSON, for updates
    recognised_by: str = RecognisedBy.CODE  # how it was recognised (clinical-specification.md §2.2)


@dataclass
class PathwayInputs:
    patient: PatientFacts
    # The day the pathway judges on: the judged orders' authoredOn (the latest), else today (UTC).
    reference_date: date
    episode: list[EpisodeCondition] = field(default_factory=list)
    red_flags: list[RedFlagFact] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    prior_imaging: list[PriorImaging] = field(default_factory=list)
    spinal_surgery: list[Evidence] = field(default_factory=list)
    corticosteroids: list[Evidence] = field(default_factory=list)
    # Conservative care documented in free text ("completed 6 weeks of PT", "tried naproxen"):
    # management evidence, clinical-specification.md §9.4 (for the prior-management rule).
    management: list[Evidence] = field(default_factory=list)
    orders: list[ImagingOrder] = field(default_factory=list)  # the orders to judge
    unavailable_data: list[str] = field(default_factory=list)  # prefetch keys not (wholly) seen
    # key -> why it is incomplete (not-fetched, page-cap, entry-cap, budget, refused, error,
    # unreadable): a rating resting on it is not given (clinical-specification.md §8.3).
    incomplete_data: dict[str, str] = field(default_factory=dict)
    skipped_resources: list[str] = field(default_factory=list)  # malformed, e.g. "Condition/7"
