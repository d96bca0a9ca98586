"""ConText (Chapman et al. 2011) as the reader's own spaCy component 'lumbar_text_context', built on
medspaCy's ConTextRule, ConTextModifier and ConTextGraph, with medspaCy 1.3.1's scope bug fixed.

Role in the data flow: the step of the reader's pipeline after the target matcher (read stage);
it finds the modifier phrases of rules/text/context.json, gives each a scope and links it to the
targets in that scope (`span._.lumbar_modifiers`, `doc._.lumbar_context`); reader.py turns the
modifier categories into one assertion.

Differences from medspaCy's own 'medspacy_context' component (same algorithm otherwise):
- the scope bug: medspaCy's `tuple_overlaps(a, b)` is `a[0] <= b[0] < a[1] or a[0] < b[1] <= a[1]`,
  which misses the case where b strictly contains a. ConText uses it to let a TERMINATE modifier
  (whose scope is the whole sentence) cut another modifier's scope, so a modifier with a
  `max_scope` was never terminated: in 'urinary retention no, saddle numbness yes, bowel
  incontinence no' the last 'no' negated 'saddle numbness' across 'yes'. `ScopedModifier` uses the
  symmetric test (a[0] < b[1] and b[0] < a[1]) in `limit_scope` and `modifies`;
- a modifier's sentence comes from the Doc's sentence table (spans.Sentences, by bisection), not from
  `doc[start].sent`, which walks the sentence token by token (a third of ConText's time);
- `ScopedGraph` compares only the modifiers whose scopes overlap and each target only with the
  modifiers whose scope reaches it, in the original order (scopes only shrink, so pairs that do
  not overlap at first never interact): linear, not quadratic, in a long note;
- the modifiers are matched by matching.RuleMatcher (its overlap pruning), only on the sentences
  that hold a target (`restrict`).
"""

from __future__ import annotations

import bisect

# isort: off
from .library import medspacy  # noqa: F401  (imported before medspacy.context: library.py says why)
from medspacy.context import ConTextGraph, ConTextModifier, ConTextRule
# isort: on
from spacy.language import Language
from spacy.tokens import Doc, Span

from .matching import RuleMatcher
from .scan import Restriction
from .spans import GRAPH_EXTENSION, MODIFIERS_EXTENSION, Sentences

if not Span.has_extension(MODIFIERS_EXTENSION):
    Span.set_extension(MODIFIERS_EXTENSION, default=())
