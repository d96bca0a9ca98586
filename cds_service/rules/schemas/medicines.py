"""The schema of the medicine vocabulary (`cds_service/rules/medicines/vocabulary.json`), as pydantic models.

Role in the data flow: shared rule-data schema, start-up only. The vocabulary is rule data
(docs/clinical-specification.md §3.7): ingredients by group, their synonyms and brand names, the
RxNorm ingredient, clinical-drug (SCD) and branded-drug (SBD) codes, and the dose-form rules that
say whether a product is systemic. `load_vocabulary_file` validates the file against these models
(unknown keys are errors: a misspelt key must not silently switch a rule off), checks that every
regular expression compiles and matches its own examples, and raises `VocabularyError` naming the
file and the entry, so a broken file stops the app at start rather than a request.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from cds_service.rules.loader import RuleDataError, RuleModel, check_pattern, load_rule_file, shown

RXNORM_CODE = re.compile(r"^[0-9]{1,8}$")
TTYS = ("SCD", "SBD")


class VocabularyError(RuleDataError):
    """The medicine vocabulary is malformed (raised at start-up, never per request)."""


class _Strict(RuleModel):
    """An entry of the vocabulary is named by its list and index: `not_systemic[0]`."""

    entry_label = "{list}[{i}]"


class Product(_Strict):
    """One RxNorm clinical drug (SCD) or branded drug (SBD): its code, its RxNorm name (which
    carries the dose form) and which of the file's `sources` vouches for the code."""

    rxnorm: str
    tty: Literal["SCD", "SBD"]
    name: str = Field(min_length=3)
    source: str

    @field_validator("rxnorm")
    @classmethod
    def _code(cls, value: str) -> str:
        if not RXNORM_CODE.match(value):
            raise ValueError("an RxNorm code is 1-8 digits")
        return value


class Brands(_Strict):
    us: list[str] = Field(default_factory=list)
    uk: list[str] = Field(default_factory=list)


class Ingredient(_Strict):
    entry_label = "{list}[{i}] ({name})"  # "ingredients[3] (naproxen)"

    name: str = Field(min_length=3)
    group: str
    rxnorm: str | None  # the ingredient (IN) code; null: recognised by name (and ATC) only
    synonyms: list[str] = Field(default_factory=list)
    brands: Brands = Field(default_factory=Brands)
    combination_brands: list[str] = Field(default_factory=list)  # brands of combinations holding it
    products: list[Product] = Field(default_factory=list)

    @field_validator("rxnorm")
    @classmethod
    def _code(cls, value: str | None) -> str | None:
        if value is not None and not RXNORM_CODE.match(value):
            raise ValueError("an RxNorm code is 1-8 digits")
        return value

    def names(self) -> list[str]:
        """Every word or phrase that names this ingredient in a record."""
        return [self.name, *self.synonyms, *self.brands.us, *self.brands.uk, *self.combination_brands]


class Group(_Strict):
    valueset: str  # the value set the group's facts belong to (systemic-corticosteroids, ...)
    label: str


class Pattern(_Strict):
    pattern: str
    examples: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _compiles_and_matches(self) -> Pattern:
        check_pattern(self.pattern, self.examples)
        return self


class DoseForms(_Strict):
    description: str
    not_systemic: list[Pattern] = Field(min_length=1)
    oral_despite: list[Pattern] = Field(default_factory=list)


class NotConservativeCare(Pattern):
    """Remedies that hold an analgesic but treat something else (cough and cold)."""

    description: str
    groups: list[str] = Field(min_length=1)


class Vocabulary(_Strict):
    id: Literal["medicines"]
    title: str
    description: str
    sources: dict[str, str]
    groups: dict[str, Group]
    dose_forms: DoseForms
    not_conservative_care: NotConservativeCare
    ingredients: list[Ingredient] = Field(min_length=1)


def _cross_checks(vocabulary: Vocabulary) -> list[str]:
    """What the models alone cannot say: known groups and sources, one owner per code and name."""
    problems = [f"not_conservative_care: unknown group '{g}'" for g in vocabulary.not_conservative_care.groups
                if g not in vocabulary.groups]
    codes: dict[str, str] = {}
    names: dict[str, str] = {}
    for index, ingredient in enumerate(vocabulary.ingredients):
        where = f"ingredients[{index}] ({ingredient.name})"
        if ingredient.group not in vocabulary.groups:
            problems.append(f"{where}: unknown group '{ingredient.group}'")
        for product in ingredient.products:
            if product.source not in vocabulary.sources:
                problems.append(f"{where}: product {product.rxnorm} names no source of 'sources'")
        own = [ingredient.rxnorm] if ingredient.rxnorm else []
        for code in own + [p.rxnorm for p in ingredient.products]:
            if codes.setdefault(code, ingredient.name) != ingredient.name:
                problems.append(f"{where}: RxNorm code {code} is already {codes[code]}'s")
        for name in ingredient.names():
            key = " ".join(name.lower().split())
            if len(key) < 3:
                problems.append(f"{where}: name '{name}' is too short to match as a word")
            elif names.setdefault(key, ingredient.name) != ingredient.name and name not in ingredient.combination_brands:
                # A combination brand may name two ingredients; a plain name belongs to one.
                problems.append(f"{where}: name '{name}' is already {names[key]}'s")
    return problems


def load_vocabulary_file(path: Path) -> Vocabulary:
    """The vocabulary file, validated (`rules.loader`), then checked across entries."""
    vocabulary = load_rule_file(path, Vocabulary, error=VocabularyError)
    problems = _cross_checks(vocabulary)
    if problems:
        raise VocabularyError(f"{shown(path)}: {problems[0]}")
    return vocabulary


__all__ = ["Ingredient", "Product", "Vocabulary", "VocabularyError", "load_vocabulary_file"]
