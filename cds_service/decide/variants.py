"""The ACR Appropriateness Criteria variant table and how it ranks an ordered study.

Role in the data flow: decide stage (pure data and functions; docs/clinical-specification.md
section 6).
"""

from __future__ import annotations

from cds_service.decide.outcomes import APPROPRIATE, NOT_APPROPRIATE
from cds_service.read.inputs import (
    CT,
    CT_MYELOGRAPHY,
    FRACTURE,
    INFECTION,
    MALIGNANCY,
    MRI,
    NEURO_DEFICIT,
    UNSPECIFIED,
    WITH,
    WITHOUT,
    WITHOUT_WITH,
    XR,
)


# Study keys: modality + contrast. CT myelography always uses intrathecal contrast, so its
# contrast does not change the study.
def study_key(modality: str, contrast: str) -> str:
    if modality in (XR, CT_MYELOGRAPHY):
        return modality
    return f"{modality}-{contrast}"


MRI_WITHOUT = study_key(MRI, WITHOUT)

# ACR Appropriateness Criteria, Low Back Pain (2021 revision), variants 1-7
# (clinical-specification.md §6.1): (usually appropriate, may be appropriate). Anything else is usually not appropriate.
ACR_VARIANTS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "1": (frozenset(), frozenset()),
    "2": (frozenset(), frozenset()),  # subacute or chronic, no prior management (§5.8)
    "3": (
        frozenset({MRI_WITHOUT}),
        frozenset({XR, study_key(MRI, WITHOUT_WITH), study_key(CT, WITHOUT), CT_MYELOGRAPHY}),
    ),
    "4": (
        frozenset({MRI_WITHOUT, study_key(MRI, WITHOUT_WITH)}),
        frozenset({study_key(CT, WITHOUT), CT_MYELOGRAPHY}),
    ),
    "5": (
        frozenset({XR, MRI_WITHOUT, study_key(MRI, WITHOUT_WITH)}),
        frozenset({study_key(CT, WITHOUT), CT_MYELOGRAPHY}),
    ),
    "6": (
        frozenset({XR, MRI_WITHOUT, study_key(CT, WITHOUT)}),
        frozenset({study_key(MRI, WITHOUT_WITH), CT_MYELOGRAPHY}),
    ),
    "7": (
        frozenset({MRI_WITHOUT, study_key(MRI, WITHOUT_WITH)}),
        frozenset({XR, study_key(CT, WITHOUT), study_key(CT, WITH), CT_MYELOGRAPHY}),
    ),
}

# Which ACR variant each red-flag group calls for (see the module docstring, rule 5).
VARIANT_OF_GROUP = {NEURO_DEFICIT: "3", INFECTION: "7", MALIGNANCY: "7", FRACTURE: "6"}
# When several variants rank the study equally, report the more serious one.
VARIANT_PREFERENCE = ("7", "6", "5", "3")

USUAL, MAY, NOT = 2, 1, 0
_CONTRASTS = (WITHOUT, WITH, WITHOUT_WITH)


def tier(variant: str, modality: str, contrast: str) -> int:
    """How the ACR variant ranks a study. An MRI/CT whose contrast is not given could be any of
    them: it is ranked as its best possible reading (not condemned for a missing detail), but it
    is never "exactly the usually appropriate study", so a card still asks for MRI without."""
    usual, may = ACR_VARIANTS[variant]
    if contrast == UNSPECIFIED and modality in (MRI, CT):
        best = max(tier(variant, modality, c) for c in _CONTRASTS)
        return min(best, MAY)
    key = study_key(modality, contrast)
    if key in usual:
        return USUAL
    if key in may:
        return MAY
    return NOT


def rating_of_tier(value: int) -> str:
    return APPROPRIATE if value >= MAY else NOT_APPROPRIATE

