"""The site's local codes (the `LOCAL_CODES_FILE` setting): one YAML file mapping an EHR's own
order, condition and observation codes onto the project's value sets.

Role in the data flow: read stage, start-up only. `load_local_codes(path)` reads and checks the
file once, when the Evaluator is built; `cds_service.read.valuesets.load_valuesets(local_codes=...)`
then adds every entry to the value set it names, so the record readers look local codes up exactly
as they look up CPT, LOINC, SNOMED CT or ICD-10-CM codes (docs/clinical-specification.md §2.2).
A malformed file stops the start-up with a `LocalCodesError` naming the file, the entry and the
problem; nothing is ever checked per request.

The file (every section optional):

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
`12345` as a number and `012345` as an octal one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cds_service.vocabulary import Contrast, Modality

ORDERS_VALUESET = "lumbar-imaging-orders"
MEASURES_VALUESET = "observation-codes"
MODALITIES = {"xr": Modality.XR, "ct": Modality.CT, "ct-myelography": Modality.CT_MYELOGRAPHY, "mri": Modality.MRI, "mr": Modality.MRI}
CONTRASTS = (Contrast.WITHOUT, Contrast.WITH, Contrast.WITHOUT_WITH, Contrast.UNSPECIFIED)
# The contrast a modality always has (clinical-specification.md §2.2 table).
FIXED_CONTRAST = {Modality.XR: Contrast.WITHOUT, Modality.CT_MYELOGRAPHY: Contrast.WITH}
MEASURES = ("post-void-residual", "body-temperature", "body-weight")
LATERALITIES = ("left", "right", "bilateral")

# The keys each section's entries may carry (anything else is a typo worth stopping for).
_KEYS = {
    "orders": {"system", "code", "display", "modality", "contrast"},
    "conditions": {"system", "code", "display", "valueset", "laterality", "radicular"},
    "observations": {"system", "code", "display", "measure", "valueset"},
}
SECTIONS = tuple(_KEYS)


class LocalCodesError(ValueError):
    """The local codes file is unusable: the app refuses to start (never raised per request)."""


@dataclass(frozen=True)
class LocalCode:
    """One local code and the value set it joins, with that value set's attributes."""

    section: str  # orders | conditions | observations
    number: int  # the entry's number within its section, from 1 (what error messages name)
    system: str
    code: str
    display: str
    valueset: str  # the id of the value set the code joins
    attrs: tuple[tuple[str, Any], ...] = ()  # modality/contrast, measure, laterality, radicular

    @property
    def where(self) -> str:
        return f"{self.section} entry {self.number}"


@dataclass(frozen=True)
class LocalCodes:
    path: str
    codes: tuple[LocalCode, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.codes)

    def of(self, section: str) -> tuple[LocalCode, ...]:
        return tuple(c for c in self.codes if c.section == section)

    def error(self, code: LocalCode, problem: str) -> LocalCodesError:
        return LocalCodesError(f"{self.path}: {code.where} ({code.system}|{code.code}): {problem}")


def load_local_codes(path: str | Path) -> LocalCodes:
    """Read and check the site's local codes file (at start-up)."""
    name = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise LocalCodesError(f"{name}: cannot be read ({error.strerror or error})") from None
    except yaml.YAMLError as error:
        raise LocalCodesError(f"{name}: not valid YAML ({error})") from None
    if raw is None:
        return LocalCodes(name)
    if not isinstance(raw, dict):
        raise LocalCodesError(f"{name}: must be a mapping with the sections {', '.join(SECTIONS)}")
    unknown = sorted(str(k) for k in raw if k not in _KEYS)
    if unknown:
        raise LocalCodesError(f"{name}: unknown section(s) {unknown}; the sections are {', '.join(SECTIONS)}")
    codes: list[LocalCode] = []
    seen: dict[tuple[str, str, str, str], str] = {}
    for section in SECTIONS:
        items = raw.get(section)
        if items is None:
            continue
        if not isinstance(items, list):
            raise LocalCodesError(f"{name}: '{section}' must be a list of entries")
        for number, item in enumerate(items, start=1):
            where = f"{name}: {section} entry {number}"
            code = _parse_entry(section, number, item, where)
            key = (section, code.system, code.code, code.valueset)
            if key in seen:
                raise LocalCodesError(f"{where}: {code.system}|{code.code} repeats {seen[key]}")
            seen[key] = code.where
            codes.append(code)
    return LocalCodes(name, tuple(codes))


