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
3. RegexMatcher.__call__ rebuilt `doc.text_with_ws` for every pattern; now once per call. A pattern
   registered with guards (case-folded substrings, one of which every match contains; see
   regex_guards.py) is not run on a text that has none of them, and otherwise only on the sentences
   that contain one (a rule match never spans two sentences; section headers, in WHOLE_TEXT, are
   searched on the whole text).
6. MedspacyMatcher.__call__ ran spaCy's token Matcher even when it had no pattern (a full pass over
   the tokens and warning W036 each call); it now skips an empty Matcher or PhraseMatcher.
5. Sectionizer.__call__ also set `token._.section` on every token (the reader reads doc._.sections
   only); the lean version builds the same Section list and skips that loop.
4. ConTextGraph.update_scopes compared every pair of modifiers and apply_modifiers every target with
   every modifier (quadratic in a long note); now only pairs whose scopes overlap, in the original
   order (scopes only shrink, so pairs that do not overlap at first never interact).
"""

from __future__ import annotations

import bisect

_APPLIED = False
# pattern string -> case-folded substrings, one of which any match of the pattern contains (regex_guards)
GUARDS: dict[str, tuple[str, ...]] = {}
# patterns searched on the whole text even when guarded (section headers: '^' and line ends)
WHOLE_TEXT: set[str] = set()


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


_REGIONS_KEY = "lumbar_text_regex_regions"
_ALL_GUARDS: list = [0, ()]  # [size of GUARDS when built, all guard strings]


def _all_guards() -> tuple[str, ...]:
    if _ALL_GUARDS[0] != len(GUARDS):
        _ALL_GUARDS[1] = tuple(sorted({g for guards in GUARDS.values() for g in guards}))
        _ALL_GUARDS[0] = len(GUARDS)
    return _ALL_GUARDS[1]


class _Regions:
    """Per Doc: the text, and for each guard string the sentences that contain it."""

    def __init__(self, doc, text: str):
        self.doc = doc
        self.text = text
        folded = text.casefold()
        self.aligned = len(folded) == len(text)  # offsets in the folded text are offsets in the text
        self.folded = folded
        self.sentences_of: dict[str, tuple[int, ...]] = {}
        # every guard string present in the text, found once for all patterns of all matchers
        self.present = {g for g in _all_guards() if g in folded}
        starts, ends = [], []
        if self.aligned:
            try:
                for sent in doc.sents:
                    starts.append(sent.start_char)
                    ends.append(sent.end_char)
            except ValueError:  # no sentence boundaries
                starts, ends = [], []
        if not starts:
            starts, ends = [0], [len(text)]
        self.starts, self.ends = starts, ends

    def _sentences(self, guard: str) -> tuple[int, ...]:
        found = self.sentences_of.get(guard)
        if found is None:
            hits = []
            folded, starts, ends = self.folded, self.starts, self.ends
            at = folded.find(guard)
            while at != -1:
                index = bisect.bisect_right(starts, at) - 1
                hits.append(index)
                at = folded.find(guard, max(ends[index], at + 1))  # next sentence
            found = self.sentences_of[guard] = tuple(hits)
        return found

    def ranges(self, guards, whole_text: bool):
        """None: skip the pattern; else (start, end) ranges to search."""
        if self.present.isdisjoint(guards):
            return None
        present = [g for g in guards if g in self.present]
        if whole_text or not self.aligned:
            return [(0, len(self.text))]
        if len(present) == 1:
            chosen = self._sentences(present[0])
        else:
            chosen = sorted({i for g in present for i in self._sentences(g)})
        if len(chosen) * 2 > len(self.starts):
            return [(0, len(self.text))]
        ranges: list[list[int]] = []
        for index in chosen:
            start, end = self.starts[index], self.ends[index]
            if ranges and ranges[-1][1] >= start - 1:
                ranges[-1][1] = max(ranges[-1][1], end)
            else:
                ranges.append([start, end])
        return [(start, end) for start, end in ranges]


def _regex_call(self, doc):
    from medspacy.common.util import get_token_for_char

    # one text and one guard index per Doc, shared by the target, duration, ConText and section matchers
    regions = doc.user_data.get(_REGIONS_KEY)
    if regions is None or regions.doc is not doc:
        regions = _Regions(doc, doc.text_with_ws)
        doc.user_data[_REGIONS_KEY] = regions
    text = regions.text
    matches = []
    for match_id, patterns in self._patterns.items():
        on_match = self._callbacks[match_id]
        for pattern in patterns:
            guards = GUARDS.get(pattern.pattern)
            if guards:
                ranges = regions.ranges(guards, pattern.pattern in WHOLE_TEXT)
                if ranges is None:
                    continue
                found = (m for start, end in ranges for m in pattern.finditer(text, start, end))
            else:
                found = pattern.finditer(text)
            for re_match in found:
                span = doc.char_span(re_match.start(), re_match.end())
                if span is None:
                    start = get_token_for_char(doc, re_match.start(), resolve=self.resolve_start)
                    end = get_token_for_char(doc, re_match.end(), resolve=self.resolve_end)
                    end_index = len(doc) if end is None else end.i
                    span = doc[start.i:end_index]
                if len(span):
                    matches.append((match_id, span.start, span.end))
                if on_match is not None:
                    on_match(self, doc, len(matches) - 1, matches)
    return matches


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
    regex_module.RegexMatcher.__call__ = _regex_call
    graph_module.ConTextGraph.update_scopes = _update_scopes
    graph_module.ConTextGraph.apply_modifiers = _apply_modifiers
    import medspacy.section_detection.sectionizer as sectionizer_module

    sectionizer_module.Sectionizer.__call__ = _sectionizer_call
    _APPLIED = True
