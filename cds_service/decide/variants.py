"""The ACR Appropriateness Criteria variant table and how it ranks an ordered study.

Role in the data flow: decide stage (pure data and functions; docs/clinical-specification.md
section 6).
"""

from __future__ import annotations

from cds_service.vocabulary import Contrast, Modality, Rating, RedFlagGroup


# Study keys: modality + contrast. CT myelography always uses intrathecal contrast, so its
# contrast does not change the study.
def study_key(modality: str, contrast: str) -> str:
    if modality in (Modality.XR, Modality.CT_MYELOGRAPHY):
        return modality
    return f"{modality}-{contrast}"


MRI_WITHOUT = study_key(Modality.MRI, Contrast.WITHOUT)
# The other studies of the table, by their keys.
_MRI_WITHOUT_WITH = study_key(Modality.MRI, Contrast.WITHOUT_WITH)
_CT_WITHOUT = study_key(Modality.CT, Contrast.WITHOUT)
_CT_WITH = study_key(Modality.CT, Contrast.WITH)
_XR, _CT_MYELOGRAPHY = Modality.XR, Modality.CT_MYELOGRAPHY

# ACR Appropriateness Criteria, Low Back Pain (2021 revision), variants 1-7
# (clinical-specification.md §6.1): (usually appropriate, may be appropriate). Anything else is usually not appropriate.
ACR_VARIANTS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "1": (frozenset(), frozenset()),
    "2": (frozenset(), frozenset()),  # subacute or chronic, no prior management (§5.8)
    "3": (
        frozenset({MRI_WITHOUT}),
        frozenset({_XR, _MRI_WITHOUT_WITH, _CT_WITHOUT, _CT_MYELOGRAPHY}),
    ),
    "4": (
        frozenset({MRI_WITHOUT, _MRI_WITHOUT_WITH}),
        frozenset({_CT_WITHOUT, _CT_MYELOGRAPHY}),
    ),
    "5": (
        frozenset({_XR, MRI_WITHOUT, _MRI_WITHOUT_WITH}),
        frozenset({_CT_WITHOUT, _CT_MYELOGRAPHY}),
    ),
    "6": (
        frozenset({_XR, MRI_WITHOUT, _CT_WITHOUT}),
        frozenset({_MRI_WITHOUT_WITH, _CT_MYELOGRAPHY}),
    ),
    "7": (
        frozenset({MRI_WITHOUT, _MRI_WITHOUT_WITH}),
        frozenset({_XR, _CT_WITHOUT, _CT_WITH, _CT_MYELOGRAPHY}),
    ),
}

# Which ACR variant each red-flag group calls for (see the module docstring, rule 5).
VARIANT_OF_GROUP = {RedFlagGroup.NEURO_DEFICIT: "3", RedFlagGroup.INFECTION: "7",
                    RedFlagGroup.MALIGNANCY: "7", RedFlagGroup.FRACTURE: "6"}
# When several variants rank the study equally, report the more serious one.
VARIANT_PREFERENCE = ("7", "6", "5", "3")

USUAL, MAY, NOT = 2, 1, 0
_CONTRASTS = (Contrast.WITHOUT, Contrast.WITH, Contrast.WITHOUT_WITH)


def tier(variant: str, modality: str, contrast: str) -> int:
    """How the ACR variant ranks a study. An MRI/CT whose contrast is not given could be any of
    them: it is ranked as its best possible reading (not condemned for a missing detail), but it
    is never "exactly the usually appropriate study", so a card still asks for MRI without."""
    usual, may = ACR_VARIANTS[variant]
    if contrast == Contrast.UNSPECIFIED and modality in (Modality.MRI, Modality.CT):
        best = max(tier(variant, modality, c) for c in _CONTRASTS)
        return min(best, MAY)
    key = study_key(modality, contrast)
    if key in usual:
        return USUAL
    if key in may:
        return MAY
    return NOT


def rating_of_tier(value: int) -> str:
    return Rating.APPROPRIATE if value >= MAY else Rating.NOT_APPROPRIATE

