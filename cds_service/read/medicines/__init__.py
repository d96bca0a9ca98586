"""Recognise the medicines the pathway reads, by code and then by name, and say whether a product
is systemic (docs/clinical-specification.md §3.7).

Role in the data flow: read stage. `read/medications.py` hands this module the codings and the
texts of one medication record (its CodeableConcept, a contained or referenced Medication, a
reference's display, the dosage route and text); this module answers which ingredients of the
vocabulary (`cds_service/rules/medicines/vocabulary.json`, rule data with the schema in `rules/schemas/medicines.py`) the record holds, how
each was recognised, and whether the product is systemic. Pure text and dict work: no I/O after
start-up, where the vocabulary is read, validated and compiled once (`load_vocabulary`).

Recognition, in order:
1. by code: an RxNorm coding whose code is an ingredient (IN), clinical drug (SCD) or branded
   drug (SBD) of the vocabulary (ATC codes and ingredient codes are also in the value sets, which
   `read/medications.py` asks first);
2. by name, only when no code matched: an ingredient, synonym or brand as a whole word,
   case-insensitive, in any of the texts. A salt ('naproxen sodium') or a combination
   ('hydrocodone-acetaminophen', 'Percocet') holds the ingredient's word, so it is recognised.
The dose form: a text naming an inhaled, nasal, topical, eye, ear or mouth form makes the record
not systemic (for a product recognised by its code, the RxNorm name of the product counts too).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cds_service.rules import RULES_DIR
from cds_service.rules.schemas.medicines import (
    Ingredient,
    Product,
    Vocabulary,
    VocabularyError,
    load_vocabulary_file,
)

VOCABULARY_FILE = RULES_DIR / "medicines" / "vocabulary.json"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
RXNORM_ALIASES = frozenset({RXNORM, "urn:oid:2.16.840.1.113883.6.88"})
# Medicine names are short; a longer text is cut before any pattern sees it (bounded work).
MAX_TEXT_CHARS = 400
# The names found in a text, remembered for this many texts: a record repeats its medicines'
# names (refills), and so does each call for a patient; the name pattern (every name of the
# vocabulary, one alternation) was most of reading a medication record.
NAMED_TEXTS = 4096  # of at most MAX_TEXT_CHARS: under 2 MB


@dataclass(frozen=True)
class MedicineMatch:
    """One ingredient found in a record, and how: by `code` (the record's `coding` is cited,
    `product` is the SCD/SBD when the code was one) or by `name` (the `word` found)."""

    ingredient: Ingredient
    group: str
    valueset: str
    recognised_by: str  # "code" | "name"
    coding: dict | None = None
    product: Product | None = None
    word: str | None = None


def _is_rxnorm(system: object) -> bool:
    return isinstance(system, str) and system.strip().rstrip("/") in RXNORM_ALIASES


class MedicineVocabulary:
    """The compiled vocabulary: code lookups, one whole-word name pattern, the dose-form rules."""

    def __init__(self, vocabulary: Vocabulary):
        self.vocabulary = vocabulary
        self._by_code: dict[str, tuple[Ingredient, Product | None]] = {}
        by_name: dict[str, Ingredient] = {}
        for ingredient in vocabulary.ingredients:
            if ingredient.rxnorm:
                self._by_code[ingredient.rxnorm] = (ingredient, None)
            for product in ingredient.products:
                self._by_code[product.rxnorm] = (ingredient, product)
            for name in ingredient.names():
                by_name.setdefault(" ".join(name.lower().split()), ingredient)
        self._by_name = by_name
        # Longest first, so 'solu-medrol' wins over 'medrol'; \b on both sides: whole words only
        # ('prednisolone' is not found inside 'methylprednisolone', nor 'cortisone' in 'hydrocortisone').
        alternatives = sorted(by_name, key=len, reverse=True)
        self._names = re.compile(
            r"\b(" + "|".join(re.escape(n).replace(r"\ ", r"\s+") for n in alternatives) + r")\b", re.IGNORECASE)
        forms = vocabulary.dose_forms
        self._local = re.compile("|".join(f"(?:{p.pattern})" for p in forms.not_systemic), re.IGNORECASE)
        remedies = vocabulary.not_conservative_care
        self._remedy, self._remedy_groups = re.compile(remedies.pattern, re.IGNORECASE), frozenset(remedies.groups)
        self._oral_despite = (re.compile("|".join(f"(?:{p.pattern})" for p in forms.oral_despite), re.IGNORECASE)
                              if forms.oral_despite else None)
        # A record repeats its medicines' texts, and the EHR its calls: each text's names are
        # found once per process (the least recently used of NAMED_TEXTS texts forgotten first).
        self._names_of = lru_cache(maxsize=NAMED_TEXTS)(self._find_names)

    @property
    def ingredients(self) -> list[Ingredient]:
        return list(self.vocabulary.ingredients)

    def _match(self, ingredient: Ingredient, by: str, **where) -> MedicineMatch:
        group = self.vocabulary.groups[ingredient.group]
        return MedicineMatch(ingredient, ingredient.group, group.valueset, by, **where)

    def by_code(self, codings: Iterable[dict]) -> list[MedicineMatch]:
        """The ingredients whose RxNorm IN, SCD or SBD code one of the codings carries."""
        found = []
        for coding in codings:
            if not isinstance(coding, dict) or not _is_rxnorm(coding.get("system")):
                continue
            code = coding.get("code")
            hit = self._by_code.get(code.strip()) if isinstance(code, str) else None
            if hit is not None:
                found.append(self._match(hit[0], "code", coding=coding, product=hit[1]))
        return found

    def by_name(self, texts: Iterable[str]) -> list[MedicineMatch]:
        """The ingredients named (ingredient, synonym or brand, whole words) in the texts, once each."""
        found: dict[str, MedicineMatch] = {}
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                continue
            for ingredient, word in self._names_of(text[:MAX_TEXT_CHARS]):
                if ingredient.name not in found:
                    found[ingredient.name] = self._match(ingredient, "name", word=word)
        return list(found.values())

    def _find_names(self, text: str) -> tuple[tuple[Ingredient, str], ...]:
        """(ingredient, word as written) of each name in `text`, in order (`_names_of` remembers)."""
        return tuple((self._by_name[" ".join(m.group(1).lower().split())], m.group(1))
                     for m in self._names.finditer(text))

    def recognise(self, codings: Iterable[dict], texts: Iterable[str]) -> list[MedicineMatch]:
        """By code first; by name only when no code of the record is in the vocabulary. A cough
        and cold remedy's analgesic is left out (`not_conservative_care`)."""
        texts = [t for t in texts if isinstance(t, str)]
        found = self.by_code(list(codings)) or self.by_name(texts)
        if any(self._remedy.search(t[:MAX_TEXT_CHARS]) for t in texts):
            found = [m for m in found if m.group not in self._remedy_groups]
        return found

    def systemic(self, texts: Iterable[str]) -> bool:
        """False when a text names a form that is not systemic (inhaled, nasal, topical, eye,
        ear, mouth); True otherwise: tablets, capsules, injections, oral liquids, or no form."""
        for text in texts:
            if not isinstance(text, str) or not text:
                continue
            text = text[:MAX_TEXT_CHARS]
            if self._oral_despite is not None:
                text = self._oral_despite.sub(" ", text)
            if self._local.search(text):
                return False
        return True


@lru_cache(maxsize=1)
def load_vocabulary(path: Path = VOCABULARY_FILE) -> MedicineVocabulary:
    """The vocabulary, read, validated and compiled once per process (call at start-up)."""
    return MedicineVocabulary(load_vocabulary_file(path))


__all__ = ["MedicineMatch", "MedicineVocabulary", "VocabularyError", "load_vocabulary"]
