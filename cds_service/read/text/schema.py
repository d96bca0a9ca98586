"""The shape of each kind of free-text rules file (cds_service/rules/text/), as pydantic models that
allow no other key (as medspaCy's TargetRule.from_dict does).

Role in the data flow: rules.load_rules validates every file with these models when the reader is
built (at start-up), and reports the first problem as a RulesError naming the file and the entry.
- <group>.json (`GroupFile`): a fact group's phrases, token patterns and regular expressions;
- durations.json (`DurationsFile`): duration phrases, each with the `kind` the onset parser reads,
  and the parser's tables;
- context.json (`ContextFile`): ConText modifier rules, the category -> assertion map, precedence;
- sections.json (`SectionsFile`): section headers and what a section does to an assertion;
- wordlists.json (`WordListsFile`): word lists shared by several rules, each defined once and
  referenced from a regular expression as `@{name}` (rules.expand_word_lists).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Assertion = Literal["affirmed", "negated", "historical", "hypothetical", "other-person", "uncertain"]
ASSERTIONS: tuple[str, ...] = Assertion.__args__  # type: ignore[attr-defined]
DurationKind = Literal["relative", "relative-day", "since-date", "since-month", "since-year", "since-numeric",
                       "since-iso", "since-weekday", "since-last"]
Direction = Literal["FORWARD", "BACKWARD", "BIDIRECTIONAL", "TERMINATE", "PSEUDO"]
Text = Field(min_length=1)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Described(_Strict):
    description: str = Text
    source: str = Text

    @field_validator("description", "source")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class _Matched(_Strict):
    """A rule's text: a phrase (`literal` alone, matched in lower case), a spaCy token pattern (a
    list of token objects) or a regular expression (matched case-insensitively over the text), whose
    `requires` lists substrings one of which every match contains (scan.py skips it elsewhere)."""

    literal: str = Text
    pattern: str | list[dict] | None = None
    requires: list[str] | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern):
        if isinstance(pattern, str):
            try:
                re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"bad regular expression: {exc}") from exc
        return pattern

    @model_validator(mode="after")
    def _requires_a_regular_expression(self):
        if self.requires is not None and not isinstance(self.pattern, str):
            raise ValueError("'requires' is for a regular expression 'pattern' only")
        if self.requires is not None and not all(len(s) >= 2 for s in self.requires):
            raise ValueError("'requires' strings must have at least 2 characters")
        return self


class GroupEntry(_Matched):
    """`also`: further groups the same match gives; `assertion`: an intrinsic one ('afebrile' is a
    negated fever); `exclude`: a longer phrase that wins over and silences a shorter match."""

    category: str | None = None
    also: list[str] = []
    assertion: Assertion | None = None
    exclude: bool = False


class GroupFile(_Described):
    group: str = Text
    triggers: list[str] = []
    trigger_patterns: list[str] = []
    entries: list[GroupEntry] = Field(min_length=1)

    @field_validator("trigger_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from exc
        return patterns


class DurationEntry(_Matched):
    category: Literal["duration"] = "duration"
    kind: DurationKind


class DurationsFile(_Described):
    numbers: dict[str, int | float]
    vague_count: int | float
    relative_days: dict[str, int]
    anchors: list[str]
    anchor_groups: list[str]
    not_anchoring_groups: list[str]
    entries: list[DurationEntry] = Field(min_length=1)


class ContextRuleEntry(_Matched):
    """A medspaCy ConTextRule; `allowed_types` / `excluded_types` may name a type set ('@care')."""

    category: str = Text
    direction: Direction
    allowed_types: list[str] | None = None
    excluded_types: list[str] | None = None
    max_scope: int | None = Field(default=None, gt=0)
    max_targets: int | None = Field(default=None, gt=0)
    terminated_by: list[str] | None = None


class ContextFile(_Described):
    assertions: dict[str, Assertion]
    precedence: list[Assertion]
    cancels: dict[str, list[Assertion]] = {}
    question_answers: dict[Assertion, list[str]] = {}
    type_sets: dict[str, list[str]] = {}
    context_rules: list[ContextRuleEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _complete(self):
        if set(self.precedence) | {"affirmed"} != set(ASSERTIONS):
            raise ValueError("'precedence' must list every assertion but 'affirmed'")
        for rule in self.context_rules:
            for name in (rule.allowed_types or []) + (rule.excluded_types or []):
                if name.startswith("@") and name not in self.type_sets:
                    raise ValueError(f"{rule.literal!r}: unknown type set {name}")
        return self


class SectionRuleEntry(_Matched):
    category: str = Text


class SectionEffect(_Strict):
    """What a section does to the assertion of a match in its body: `assertion` replaces any of
    `replaces`, for the `groups` given (all when empty), unless a modifier `unless_modifier` applies."""

    assertion: Assertion
    replaces: list[Assertion]
    groups: list[str] = []
    unless_modifier: str | None = None


class SectionsFile(_Described):
    effects: dict[str, SectionEffect]
    stop_at_blank_line: bool = True
    section_rules: list[SectionRuleEntry] = Field(min_length=1)


class WordListsFile(_Described):
    lists: dict[str, list[str]]

    @field_validator("lists")
    @classmethod
    def _names(cls, lists: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, words in lists.items():
            if not re.fullmatch(r"[a-z][a-z0-9-]*", name) or not words:
                raise ValueError(f"word list {name!r}: a lower-case name and at least one word")
        return lists
