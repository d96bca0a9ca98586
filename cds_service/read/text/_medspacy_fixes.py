"""Corrections and speed-ups to medspaCy 1.3.1 internals, applied when the reader builds its pipeline.

Role in the data flow: called once by TextReader.__init__ after medspaCy is imported; replaces a few
of medspaCy's own module-level helpers and methods (this process has no other medspaCy user, and
setup.cfg pins medspacy==1.3.1, the version these replacements were written against; the tests in
tests/read/text/test_reader.py check the corrected behaviour).

Corrections:
1. `medspacy.util.tuple_overlaps(a, b)` is `a[0] <= b[0] < a[1] or a[0] < b[1] <= a[1]`, which misses
   the case where b strictly contains a. ConText uses it to let a TERMINATE modifier (whose scope is
   the whole sentence) cut another modifier's scope, so a modifier with a `max_scope` was never
   terminated: in 'urinary retention no, saddle numbness yes, bowel incontinence no' the last 'no'
   negated 'saddle numbness' across 'yes'. Replaced by the symmetric a[0] < b[1] and b[0] < a[1].
2. `prune_overlapping_matches` (every MedspacyMatcher: targets, modifiers, sections) keeps the longer
   of two overlapping matches but does not compare it with the next one, and keeps the first of two
   equally long ones, so 'cauda equina warning' could knock out 'warning signs discussed'. Replaced
   by a greedy longest-first selection (spaCy's filter_spans rule: longer first, then earlier).
Speed-ups (same results):
3. RegexMatcher.__call__ is _regex_scan.regex_call: guarded patterns, sentence restrictions and
   case-free twins (see that module).
6. MedspacyMatcher.__call__ ran spaCy's token Matcher even when it had no pattern (a full pass over
   the tokens and warning W036 each call); it now skips an empty Matcher or PhraseMatcher.
5. Sectionizer.__call__ also set `token._.section` on every token (the reader reads doc._.sections
   only); the lean version builds the same Section list and skips that loop.
4. ConTextGraph.update_scopes compared every pair of modifiers and apply_modifiers every target with
   every modifier (quadratic in a long note); now only pairs whose scopes overlap, in the original
   order (scopes only shrink, so pairs that do not overlap at first never interact).
7. ConTextModifier's scope came from `doc[start].sent`, which walks the sentence token by token and
   makes a Token object for each (a third of ConText's time); the sentence bounds are now read once
   per Doc (spans.Sentences) and looked up by bisection. Same scope, same max_scope rules.
"""

from __future__ import annotations

import bisect

from ._regex_scan import regex_call, regions_of
from .spans import Sentences

_APPLIED = False


