"""The shared vocabulary: the few words every stage uses, as string enums defined once.

Role in the data flow: a shared utility (like `logs` and `config`) that every stage may import.
`read` writes these words into the pathway inputs, `decide` decides with them, `render` words the
cards by them and `governance` stores them. Each class is an `enum.StrEnum`: a member *is* its
string (`Modality.MRI == "MRI"`, `str(Modality.MRI) == "MRI"`, the same hash), so values read from
the rule data (plain strings) and members compare alike, and JSON, YAML-rendered text and database
rows carry the plain string. Where the words come from: docs/clinical-specification.md §2.2 and §10
(modality, contrast), §5 (red-flag groups), §7 (topics, ratings, indicators, suggestions), §9.3
(assertions of a free-text finding).
"""

from __future__ import annotations

from enum import StrEnum


class Modality(StrEnum):
    """The modality of a lumbar spine imaging study (clinical-specification.md §10)."""

    XR = "XR"
    CT = "CT"
    CT_MYELOGRAPHY = "CT-myelography"
    MRI = "MRI"


class Contrast(StrEnum):
    """The contrast of a lumbar spine imaging study (clinical-specification.md §10)."""

    WITHOUT = "without"
    WITH = "with"
    WITHOUT_WITH = "without-with"
    UNSPECIFIED = "unspecified"


class RedFlagGroup(StrEnum):
    """The red-flag groups (clinical-specification.md §5), in the order the cards list them."""

    CAUDA_EQUINA = "cauda-equina"
    NEURO_DEFICIT = "neurological-deficit"
    INFECTION = "infection"
    MALIGNANCY = "malignancy"
    FRACTURE = "fracture"


class Topic(StrEnum):
    """The card topics (clinical-specification.md §7): one card file each in cards/."""

    CAUDA_EQUINA_RISK = "cauda-equina-risk"
    IMAGING_BEFORE_6_WEEKS = "imaging-before-6-weeks"
    PREFER_MRI = "prefer-mri-without-contrast"
    REPEAT_IMAGING = "repeat-imaging"
    DURATION_UNKNOWN = "symptom-duration-unknown"
    NO_PRIOR_MANAGEMENT = "no-prior-management"


class Rating(StrEnum):
    """The PAMA appropriateness rating (Argonaut PAMA guidance, clinical-specification.md §7)."""

    APPROPRIATE = "appropriate"
    NOT_APPROPRIATE = "not-appropriate"
    NO_CRITERIA_APPLY = "no-criteria-apply"


class Indicator(StrEnum):
    """A card's urgency (CDS Hooks 2.0 Card.indicator)."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class SuggestionKind(StrEnum):
    """What a card's suggestion does to the draft order (rendered by `render`, §7)."""

    UPDATE_TO_MRI = "update-to-mri-without-contrast"
    DELETE_AND_REFER = "delete-and-refer-to-physical-therapy"
    DELETE = "delete-order"


class Assertion(StrEnum):
    """How a free-text finding is asserted (clinical-specification.md §9.3)."""

    AFFIRMED = "affirmed"
    NEGATED = "negated"
    HISTORICAL = "historical"
    HYPOTHETICAL = "hypothetical"
    OTHER_PERSON = "other-person"
    UNCERTAIN = "uncertain"


class RecognisedBy(StrEnum):
    """How a draft order was recognised as lumbar spine imaging (clinical-specification.md §2.2)."""

    CODE = "code"
    LOCAL_CODE = "local-code"
    NAME = "name"


__all__ = ["Assertion", "Contrast", "Indicator", "Modality", "Rating", "RecognisedBy", "RedFlagGroup",
           "SuggestionKind", "Topic"]
