"""The reader's own spaCy components for target phrases and section headers (registered with
`Language.factory`, as medspaCy's components are): 'lumbar_text_targets' and 'lumbar_text_sections'.

Role in the data flow: steps of the free-text reader's pipeline (read stage, nlp.build_pipeline).
- 'lumbar_text_targets' puts the matches of the group rules (rules/text/<group>.json) or of the
  duration rules (durations.json) in a span group, each span labelled with its group and carrying
  its rule (`span._.lumbar_rule`, a `MatchRule`); a case-sensitive rule ('CES', 'PT', 'HIV')
  whose spelling differs ('pt' is the patient) is dropped after the longest match won, before
  ConText sees it. The rules are added with `add`, as medspaCy's TargetMatcher's are.
- 'lumbar_text_sections' finds section headers (sections.json) and puts medspaCy `Section`s in
  `doc._.lumbar_sections` (a section runs from its header to the next one); the reader applies the
  section effects itself, so no token or span attribute is set.
"""

from __future__ import annotations

from dataclasses import dataclass

from spacy.language import Language
from spacy.tokens import Doc, Span

from .matching import RuleMatcher
from .scan import Restriction
from .spans import RULE_EXTENSION, SECTIONS_EXTENSION

if not Span.has_extension(RULE_EXTENSION):
    Span.set_extension(RULE_EXTENSION, default=None)
if not Doc.has_extension(SECTIONS_EXTENSION):
    Doc.set_extension(SECTIONS_EXTENSION, default=())


@dataclass(frozen=True)
class MatchRule:
    """One matcher rule made from a rules entry (rules.TargetSpec): a phrase (`pattern` None), a
    spaCy token pattern or a regular expression; `exact`: the spellings a case-sensitive phrase
    match must have (spaces removed)."""

    literal: str
    category: str
    pattern: str | list | None
    spec: object
    exact: frozenset[str] | None = None


@Language.factory("lumbar_text_targets", default_config={"span_group": "lumbar_text_targets", "restrict": None})
def make_targets(nlp, name: str, span_group: str, restrict: dict | None):
    """`restrict`: {"groups": [...], "anchors": [...]} (scan.Restriction) or None."""
    restriction = None
    if restrict:
        restriction = Restriction(tuple(restrict.get("groups", ())),
                                  frozenset(a.casefold() for a in restrict.get("anchors", ())))
    return TargetStep(nlp, span_group, restriction)


class TargetStep:
    def __init__(self, nlp, span_group: str, restriction: Restriction | None = None):
        self.span_group = span_group
        self.matcher = RuleMatcher(nlp, restrict=restriction)

    def add(self, rules, requires=None) -> None:
        """`requires`: regular expression -> its required substrings (the rules' `requires`)."""
        self.matcher.add(rules, requires=requires)

    def __call__(self, doc):
        spans = []
        for match_id, start, end in self.matcher(doc):
            rule = self.matcher.rule_of(match_id)
            span = Span(doc, start, end, label=rule.category)
            if rule.exact is not None and "".join(span.text.split()) not in rule.exact:
                continue
            span._.set(RULE_EXTENSION, rule)
            spans.append(span)
        doc.spans[self.span_group] = spans
        return doc


@Language.factory("lumbar_text_sections")
def make_sections(nlp, name: str):
    return SectionStep(nlp)


class SectionStep:
    """Rules: medspaCy `SectionRule`s (category, literal, pattern); `requires` maps a regular
    expression to its required substrings. A header's section ends where the next header starts."""

    def __init__(self, nlp):
        self.nlp = nlp
        self.matcher = RuleMatcher(nlp, whole_text=True)

    def add(self, rules, requires=None) -> None:
        self.matcher.add(rules, requires=requires)

    def __call__(self, doc):
        from medspacy.section_detection.section import Section

        matches = self.matcher(doc)
        if not matches:
            doc._.set(SECTIONS_EXTENSION, [Section(None, 0, 0, 0, len(doc))])
            return doc
        sections = []
        if matches[0][1] != 0:
            sections.append(Section(None, 0, 0, 0, matches[0][1]))
        for i, (match_id, start, end) in enumerate(matches):
            rule = self.matcher.rule_of(match_id)
            scope_end = len(doc) if i == len(matches) - 1 else matches[i + 1][1]
            sections.append(Section(rule.category, start, end, end, scope_end, None, rule))
        doc._.set(SECTIONS_EXTENSION, sections)
        return doc