def tuple_overlaps(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def prune_overlapping_matches(matches, strategy: str = "longest"):
    if strategy != "longest":
        raise NotImplementedError(strategy)
    if not matches:
        return matches
    ordered = sorted(matches, key=lambda m: (-(m[2] - m[1]), m[1]))
    starts: list[int] = []  # kept intervals, sorted by start, non-overlapping
    ends: list[int] = []
    kept = []
    for match in ordered:
        start, end = match[1], match[2]
        i = bisect.bisect_right(starts, start)
        if i > 0 and ends[i - 1] > start:
            continue
        if i < len(starts) and starts[i] < end:
            continue
        starts.insert(i, start)
        ends.insert(i, end)
        kept.append(match)
    return sorted(kept, key=lambda m: (m[1], m[2]))



_ORIGINAL_SET_SCOPE: list = []


def _set_scope(self, doc):
    """ConTextModifier.__set_scope with the sentence found by bisection (see 7 above)."""
    if self._max_scope:
        return _ORIGINAL_SET_SCOPE[0](self, doc)
    table = Sentences.of(doc)
    index = table.index(self._start)
    sent_start, sent_end = table.tokens(index)
    direction = self.direction.lower()
    max_scope = self.max_scope
    if direction == "forward":
        self._scope_start, self._scope_end = self._end, sent_end
        if max_scope is not None and (self._scope_end - self._scope_start) > max_scope:
            self._scope_end = self._end + max_scope
    elif direction == "backward":
        self._scope_start, self._scope_end = sent_start, self._start
        if max_scope is not None and (self._scope_end - self._scope_start) > max_scope:
            self._scope_start = self._start - max_scope
    else:  # bidirectional
        self._scope_start, self._scope_end = sent_start, sent_end
        if max_scope is not None and (self._start - self._scope_start) > max_scope:
            self._scope_start = self._start - max_scope
        if max_scope is not None and (self._scope_end - self._end) > max_scope:
            self._scope_end = self._end + max_scope


def _overlapping_pairs(modifiers):
    """Index pairs (i, j), i < j, of modifiers whose scopes overlap, in the original loop order."""
    from medspacy.context import context_modifier

    overlaps = context_modifier.tuple_overlaps
    order = sorted(range(len(modifiers)), key=lambda k: modifiers[k].scope_span[0])
    pairs = []
    active: list[int] = []
    for k in order:
        scope = modifiers[k].scope_span
        active = [a for a in active if modifiers[a].scope_span[1] > scope[0]]
        for a in active:
            if overlaps(modifiers[a].scope_span, scope) or overlaps(scope, modifiers[a].scope_span):
                pairs.append((min(a, k), max(a, k)))
        active.append(k)
    pairs.sort()
    return pairs


def _update_scopes(self):
    for i, j in _overlapping_pairs(self.modifiers):
        self.modifiers[i].limit_scope(self.modifiers[j])
        self.modifiers[j].limit_scope(self.modifiers[i])


def _apply_modifiers(self):
    targets = list(self.targets)
    if self.prune_on_modifier_overlap and targets:
        spans = sorted((t.start, t.end) for t in targets)
        starts = [s for s, _ in spans]
        longest = max(e - s for s, e in spans)
        kept = []
        for modifier in self.modifiers:
            m_start, m_end = modifier.modifier_span
            i = bisect.bisect_left(starts, m_start - longest)
            overlap = False
            while i < len(spans) and spans[i][0] < m_end:
                if spans[i][1] > m_start:
                    overlap = True
                    break
                i += 1
            if not overlap:
                kept.append(modifier)
        self.modifiers[:] = kept
    position = {id(m): i for i, m in enumerate(self.modifiers)}
    by_start = sorted(self.modifiers, key=lambda m: m.scope_span[0])
    scope_starts = [m.scope_span[0] for m in by_start]
    for target in targets:
        # a modifier can only modify a target its scope overlaps: scope_start < target.end
        limit = bisect.bisect_left(scope_starts, target.end)
        candidates = [m for m in by_start[:limit] if m.scope_span[1] > target.start]
        candidates.sort(key=lambda m: position[id(m)])
        for modifier in candidates:
            if modifier.modifies(target):
                modifier.modify(target)
    edges = []
    for modifier in self.modifiers:
        modifier.reduce_targets()
        for target in modifier._targets:
            edges.append((target, modifier))
    self.edges = edges


def _sectionizer_call(self, doc):
    """Sectionizer.__call__ without its per-token `token._.section` loop (the reader only uses
    doc._.sections) and without span attributes (the reader applies section effects itself)."""
    from medspacy.section_detection.section import Section

    matcher = self._Sectionizer__matcher
    matches = matcher(doc)
    if self.require_start_line:
        matches = self.filter_start_lines(doc, matches)
    if self.require_end_line:
        matches = self.filter_end_lines(doc, matches)
    if self._parent_sections:
        matches = self.set_parent_sections(matches)
    sections = []
    if not matches:
        sections.append(Section(None, 0, 0, 0, len(doc)))
        doc._.sections = sections
        return doc
    if matches[0][1] != 0:
        sections.append(Section(None, 0, 0, 0, matches[0][1]))
    for i, match in enumerate(matches):
        parent = None
        if len(match) == 4:
            match_id, start, end, parent_idx = match
            if parent_idx is not None:
                parent = sections[parent_idx]
        else:
            match_id, start, end = match
        rule = matcher.rule_map[self.nlp.vocab.strings[match_id]]
        scope_end = len(doc) if i == len(matches) - 1 else matches[i + 1][1]
        limit = rule.max_scope if rule.max_scope is not None else self.max_section_length
        if limit is not None:
            scope_end = min(end + limit, scope_end)
        sections.append(Section(rule.category, start, end, end, scope_end, parent, rule))
    doc._.sections = sections
    return doc


def _medspacy_matcher_call(self, doc):
    """MedspacyMatcher.__call__ that skips an empty token Matcher or PhraseMatcher (spaCy's Matcher
    walks every token even with no pattern, and warns W036 each time)."""
    token_matcher = self._MedspacyMatcher__matcher
    phrase_matcher = self._MedspacyMatcher__phrase_matcher
    matches = token_matcher(doc) if len(token_matcher) else []
    if len(phrase_matcher):
        matches += phrase_matcher(doc)
    setting = getattr(self, "lumbar_restrict", None)
    if setting is not None and matches:
        regions = regions_of(doc)
        allowed = regions.allowed_sentences(setting)
        if allowed is not None:
            table = Sentences.of(doc)
            matches = [m for m in matches if table.index(m[1]) in allowed]
    matches += self._MedspacyMatcher__regex_matcher(doc)
    if self._prune:
        matches = prune_overlapping_matches(matches)
    return matches


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    import medspacy.common.medspacy_matcher as matcher_module
    import medspacy.common.regex_matcher as regex_module
    import medspacy.context.context_graph as graph_module
    import medspacy.context.context_modifier as modifier_module
    import medspacy.util as util_module

    util_module.tuple_overlaps = tuple_overlaps
    modifier_module.tuple_overlaps = tuple_overlaps
    graph_module.tuple_overlaps = tuple_overlaps
    matcher_module.prune_overlapping_matches = prune_overlapping_matches
    matcher_module.MedspacyMatcher.__call__ = _medspacy_matcher_call
    regex_module.RegexMatcher.__call__ = regex_call
    graph_module.ConTextGraph.update_scopes = _update_scopes
    graph_module.ConTextGraph.apply_modifiers = _apply_modifiers
    _ORIGINAL_SET_SCOPE.append(modifier_module.ConTextModifier._ConTextModifier__set_scope)
    modifier_module.ConTextModifier._ConTextModifier__set_scope = _set_scope
    import medspacy.section_detection.sectionizer as sectionizer_module

    sectionizer_module.Sectionizer.__call__ = _sectionizer_call
    _APPLIED = True
