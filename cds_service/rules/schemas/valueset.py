"""The schema of a value-set file (cds_service/rules/valuesets/<id>.json).

Role in the data flow: shared utility, start-up only. `read/valuesets.py` loads every file with
`load_rule_file(path, ValueSetFile)` and indexes the entries for lookup
(docs/clinical-specification.md §10: value sets are data, one file per value set).

A file is a FHIR-ValueSet-like object: `id` (the file name), `title`, `purpose`, `source` (where
the codes come from, what was verified) and `entries` of {system, code, display, match:
exact|prefix, exclude} plus the attributes of the purpose (modality/contrast for imaging orders,
laterality and radicular for the episode, measure for observations). Red-flag files add `group`,
`kind`, `label`, `window_days` (null: any time) and `evidence_rule` ("current-sign" needs an
active clinical status; "history" counts whatever the status; §3). Prefix entries are for the
code systems whose codes are read by prefix (ICD-10-CM categories, ATC groups) only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationInfo, field_validator, model_validator

from cds_service.rules.loader import RuleModel, problem
from cds_service.vocabulary import Contrast, Modality, RedFlagGroup

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
# Systems treated as the same code system when looking up (the WHO ICD-10 URI is often sent for
# ICD-10-CM codes; the category codes we list are shared by both).
SYSTEM_ALIASES = {
    "http://hl7.org/fhir/sid/icd-10": ICD10CM,
    "urn:oid:2.16.840.1.113883.6.90": ICD10CM,
    "urn:oid:2.16.840.1.113883.6.96": "http://snomed.info/sct",
    "urn:oid:2.16.840.1.113883.6.1": "http://loinc.org",
    "urn:oid:2.16.840.1.113883.6.12": "http://www.ama-assn.org/go/cpt",
    "urn:oid:2.16.840.1.113883.6.88": "http://www.nlm.nih.gov/research/umls/rxnorm",
}
# Code systems whose codes are normalised (dots dropped, upper case) and may match by prefix.
PREFIX_SYSTEMS = frozenset({ICD10CM, "http://www.whocc.no/atc"})

Purpose = Literal["imaging-order", "qualifying-episode", "red-flag", "spinal-surgery", "systemic-corticosteroid",
                  "negative-finding", "observation", "laterality", "body-site", "management"]
PURPOSES = frozenset(Purpose.__args__)
EvidenceRule = Literal["current-sign", "history"]
EVIDENCE_RULES = frozenset(EvidenceRule.__args__)
Laterality = Literal["left", "right", "bilateral"]
Measure = Literal["body-temperature", "body-weight"]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Days = Annotated[int, Field(gt=0, strict=True)]

# The attributes an entry may carry beside its code, by the value set's purpose.
ENTRY_ATTRIBUTES: dict[str, frozenset[str]] = {
    "imaging-order": frozenset({"modality", "contrast"}),
    "qualifying-episode": frozenset({"laterality", "radicular"}),
    "laterality": frozenset({"laterality"}),
    "observation": frozenset({"measure"}),
}
RED_FLAG_KEYS = ("group", "kind", "label", "window_days", "evidence_rule")
ATTRIBUTE_KEYS = frozenset().union(*ENTRY_ATTRIBUTES.values())


def normalise_system(system: Any) -> str | None:
    if not isinstance(system, str):
        return None
    system = system.strip().rstrip("/")
    return SYSTEM_ALIASES.get(system, system)


class ValueSetEntry(RuleModel):
    system: Text
    code: Text
    display: Text
    match: Literal["exact", "prefix"] = "exact"
    exclude: bool = False
    modality: Modality | None = None
    contrast: Contrast | None = None
    laterality: Laterality | None = None
    radicular: bool | None = None
    measure: Measure | None = None

    @model_validator(mode="after")
    def _prefix_only_where_codes_nest(self) -> ValueSetEntry:
        if self.match == "prefix" and normalise_system(self.system) not in PREFIX_SYSTEMS:
            raise problem(f"prefix matching only for {sorted(PREFIX_SYSTEMS)}")
        return self


class RequiredSite(RuleModel):
    valueset: Text  # the body-site value set the finding's site must be in


class PostVoidResidual(RuleModel):
    threshold_ml: float
    window_days: Days


class ValueSetFile(RuleModel):
    id: Text
    title: Text
    purpose: Purpose
    source: str
    entries: list[ValueSetEntry]
    resourceType: Literal["ValueSet"] | None = None
    status: str | None = None
    # red-flag value sets (and the `kind`/`label` of management ones)
    group: RedFlagGroup | None = None
    kind: Text | None = None
    label: Text | None = None
    window_days: Days | None = None
    evidence_rule: EvidenceRule | None = None
    derived: bool | None = None  # the sign is derived from other value sets (bilateral sciatica)
    requires_site: RequiredSite | None = None
    also_valuesets: list[Text] | None = None
    # words read in text: a body site's, and laterality's by side
    text_patterns: list[Text] | dict[Laterality, list[Text]] | None = None
    route_exclude_text: list[Text] | None = None  # routes that make a corticosteroid not systemic
    # the observation value set's thresholds (clinical-specification.md §5)
    fever_threshold_cel: float | None = None
    weight_loss_fraction: float | None = None
    weight_loss_window_days: Days | None = None
    post_void_residual: PostVoidResidual | None = None

    @field_validator("id")
    @classmethod
    def _id_is_the_file_name(cls, value: str, info: ValidationInfo) -> str:
        stem = (info.context or {}).get("stem")
        if stem is not None and value != stem:
            raise problem(f"id '{value}' differs from the file name")
        return value

    @field_validator("source")
    @classmethod
    def _source_is_named(cls, value: str) -> str:
        if not value.strip():
            raise problem("'source' must name where the codes come from")
        return value

    @model_validator(mode="after")
    def _purpose_keys(self) -> ValueSetFile:
        if self.purpose == "red-flag":
            for key in RED_FLAG_KEYS:
                if key not in self.model_fields_set:
                    raise problem(f"red-flag value set needs '{key}'")
            if self.evidence_rule is None:
                raise problem(f"evidence_rule must be one of {sorted(EVIDENCE_RULES)}")
        allowed = ENTRY_ATTRIBUTES.get(self.purpose, frozenset())
        for index, entry in enumerate(self.entries):
            extra = sorted(entry.model_fields_set & ATTRIBUTE_KEYS - allowed)
            if extra:
                raise problem(f"entry {index + 1} (entries[{index}]): {extra} not an attribute of "
                              f"a {self.purpose} value set (allowed: {sorted(allowed)})")
        return self


__all__ = ["ICD10CM", "PREFIX_SYSTEMS", "PURPOSES", "SYSTEM_ALIASES", "ValueSetEntry", "ValueSetFile",
           "normalise_system"]
