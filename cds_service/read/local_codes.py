"""The site's local codes (the `LOCAL_CODES_FILE` setting): one YAML file mapping an EHR's own
order, condition and observation codes onto the project's value sets.

Role in the data flow: read stage, start-up only. `load_local_codes(path)` reads and checks the
file once, when the Evaluator is built, against its schema (`cds_service.rules.schemas.local_codes`,
which also shows the file's shape); `cds_service.read.valuesets.load_valuesets(local_codes=...)`
then adds every entry to the value set it names, so the record readers look local codes up exactly
as they look up CPT, LOINC, SNOMED CT or ICD-10-CM codes (docs/clinical-specification.md §2.2).
A malformed file stops the start-up with a `LocalCodesError` naming the file, the entry and the
problem; nothing is ever checked per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cds_service.rules.loader import RuleDataError, read_rule_file, shown, validate_rule_data
from cds_service.rules.schemas.local_codes import (
    FIXED_CONTRAST,
    SECTIONS,
    LocalCodesFile,
    LocalCondition,
    LocalObservation,
    LocalOrder,
)
from cds_service.vocabulary import Contrast


class LocalCodesError(RuleDataError):
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
    raw = read_rule_file(path, LocalCodesError)
    if raw is None:  # an empty file (or only comments): no local codes
        return LocalCodes(name)
    checked = validate_rule_data(raw, LocalCodesFile, shown(path), error=LocalCodesError)
    codes = [
        LocalCode(section=section, number=number, system=entry.system, code=entry.code,
                  display=entry.display or entry.code, valueset=entry.joins, attrs=_attributes(entry))
        for section in SECTIONS
        for number, entry in enumerate(getattr(checked, section) or (), start=1)
    ]
    return LocalCodes(name, tuple(codes))


def _attributes(entry: LocalOrder | LocalCondition | LocalObservation) -> tuple[tuple[str, Any], ...]:
    """The value set's attributes the code carries (modality/contrast, laterality, measure)."""
    if isinstance(entry, LocalOrder):
        contrast = entry.contrast or FIXED_CONTRAST.get(entry.modality) or Contrast.UNSPECIFIED
        return (("modality", entry.modality), ("contrast", contrast))
    if isinstance(entry, LocalCondition):
        return tuple((key, value) for key, value in (("laterality", entry.laterality),
                                                     ("radicular", entry.radicular)) if value is not None)
    return (("measure", entry.measure),) if entry.measure else ()


# The value-set purposes a local code of each section may join: the ones its record family is read for.
SECTION_PURPOSES = {
    "orders": frozenset({"imaging-order"}),
    "conditions": frozenset({"qualifying-episode", "red-flag", "spinal-surgery"}),
    "observations": frozenset({"observation", "red-flag", "negative-finding"}),
}


__all__ = ["LocalCode", "LocalCodes", "LocalCodesError", "load_local_codes"]