if not Doc.has_extension(GRAPH_EXTENSION):
    Doc.set_extension(GRAPH_EXTENSION, default=None)


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two token ranges (start, end) share a token (symmetric, unlike medspaCy's tuple_overlaps)."""
    return a[0] < b[1] and b[0] < a[1]


class ScopedModifier(ConTextModifier):
    """A ConTextModifier whose scope is set from the sentence table and limited with `overlaps`."""

    def __init__(self, rule: ConTextRule, start: int, end: int, doc, sentences: Sentences):
        sent_start, sent_end = sentences.tokens(sentences.index(start))
        direction, max_scope = rule.direction.lower(), rule.max_scope
        if direction == "forward":
            scope = (end, sent_end)
            if max_scope is not None and scope[1] - scope[0] > max_scope:
                scope = (end, end + max_scope)
        elif direction == "backward":
            scope = (sent_start, start)
            if max_scope is not None and scope[1] - scope[0] > max_scope:
                scope = (start - max_scope, start)
        else:  # bidirectional, terminate, pseudo
            scope = (sent_start, sent_end)
            if max_scope is not None and start - scope[0] > max_scope:
                scope = (start - max_scope, scope[1])
            if max_scope is not None and scope[1] - end > max_scope:
                scope = (scope[0], end + max_scope)
        super().__init__(rule, start, end, doc, scope_start=scope[0], scope_end=scope[1])

    def limit_scope(self, other: ConTextModifier) -> bool:
        """medspaCy's limit_scope with `overlaps` (module docstring)."""
        if not overlaps(self.scope_span, other.scope_span) or self.direction.upper() == "TERMINATE":
            return False
        if (other.direction.upper() != "TERMINATE" and other.category.upper() not in self.rule.terminated_by
                and other.category.upper() != self.category.upper()):
            return False
        if self.category == other.category and (
                self.allowed_types != other.allowed_types or self.excluded_types != other.excluded_types):
            return False
        original = self.scope_span
        if self.direction.lower() in ("forward", "bidirectional") and other > self:
            self._scope_end = min(self._scope_end, other.modifier_span[0])
        if self.direction.lower() in ("backward", "bidirectional") and other < self:
            self._scope_start = max(self._scope_start, other.modifier_span[1])
        return original != self.scope_span

    def modifies(self, target) -> bool:
        """medspaCy's modifies with `overlaps` (module docstring)."""
        if overlaps(self.modifier_span, (target.start, target.end)):
            return False
        if self.direction in ("TERMINATE", "PSEUDO") or not self.allows(target.label_.upper()):
            return False
        return overlaps(self.scope_span, (target.start, target.end)) and self.on_modifies(target)


class ScopedGraph(ConTextGraph):
    """A ConTextGraph that compares only modifiers and targets whose ranges can meet (module docstring)."""

    def update_scopes(self) -> None:
        for i, j in self._overlapping_pairs():
            self.modifiers[i].limit_scope(self.modifiers[j])
            self.modifiers[j].limit_scope(self.modifiers[i])

    def _overlapping_pairs(self) -> list[tuple[int, int]]:
        """Index pairs (i, j), i < j, of modifiers whose scopes overlap, in the original loop order."""
        modifiers = self.modifiers
        pairs, active = [], []
        for k in sorted(range(len(modifiers)), key=lambda m: modifiers[m].scope_span[0]):
            scope = modifiers[k].scope_span
            active = [a for a in active if modifiers[a].scope_span[1] > scope[0]]
            pairs.extend((min(a, k), max(a, k)) for a in active if overlaps(modifiers[a].scope_span, scope))
            active.append(k)
        return sorted(pairs)

    def apply_modifiers(self) -> None:
        targets = list(self.targets)
        if self.prune_on_modifier_overlap and targets:
            self.modifiers[:] = self._outside_targets(targets)
        position = {id(m): i for i, m in enumerate(self.modifiers)}
        by_start = sorted(self.modifiers, key=lambda m: m.scope_span[0])
        scope_starts = [m.scope_span[0] for m in by_start]
        for target in targets:
            # a modifier can only modify a target its scope overlaps: scope_start < target.end
            limit = bisect.bisect_left(scope_starts, target.end)
            candidates = [m for m in by_start[:limit] if m.scope_span[1] > target.start]
            for modifier in sorted(candidates, key=lambda m: position[id(m)]):
                if modifier.modifies(target):
                    modifier.modify(target)
        self.edges = []
        for modifier in self.modifiers:
            modifier.reduce_targets()
            self.edges.extend((target, modifier) for target in modifier._targets)

    def _outside_targets(self, targets) -> list:
        """The modifiers that overlap no target (prune_on_target_overlap)."""
        spans = sorted((t.start, t.end) for t in targets)
        starts = [s for s, _ in spans]
        longest = max(e - s for s, e in spans)
        kept = []
        for modifier in self.modifiers:
            m_start, m_end = modifier.modifier_span
            i = bisect.bisect_left(starts, m_start - longest)
            while i < len(spans) and spans[i][0] < m_end and spans[i][1] <= m_start:
                i += 1
            if not (i < len(spans) and spans[i][0] < m_end):
                kept.append(modifier)
        return kept


@Language.factory("lumbar_text_context",
                  default_config={"span_group": "lumbar_text_targets", "restrict_to_groups": []})
def make_context(nlp, name: str, span_group: str, restrict_to_groups: list[str]):
    return ContextStep(nlp, span_group, tuple(restrict_to_groups))


class ContextStep:
    """ConText over the targets of `span_group`; modifier rules (ConTextRule) added with `add`;
    `requires` maps a regular expression to its required substrings."""

    def __init__(self, nlp, span_group: str, restrict_to_groups: tuple[str, ...] = ()):
        self.span_group = span_group
        restriction = Restriction(restrict_to_groups) if restrict_to_groups else None
        self.matcher = RuleMatcher(nlp, restrict=restriction)

    def add(self, rules, requires=None) -> None:
        self.matcher.add(rules, requires=requires)

    def __call__(self, doc):
        graph = ScopedGraph(prune_on_modifier_overlap=True)
        graph.targets = doc.spans[self.span_group]
        sentences = Sentences.of(doc)
        graph.modifiers = [ScopedModifier(self.matcher.rule_of(match_id), start, end, doc, sentences)
                           for match_id, start, end in self.matcher(doc)]
        graph.update_scopes()
        graph.apply_modifiers()
        for target, modifier in graph.edges:
            target._.set(MODIFIERS_EXTENSION, target._.get(MODIFIERS_EXTENSION) + (modifier,))
        doc._.set(GRAPH_EXTENSION, graph)
        return doc
