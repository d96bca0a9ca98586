"""The schema of a site's local codes file (the `LOCAL_CODES_FILE` setting, YAML).

Role in the data flow: shared utility, start-up only. `read/local_codes.py` loads the file with
`load_rule_file(path, LocalCodesFile)`; every entry then joins the value set it names
(docs/clinical-specification.md §2.2). The file (every section optional):

    orders:          # lumbar spine imaging orders -> lumbar-imaging-orders
      - {system: "urn:oid:1.2.840.114350.1.13.999.7.2.696580", code: "12345",
         modality: MRI, contrast: without, display: "MRI LUMBAR SPINE WO CONTRAST"}
    conditions:      # a local code counts as the codes of a value set
      - {system: "urn:oid:...", code: "LBP1", valueset: qualifying-episode}
    observations:    # a measure, or the codes of a value set
      - {system: "urn:oid:...", code: "PVR", measure: post-void-residual}   # mL; > 200 mL: retention
      - {system: "urn:oid:...", code: "RET", valueset: cauda-equina-urinary-retention}

`modality` is XR, CT, CT-myelography or MRI (MR is read as MRI); `contrast` is without, with,
without-with or unspecified (the default for CT and MRI; X-ray is always without, CT myelography
always with, as in the shipped list). Codes must be YAML strings: quote them, because YAML reads
`12345` as a number and `012345` as an octal one. The messages name the section and the entry
("orders entry 2: ..."), as a site's editor counts them.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from cds_service.rules.loader import RuleModel, problem
from cds_service.vocabulary import Contrast, Modality

MODALITY_NAMES = {"xr": Modality.XR, "ct": Modality.CT, "ct-myelography": Modality.CT_MYELOGRAPHY,
                  "mri": Modality.MRI, "mr": Modality.MRI}
CONTRASTS = (Contrast.WITHOUT, Contrast.WITH, Contrast.WITHOUT_WITH, Contrast.UNSPECIFIED)
# The contrast a modality always has (clinical-specification.md §2.2 table).
FIXED_CONTRAST = {Modality.XR: Contrast.WITHOUT, Modality.CT_MYELOGRAPHY: Contrast.WITH}
MEASURES = ("post-void-residual", "body-temperature", "body-weight")
LATERALITIES = ("left", "right", "bilateral")
SECTIONS = ("orders", "conditions", "observations")
ORDERS_VALUESET = "lumbar-imaging-orders"
MEASURES_VALUESET = "observation-codes"


def _required(default: Any = None) -> Any:
    """A field whose absence is checked by its own validator (for the site-facing message)."""
    return Field(default=default, validate_default=True)


class LocalCodeEntry(RuleModel):
    """What every entry has: the code and how it is shown."""

    entry_label = "{list} entry {n}"
    system: str = _required()
    code: str = _required()
    display: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _a_mapping(cls, item: Any) -> Any:
        if not isinstance(item, dict):
            raise problem("must be a mapping such as {system: ..., code: ...}")
        return item

    @field_validator("system", mode="before")
    @classmethod
    def _system(cls, system: Any) -> str:
        if not isinstance(system, str) or not system.strip():
            raise problem("'system' must be a non-empty string (the code system URI or OID)")
        return system.strip()

    @field_validator("code", mode="before")
    @classmethod
    def _code(cls, code: Any) -> str:
        if isinstance(code, (int, float)) and not isinstance(code, bool):
            raise problem(f"'code' {code!r} must be quoted (YAML read it as a number)")
        if not isinstance(code, str) or not code.strip():
            raise problem("'code' must be a non-empty string")
        return code.strip()

    @field_validator("display", mode="before")
    @classmethod
    def _display(cls, display: Any) -> str | None:
        if display is not None and (not isinstance(display, str) or not display.strip()):
            raise problem("'display' must be a non-empty string")
        return display.strip() if display is not None else None


def _valueset_id(valueset: Any) -> str:
    if not isinstance(valueset, str) or not valueset.strip():
        raise problem("'valueset' must name a value set (a file in cds_service/rules/valuesets/)")
    return valueset.strip()


class LocalOrder(LocalCodeEntry):
    modality: Modality = _required()
    contrast: Contrast | None = None

    @field_validator("modality", mode="before")
    @classmethod
    def _modality(cls, raw: Any) -> Modality:
        modality = MODALITY_NAMES.get(raw.strip().lower()) if isinstance(raw, str) else None
        if modality is None:
            raise problem(f"'modality' must be one of XR, CT, CT-myelography, MRI (got {raw!r})")
        return modality

    @field_validator("contrast", mode="before")
    @classmethod
    def _contrast(cls, contrast: Any) -> Any:
        if contrast is not None and contrast not in CONTRASTS:
            raise problem(f"'contrast' must be one of {', '.join(CONTRASTS)} (got {contrast!r})")
        return contrast

    @property
    def joins(self) -> str:
        """The id of the value set the code joins."""
        return ORDERS_VALUESET

    @model_validator(mode="after")
    def _fixed_contrast(self) -> LocalOrder:
        fixed = FIXED_CONTRAST.get(self.modality)
        if fixed and self.contrast is not None and self.contrast != fixed:
            raise problem(f"{self.modality} is always contrast '{fixed}' (got {str(self.contrast)!r})")
        return self


class LocalCondition(LocalCodeEntry):
    valueset: str = _required()
    laterality: str | None = None
    radicular: bool | None = None

    @field_validator("valueset", mode="before")
    @classmethod
    def _valueset(cls, valueset: Any) -> str:
        return _valueset_id(valueset)

    @property
    def joins(self) -> str:
        return self.valueset

    @field_validator("laterality", mode="before")
    @classmethod
    def _laterality(cls, side: Any) -> Any:
        if side is not None and side not in LATERALITIES:
            raise problem(f"'laterality' must be one of {', '.join(LATERALITIES)} (got {side!r})")
        return side

    @field_validator("radicular", mode="before")
    @classmethod
    def _radicular(cls, radicular: Any) -> Any:
        if radicular is not None and not isinstance(radicular, bool):
            raise problem("'radicular' must be true or false")
        return radicular


class LocalObservation(LocalCodeEntry):
    measure: str | None = None
    valueset: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _measure_or_valueset(cls, item: Any) -> Any:
        if not isinstance(item, dict):
            return item
        measure = item.get("measure")
        if measure is not None and "valueset" in item:
            raise problem("give either 'measure' or 'valueset', not both")
        if measure is None:
            if "valueset" not in item:
                raise problem(f"needs 'measure' ({', '.join(MEASURES)}) or 'valueset'")
            _valueset_id(item["valueset"])
        elif measure not in MEASURES:
            raise problem(f"'measure' must be one of {', '.join(MEASURES)} (got {measure!r})")
        return item

    @property
    def joins(self) -> str:
        return MEASURES_VALUESET if self.measure else _valueset_id(self.valueset)


def _a_list(items: Any, section: str) -> Any:
    if items is not None and not isinstance(items, list):
        raise problem(f"'{section}' must be a list of entries")
    return items


class LocalCodesFile(RuleModel):
    orders: list[LocalOrder] | None = None
    conditions: list[LocalCondition] | None = None
    observations: list[LocalObservation] | None = None

    @model_validator(mode="before")
    @classmethod
    def _sections(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise problem(f"must be a mapping with the sections {', '.join(SECTIONS)}")
        unknown = sorted(str(k) for k in raw if k not in SECTIONS)
        if unknown:
            raise problem(f"unknown section(s) {unknown}; the sections are {', '.join(SECTIONS)}")
        for section in SECTIONS:
            _a_list(raw.get(section), section)
        return raw

    @model_validator(mode="after")
    def _no_repeats(self) -> LocalCodesFile:
        for section in SECTIONS:
            seen: dict[tuple[str, str, str], int] = {}
            for number, entry in enumerate(getattr(self, section) or (), start=1):
                key = (entry.system, entry.code, entry.joins)
                if key in seen:
                    raise problem(f"{section} entry {number}: {entry.system}|{entry.code} repeats "
                                  f"{section} entry {seen[key]}")
                seen[key] = number
        return self


__all__ = ["FIXED_CONTRAST", "MEASURES_VALUESET", "ORDERS_VALUESET", "LocalCodesFile", "LocalCondition", "LocalObservation", "LocalOrder", "SECTIONS"]
