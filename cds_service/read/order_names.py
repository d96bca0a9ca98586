"""Recognise a lumbar spine imaging order by its name, as order catalogues abbreviate it
("MRI LUMBAR SPINE WO CONTRAST", "MR L-SPINE W/WO", "XR LUMBAR SPINE 2-3 VIEWS", "CT MYELOGRAM LUMBAR").

Role in the data flow: read stage, the last resort of `read/orders.py`: used only when none of a
draft order's codes is in a value set (docs/clinical-specification.md §2.2 (c)). The rules are data,
`cds_service/rules/orders/order-names.json` (regular expressions, each with a description and the
examples it must match); they are checked and compiled once, when this module is imported at
start-up, so a broken rule stops the app rather than a request. Matching is pure text work: no I/O.

How a name is read (the file's `description` says the same):
1. every name of the order (code.text, then each coding.display) is lower-cased, blanks collapsed;
2. a `not_lumbar` rule matching any name means the order is not lumbar spine imaging (another body
   region such as the cervical spine, the sacroiliac joints or the pelvis, or a procedure such as
   a guided injection or a bone density scan);
3. a name is a lumbar study when a `lumbar` rule and exactly one modality match. Weak modality rules
   (such as "2-3 VIEWS") count only when no other modality is named; a rule's `absorbs` modalities
   belong to it (the CT of a "CT MYELOGRAM" is part of the myelography). Two modalities ("XR AND
   MRI") are ambiguous: not recognised. The first name that is a lumbar study decides;
4. contrast is read for CT and MRI only (X-ray is always without, CT myelography always with): an
   `unspecified` rule wins ("with or without"), then `without-with`, then a `with` and a
   `without` rule both matching make `without-with`; no rule: unspecified.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cds_service.rules.loader import RULES_DIR, RuleDataError, load_rule_file
from cds_service.rules.schemas.order_names import SECTIONS, OrderNamesFile
from cds_service.vocabulary import Contrast, Modality

RULES_FILE = RULES_DIR / "orders" / "order-names.json"
# the order in which contrast rules decide
CONTRASTS = (Contrast.UNSPECIFIED, Contrast.WITHOUT_WITH, Contrast.WITH, Contrast.WITHOUT)
FIXED_CONTRAST = {Modality.XR: Contrast.WITHOUT, Modality.CT_MYELOGRAPHY: Contrast.WITH}
# Order names are short; a longer text is cut before any pattern sees it (bounded work per order).
MAX_NAME_CHARS = 300


class OrderNameRulesError(RuleDataError):
    """The order-names rules file is malformed (raised at start-up, never per request)."""


@dataclass(frozen=True)
class NameRule:
    section: str  # modality | lumbar | not_lumbar | contrast
    pattern: re.Pattern
    description: str
    value: str | None = None  # the modality or contrast the rule gives
    weak: bool = False
    absorbs: frozenset[str] = frozenset()
    examples: tuple[str, ...] = ()

    def matches(self, name: str) -> bool:
        return self.pattern.search(name) is not None


@dataclass(frozen=True)
class NameMatch:
    """A lumbar spine imaging study read from an order's name."""

    modality: str
    contrast: str
    name: str  # the order's own name, as sent


def normalise(name: str) -> str:
    return " ".join(name[:MAX_NAME_CHARS].lower().replace("_", " ").split())


class OrderNameRules:
    """The compiled rules of one rules file."""

    def __init__(self, rules: list[NameRule]):
        self.rules = tuple(rules)
        self.by_section = {s: tuple(r for r in rules if r.section == s) for s in SECTIONS}

    def excluded(self, name: str) -> NameRule | None:
        text = normalise(name)
        return next((r for r in self.by_section["not_lumbar"] if r.matches(text)), None)

    def read(self, name: str) -> NameMatch | None:
        """One name -> the lumbar study it names, or None (not lumbar, or not clearly one study)."""
        if not isinstance(name, str):
            return None
        text = normalise(name)
        if not text or self.excluded(text) or not any(r.matches(text) for r in self.by_section["lumbar"]):
            return None
        modality = self._modality(text)
        if modality is None:
            return None
        contrast = FIXED_CONTRAST.get(modality) or self._contrast(text)
        return NameMatch(modality=modality, contrast=contrast, name=name)

    def recognise(self, names: Iterable[Any]) -> NameMatch | None:
        """The order's names (code.text first, then each coding.display) -> the study, or None."""
        texts = [n for n in names if isinstance(n, str) and n.strip()]
        if any(self.excluded(n) for n in texts):
            return None
        for name in texts:
            found = self.read(name)
            if found is not None:
                return found
        return None

    def _modality(self, text: str) -> str | None:
        strong = [r for r in self.by_section["modality"] if not r.weak and r.matches(text)]
        found = {r.value for r in strong}
        for rule in strong:
            found -= rule.absorbs
        if not found:
            found = {r.value for r in self.by_section["modality"] if r.weak and r.matches(text)}
        return found.pop() if len(found) == 1 else None

    def _contrast(self, text: str) -> str:
        found = {r.value for r in self.by_section["contrast"] if r.matches(text)}
        if Contrast.WITH in found and Contrast.WITHOUT in found:
            found.add(Contrast.WITHOUT_WITH)
        return next((c for c in CONTRASTS if c in found), Contrast.UNSPECIFIED)


def load_order_name_rules(path: Path = RULES_FILE) -> OrderNameRules:
    """Read and check the rules file (schema: cds_service.rules.schemas.order_names), then compile it."""
    checked = load_rule_file(path, OrderNamesFile, error=OrderNameRulesError)
    rules = []
    for section in SECTIONS:
        for raw in getattr(checked, section):
            value = getattr(raw, section, None) if section in ("modality", "contrast") else None
            rules.append(NameRule(
                section=section, pattern=re.compile(raw.pattern, re.IGNORECASE), description=raw.description,
                value=value, weak=getattr(raw, "weak", False), absorbs=frozenset(getattr(raw, "absorbs", ())),
                examples=tuple(raw.examples),
            ))
    return OrderNameRules(rules)


@lru_cache(maxsize=1)
def order_name_rules() -> OrderNameRules:
    """The shipped rules, compiled once per process."""
    return load_order_name_rules()


def recognise_order_name(names: Iterable[Any]) -> NameMatch | None:
    return order_name_rules().recognise(names)


order_name_rules()  # compiled at import, i.e. at start-up: a broken rule stops the app

__all__ = ["NameMatch", "OrderNameRules", "OrderNameRulesError", "load_order_name_rules",
           "order_name_rules", "recognise_order_name"]
