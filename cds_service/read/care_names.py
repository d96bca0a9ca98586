"""Recognise a referral, order or visit for conservative care by its name, as imaging orders are
recognised by theirs (`read/order_names.py`): "Ambulatory referral to Physical Therapy" with only a
site's own procedure code is physical therapy (docs/clinical-specification.md §5.8).

Role in the data flow: read stage, the last resort of `read/management.py`: used only when none of
a ServiceRequest's or Encounter's codes is in a management value set. The rules are data,
`cds_service/rules/orders/care-names.json`, validated with pydantic (unknown keys are errors) and
compiled once when this module is imported at start-up; each rule's examples must match and its
counter-examples must not, so a broken rule stops the app rather than a request. Pure text work.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator

from cds_service.rules import RULES_DIR, RuleDataError
from cds_service.rules.loader import RuleModel, check_pattern, load_rule_file

RULES_FILE = RULES_DIR / "orders" / "care-names.json"
# Names are short; a longer text is cut before any pattern sees it (bounded work per record).
MAX_NAME_CHARS = 300


class CareNamesError(RuleDataError):
    """care-names.json is malformed (raised at start-up, never per request)."""


class CareRule(RuleModel):
    entry_label = "{list}[{i}]"

    valueset: str = Field(pattern=r"^management-[a-z-]+$")
    pattern: str
    examples: list[str] = Field(min_length=1)
    counter_examples: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _compiles_and_matches(self) -> CareRule:
        check_pattern(self.pattern, self.examples, self.counter_examples)
        return self


class CareNames(RuleModel):
    id: str
    title: str
    source: str = Field(min_length=10)
    description: str
    rules: list[CareRule] = Field(min_length=1)


class CareNameRules:
    """The compiled rules: `kind_of(names)` is the value set id of the first rule a name matches."""

    def __init__(self, rules: CareNames):
        self.rules = [(rule.valueset, re.compile(rule.pattern, re.IGNORECASE)) for rule in rules.rules]

    def valueset_of(self, names: Iterable[str]) -> str | None:
        texts = [" ".join(n[:MAX_NAME_CHARS].split()) for n in names if isinstance(n, str) and n.strip()]
        for valueset, pattern in self.rules:
            if any(pattern.search(text) for text in texts):
                return valueset
        return None


def load_care_names_file(path: Path) -> CareNameRules:
    return CareNameRules(load_rule_file(path, CareNames, error=CareNamesError))


@lru_cache(maxsize=1)
def load_care_names() -> CareNameRules:
    return load_care_names_file(RULES_FILE)


__all__ = ["CareNameRules", "CareNamesError", "load_care_names", "load_care_names_file"]