def _parse_entry(section: str, number: int, item: Any, where: str) -> LocalCode:
    if not isinstance(item, dict):
        raise LocalCodesError(f"{where}: must be a mapping such as {{system: ..., code: ...}}")
    unknown = sorted(str(k) for k in item if k not in _KEYS[section])
    if unknown:
        raise LocalCodesError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_KEYS[section])}")
    system, code = item.get("system"), item.get("code")
    if not isinstance(system, str) or not system.strip():
        raise LocalCodesError(f"{where}: 'system' must be a non-empty string (the code system URI or OID)")
    if isinstance(code, (int, float)) and not isinstance(code, bool):
        raise LocalCodesError(f"{where}: 'code' {code!r} must be quoted (YAML read it as a number)")
    if not isinstance(code, str) or not code.strip():
        raise LocalCodesError(f"{where}: 'code' must be a non-empty string")
    display = item.get("display", code)
    if not isinstance(display, str) or not display.strip():
        raise LocalCodesError(f"{where}: 'display' must be a non-empty string")
    valueset, attrs = _PARSERS[section](item, where)
    return LocalCode(
        section=section, number=number, system=system.strip(), code=code.strip(),
        display=display.strip(), valueset=valueset, attrs=attrs,
    )


def _order(item: dict, where: str) -> tuple[str, tuple[tuple[str, Any], ...]]:
    raw = item.get("modality")
    modality = MODALITIES.get(raw.strip().lower()) if isinstance(raw, str) else None
    if modality is None:
        raise LocalCodesError(f"{where}: 'modality' must be one of XR, CT, CT-myelography, MRI (got {raw!r})")
    contrast = item.get("contrast")
    fixed = FIXED_CONTRAST.get(modality)
    if contrast is None:
        contrast = fixed or Contrast.UNSPECIFIED
    elif contrast not in CONTRASTS:
        raise LocalCodesError(f"{where}: 'contrast' must be one of {', '.join(CONTRASTS)} (got {contrast!r})")
    elif fixed and contrast != fixed:
        raise LocalCodesError(f"{where}: {modality} is always contrast '{fixed}' (got {contrast!r})")
    return ORDERS_VALUESET, (("modality", modality), ("contrast", contrast))


def _condition(item: dict, where: str) -> tuple[str, tuple[tuple[str, Any], ...]]:
    valueset = _valueset_id(item, where)
    attrs: list[tuple[str, Any]] = []
    side = item.get("laterality")
    if side is not None:
        if side not in LATERALITIES:
            raise LocalCodesError(f"{where}: 'laterality' must be one of {', '.join(LATERALITIES)} (got {side!r})")
        attrs.append(("laterality", side))
    radicular = item.get("radicular")
    if radicular is not None:
        if not isinstance(radicular, bool):
            raise LocalCodesError(f"{where}: 'radicular' must be true or false")
        attrs.append(("radicular", radicular))
    return valueset, tuple(attrs)


def _observation(item: dict, where: str) -> tuple[str, tuple[tuple[str, Any], ...]]:
    measure = item.get("measure")
    if measure is not None and "valueset" in item:
        raise LocalCodesError(f"{where}: give either 'measure' or 'valueset', not both")
    if measure is None:
        if "valueset" not in item:
            raise LocalCodesError(f"{where}: needs 'measure' ({', '.join(MEASURES)}) or 'valueset'")
        return _valueset_id(item, where), ()
    if measure not in MEASURES:
        raise LocalCodesError(f"{where}: 'measure' must be one of {', '.join(MEASURES)} (got {measure!r})")
    return MEASURES_VALUESET, (("measure", measure),)


def _valueset_id(item: dict, where: str) -> str:
    valueset = item.get("valueset")
    if not isinstance(valueset, str) or not valueset.strip():
        raise LocalCodesError(f"{where}: 'valueset' must name a value set (a file in cds_service/rules/valuesets/)")
    return valueset.strip()


_PARSERS = {"orders": _order, "conditions": _condition, "observations": _observation}

# The value-set purposes a local code of each section may join: the ones its record family is read for.
SECTION_PURPOSES = {
    "orders": frozenset({"imaging-order"}),
    "conditions": frozenset({"qualifying-episode", "red-flag", "spinal-surgery"}),
    "observations": frozenset({"observation", "red-flag", "negative-finding"}),
}


__all__ = ["LocalCode", "LocalCodes", "LocalCodesError", "load_local_codes"]
