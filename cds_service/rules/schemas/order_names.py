"""The schema of the order-name rules (cds_service/rules/orders/order-names.json).

Role in the data flow: shared utility, start-up only. `read/order_names.py` loads the file with
`load_rule_file(path, OrderNamesFile)` and compiles the rules (docs/clinical-specification.md §2.2 (c)).

The file has four lists of rules, `modality`, `lumbar`, `not_lumbar` and `contrast`; each rule is a
regular expression with a `description` and the `examples` it must match. `words` holds the word
lists several patterns share (the spellings of "without" and "with" in order names), defined once:
a pattern names one as `{without}`, and it is replaced by the word list before the pattern is
compiled (an unknown name is an error, never a literal brace).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, StringConstraints, field_validator, model_validator

from cds_service.rules.loader import RuleModel, problem
from cds_service.vocabulary import Contrast, Modality

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
WORD_NAME = re.compile(r"\{([a-z][a-z0-9_-]*)\}")
SECTIONS = ("modality", "lumbar", "not_lumbar", "contrast")


class RegionRule(RuleModel):
    """A `lumbar` or `not_lumbar` rule: the pattern names the region (or another one)."""

    entry_label = "{list} rule {n}"
    pattern: str
    description: Text
    examples: list[str] = []

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        unknown = WORD_NAME.findall(pattern)
        if unknown:
            raise problem(f"'pattern' names unknown word list(s) {sorted(set(unknown))} (see 'words')")
        try:
            re.compile(pattern, re.IGNORECASE)
        except re.error as error:
            raise problem(f"'pattern' is not a regular expression ({error})") from None
        return pattern


class ModalityRule(RegionRule):
    modality: Modality
    weak: bool = False  # counts only when no other modality is named ("2-3 VIEWS")
    absorbs: list[Modality] = []  # modalities that are part of this one (the CT of a CT myelogram)


class ContrastRule(RegionRule):
    contrast: Contrast


class OrderNamesFile(RuleModel):
    id: Text
    title: Text
    source: Text
    description: Text
    words: dict[str, Text] = {}
    modality: Annotated[list[ModalityRule], Field(min_length=1)]
    lumbar: Annotated[list[RegionRule], Field(min_length=1)]
    not_lumbar: Annotated[list[RegionRule], Field(min_length=1)]
    contrast: Annotated[list[ContrastRule], Field(min_length=1)]

    @model_validator(mode="before")
    @classmethod
    def _with_words(cls, data: Any) -> Any:
        """Every `{name}` of a pattern replaced by the word list `words[name]`."""
        if not isinstance(data, dict) or not isinstance(data.get("words", {}), dict):
            return data
        words = data.get("words", {})

        def expand(pattern: Any) -> Any:
            if not isinstance(pattern, str):
                return pattern
            return WORD_NAME.sub(lambda m: words.get(m.group(1), m.group(0)), pattern)

        expanded = dict(data)
        for section in SECTIONS:
            if isinstance(data.get(section), list):
                expanded[section] = [
                    {**rule, "pattern": expand(rule.get("pattern"))} if isinstance(rule, dict) else rule
                    for rule in data[section]
                ]
        return expanded


__all__ = ["ContrastRule", "ModalityRule", "OrderNamesFile", "RegionRule", "SECTIONS"]
