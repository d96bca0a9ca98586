"""Value sets as data: the files of cds_service/rules/valuesets/ loaded into O(1) code lookups.

Role in the data flow: loaded once at start-up (`load_valuesets()` is cached); the parser asks
`ValueSets.lookup(system, code)` for every coding it meets on the raw FHIR JSON, so the lookup must
never loop over the entries (clinical-specification.md §10: value sets are data, one file per value set).

Each file is checked against its schema, `cds_service.rules.schemas.valueset.ValueSetFile` (the
keys a value set and its entries may have; a bad file stops the start-up naming the file and the
entry).

Matching: exact codes are keys of a dict keyed by (system, normalised code). ICD-10-CM prefix
entries ("M46.2", "C4") are keys of a second dict; a code is checked against each of its own
prefixes, longest first, so 'M54.16' and 'M5416' cost the same handful of dict reads. Within one
value set the longest matching prefix decides, so an `exclude: true` prefix (C44 inside C00-C96)
removes its sub-tree.

Local codes: a site's own codes (`load_valuesets(local_codes=...)`, from the LOCAL_CODES_FILE
setting, `cds_service.read.local_codes`) join the value set each one names as exact entries
marked `local`, with the value set's attributes (modality/contrast, measure, laterality), so the
readers find them with the same lookup (docs/clinical-specification.md §2.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from cds_service.read.local_codes import SECTION_PURPOSES, LocalCodes
from cds_service.rules import windows
from cds_service.rules.loader import RULES_DIR, RuleDataError, load_rule_file
from cds_service.rules.schemas.valueset import (
    ICD10CM,
    PREFIX_SYSTEMS,
    SYSTEM_ALIASES,
    ValueSetFile,
    normalise_system,
)

VALUESET_DIR = RULES_DIR / "valuesets"


class ValueSetError(RuleDataError):
    """A value-set file is malformed (raised at start-up, never per request)."""


@dataclass(frozen=True)
class ValueSet:
    id: str
    title: str
    purpose: str
    source: str
    group: str | None = None
    kind: str | None = None
    label: str | None = None
    window_days: int | None = None
    evidence_rule: str | None = None
    extra: dict = field(default_factory=dict, compare=False, repr=False)  # the file's other keys

    @property
    def current_sign(self) -> bool:
        return self.evidence_rule == "current-sign"


@dataclass(frozen=True)
class Entry:
    valueset: ValueSet
    system: str
    code: str
    display: str
    match: str  # exact | prefix
    exclude: bool = False
    attrs: dict = field(default_factory=dict, compare=False)  # modality, contrast, laterality, ...
    local: bool = False  # a site's local code (LOCAL_CODES_FILE), not a shipped one

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)


def normalise_code(system: str | None, code: Any) -> str | None:
    if not isinstance(code, str):
        return None
    code = code.strip()
    if system in PREFIX_SYSTEMS:
        code = code.replace(".", "").upper()
    return code or None


class ValueSets:
    """All value sets, indexed for O(1)-per-coding lookup."""

    def __init__(self, valuesets: list[ValueSet], entries: list[Entry]):
        self.by_id: dict[str, ValueSet] = {vs.id: vs for vs in valuesets}
        self.entries_by_id: dict[str, list[Entry]] = {vs.id: [] for vs in valuesets}
        self._exact: dict[tuple[str, str], tuple[Entry, ...]] = {}
        self._prefix: dict[tuple[str, str], tuple[Entry, ...]] = {}
        self._max_prefix: dict[str, int] = {}
        self._cache: dict[tuple[str, str], tuple[Entry, ...]] = {}
        for entry in entries:
            self.entries_by_id[entry.valueset.id].append(entry)
            key = (entry.system, normalise_code(entry.system, entry.code))
            index = self._prefix if entry.match == "prefix" else self._exact
            index[key] = index.get(key, ()) + (entry,)
            if entry.match == "prefix":
                self._max_prefix[entry.system] = max(self._max_prefix.get(entry.system, 0), len(key[1]))

    def __getitem__(self, valueset_id: str) -> ValueSet:
        return self.by_id[valueset_id]

    def of_purpose(self, purpose: str) -> list[ValueSet]:
        return [vs for vs in self.by_id.values() if vs.purpose == purpose]

    # Records repeat the same few codes thousands of times (vital signs, labs): the answer for a
    # raw (system, code) pair is memoised. Bounded, so hostile input cannot grow it without end.
    _CACHE_MAX = 50_000

    def lookup(self, system: Any, code: Any) -> tuple[Entry, ...]:
        """Entries matching one coding (several value sets may hold it); () when none."""
        if not (isinstance(system, str) and isinstance(code, str)):
            return self._lookup(system, code)
        key = (system, code)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= self._CACHE_MAX:
                self._cache.clear()
            found = self._cache[key] = self._lookup(system, code)
        return found

    def _lookup(self, system: Any, code: Any) -> tuple[Entry, ...]:
        system = normalise_system(system)
        code = normalise_code(system, code)
        if system is None or code is None:
            return ()
        found = self._exact.get((system, code), ())
        longest = self._max_prefix.get(system)
        if longest:
            decided: set[str] = {e.valueset.id for e in found}
            for length in range(min(len(code), longest), 0, -1):
                for entry in self._prefix.get((system, code[:length]), ()):
                    if entry.valueset.id in decided:
                        continue  # a longer prefix of this value set already decided
                    decided.add(entry.valueset.id)
                    if not entry.exclude:
                        found = found + (entry,)
        return found

    def measure_windows(self) -> dict[str, int]:
        """The look-back window of each measure: the value sets' own, else the defaults of
        cds_service.rules.windows (the one place for them)."""
        observation = self.by_id["observation-codes"].extra
        fever = self.by_id["infection-fever"].window_days
        return {
            "body-temperature": fever or windows.FEVER_WINDOW_DAYS,
            "body-weight": observation.get("weight_loss_window_days") or windows.WEIGHT_LOSS_WINDOW_DAYS,
            "post-void-residual": ((observation.get("post_void_residual") or {}).get("window_days")
                                   or windows.POST_VOID_RESIDUAL_WINDOW_DAYS),
        }

    def lookup_coding(self, coding: Any) -> tuple[Entry, ...]:
        if not isinstance(coding, dict):
            return ()
        return self.lookup(coding.get("system"), coding.get("code"))


_CORE_KEYS = {"id", "title", "purpose", "source", "entries", "resourceType", "status",
              "group", "kind", "label", "window_days", "evidence_rule"}
_ENTRY_KEYS = {"system", "code", "display", "match", "exclude"}


def _load_file(path: Path) -> tuple[ValueSet, list[Entry]]:
    checked = load_rule_file(path, ValueSetFile, context={"stem": path.stem}, error=ValueSetError)
    raw = checked.model_dump(mode="json", exclude_unset=True)  # plain JSON values, as in the file
    valueset = ValueSet(
        id=raw["id"], title=raw["title"], purpose=raw["purpose"], source=raw["source"],
        group=raw.get("group"), kind=raw.get("kind"), label=raw.get("label"),
        window_days=raw.get("window_days"), evidence_rule=raw.get("evidence_rule"),
        extra={key: value for key, value in raw.items() if key not in _CORE_KEYS},
    )
    entries = [
        Entry(valueset=valueset, system=normalise_system(item.system), code=item.code, display=item.display,
              match=item.match, exclude=item.exclude,
              attrs=item.model_dump(mode="json", exclude_unset=True, exclude=_ENTRY_KEYS))
        for item in checked.entries
    ]
    return valueset, entries


def load_valuesets_from(directory: Path) -> ValueSets:
    valuesets, entries = [], []
    for path in sorted(Path(directory).glob("*.json")):
        valueset, file_entries = _load_file(path)
        valuesets.append(valueset)
        entries.extend(file_entries)
    if not valuesets:
        raise ValueSetError(f"no value-set files in {directory}")
    return ValueSets(valuesets, entries)


@lru_cache(maxsize=1)
def _shipped() -> ValueSets:
    return load_valuesets_from(VALUESET_DIR)


def load_valuesets(local_codes: LocalCodes | None = None) -> ValueSets:
    """The shipped value sets, read once per process (call at start-up); with `local_codes`, a
    new ValueSets that also holds the site's local codes (a bad entry raises LocalCodesError)."""
    if not local_codes:
        return _shipped()
    return with_local_codes(_shipped(), local_codes)


def with_local_codes(base: ValueSets, local_codes: LocalCodes) -> ValueSets:
    """`base` plus every local code, as an exact entry of the value set it names."""
    entries = [entry for items in base.entries_by_id.values() for entry in items]
    for code in local_codes.codes:
        valueset = base.by_id.get(code.valueset)
        if valueset is None:
            raise local_codes.error(code, f"no value set '{code.valueset}' (cds_service/rules/valuesets/)")
        allowed = SECTION_PURPOSES[code.section]
        if valueset.purpose not in allowed:
            raise local_codes.error(code, f"value set '{code.valueset}' ({valueset.purpose}) is not one "
                                          f"{code.section} are read for ({', '.join(sorted(allowed))})")
        system = normalise_system(code.system)
        entries.append(Entry(
            valueset=valueset, system=system, code=code.code, display=code.display,
            match="exact", attrs=dict(code.attrs), local=True,
        ))
    return ValueSets(list(base.by_id.values()), entries)


__all__ = ["ICD10CM", "PREFIX_SYSTEMS", "SYSTEM_ALIASES", "Entry", "ValueSet", "ValueSetError", "ValueSets", "load_valuesets", "load_valuesets_from",
           "with_local_codes"]
