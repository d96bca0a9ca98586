"""Fast regular-expression matching for medspaCy's RegexMatcher: which patterns run on a Doc, on
which part of its text, and how.

Role in the data flow: part of the free-text reader's pipeline (read stage); `_medspacy_fixes.apply`
installs `regex_call` as medspaCy's RegexMatcher.__call__, and the reader registers the guards and
restrictions below while it builds the pipeline. Same matches as medspaCy's own loop (the tests in
tests/read/text/test_reader.py compare both); only work is skipped:
- `doc.text_with_ws` is built once per Doc, not once per pattern;
- GUARDS: a pattern registered with case-folded substrings one of which every match contains
  (regex_guards.py) is not run on a text that has none of them, and otherwise only on the sentences
  that contain one (a rule match never spans two sentences; section headers, in WHOLE_TEXT, are
  searched on the whole text). The text is scanned once for all guard strings, with an
  Aho-Corasick automaton (pyahocorasick), instead of once per string (600 of them);
- `restrict`: ConText and the duration matcher run only on the sentences that hold a finding (or,
  for durations, a symptom anchor word);
- case-free twins: every rule pattern is compiled case-insensitive, which halves the speed of
  Python's regex engine. On an ASCII text, a pattern with no upper-case letter in it matches the
  lower-cased text without the flag exactly where it matches the text with it (ASCII letters are
  the only ones present, and lower-casing them is what the flag does); such patterns run that way.
"""

from __future__ import annotations

import bisect
import re

from .spans import Sentences

# pattern string -> case-folded substrings, one of which any match of the pattern contains (regex_guards)
GUARDS: dict[str, tuple[str, ...]] = {}
# patterns searched on the whole text even when guarded (section headers: '^' and line ends)
WHOLE_TEXT: set[str] = set()

_REGIONS_KEY = "lumbar_text_regex_regions"
# [size of GUARDS and ANCHORS when built, an Aho-Corasick automaton of all their strings, or None]
_AUTOMATON: list = [-1, None]
# case-folded words that anchor a duration to a symptom (durations.json 'anchors'); see restrict()
ANCHORS: set[str] = set()


def _automaton():
    """One Aho-Corasick automaton (pyahocorasick) of every guard and anchor string: a text is
    scanned once for all of them, instead of once per string (600 of them)."""
    size = len(GUARDS) + len(ANCHORS)
    if _AUTOMATON[0] != size:
        import ahocorasick

        strings = {g for guards in GUARDS.values() for g in guards} | ANCHORS
        automaton = None
        if strings:
            automaton = ahocorasick.Automaton()
            for string in strings:
                automaton.add_word(string, string)
            automaton.make_automaton()
        _AUTOMATON[:] = [size, automaton]
    return _AUTOMATON[1]


def restrict(matcher, groups: tuple[str, ...], anchored: bool = False) -> None:
    """Run this MedspacyMatcher only on the sentences that hold a span of one of these span groups
    (or, with `anchored`, a duration anchor word). For ConText: a modifier's scope never leaves its
    sentence (no component-level max_scope), so a modifier elsewhere can modify nothing; for
    durations: a duration counts only in a sentence with a symptom anchor (reader._duration_anchored)."""
    setting = (tuple(groups), anchored)
    matcher.lumbar_restrict = setting
    matcher._MedspacyMatcher__regex_matcher.lumbar_restrict = setting


class _Regions:
    """Per Doc: the text, where each guard string occurs, and the sentences that contain it."""

    def __init__(self, doc, text: str):
        self.doc = doc
        self.text = text
        folded = text.casefold()
        self.aligned = len(folded) == len(text)  # offsets in the folded text are offsets in the text
        self.folded = folded
        # an ASCII text lower-cased: offsets unchanged, for the case-free pattern twins (module docstring)
        self.lowered = text.lower() if text.isascii() else None
        self.sentences_of: dict[str, tuple[int, ...]] = {}
        self.allowed: dict[tuple, frozenset[int] | None] = {}
        # where every guard and anchor string occurs, found in one pass for all matchers
        self.hits: dict[str, list[int]] = {}
        automaton = _automaton()
        if automaton is not None:
            for end, string in automaton.iter(folded):
                self.hits.setdefault(string, []).append(end - len(string) + 1)
        self.present = self.hits.keys()
        starts, ends = [], []
        if self.aligned:
            try:
                table = Sentences.of(doc)
                starts, ends = table.char_starts, table.char_ends
            except ValueError:  # no sentence boundaries
                starts, ends = [], []
        if not starts:
            starts, ends = [0], [len(text)]
        self.starts, self.ends = starts, ends

    def sentence_of(self, char: int) -> int:
        return max(0, bisect.bisect_right(self.starts, char) - 1)

    def _sentences(self, guard: str) -> tuple[int, ...]:
        found = self.sentences_of.get(guard)
        if found is None:
            found = self.sentences_of[guard] = tuple(sorted({self.sentence_of(at) for at in self.hits.get(guard, ())}))
        return found

    def allowed_sentences(self, setting) -> frozenset[int] | None:
        """The sentences a restricted matcher runs on (restrict()); None: the whole text."""
        if setting is None or not self.aligned or len(self.starts) < 2:
            return None
        if setting not in self.allowed:
            groups, anchored = setting
            table = Sentences.of(self.doc)  # the same sentences as self.starts, by token
            chosen = {table.index(span.start) for group in groups for span in self.doc.spans.get(group, ())}
            if anchored:
                chosen.update(i for word in ANCHORS for i in self._sentences(word))
            self.allowed[setting] = frozenset(chosen)
        return self.allowed[setting]

    def ranges(self, guards, whole_text: bool, allowed: frozenset[int] | None = None):
        """None: skip the pattern; else (start, end) ranges to search."""
        if allowed is not None and not allowed:
            return None
        if guards:
            if self.present.isdisjoint(guards):
                return None
            if whole_text or not self.aligned:
                return [(0, len(self.text))]
            present = [g for g in guards if g in self.present]
            if len(present) == 1:
                chosen = self._sentences(present[0])
            else:
                chosen = sorted({i for g in present for i in self._sentences(g)})
            if allowed is not None:
                chosen = [i for i in chosen if i in allowed]
                if not chosen:
                    return None
        elif allowed is not None:
            chosen = sorted(allowed)
        else:
            return [(0, len(self.text))]
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


_TWINS: dict[tuple[str, int], re.Pattern | None] = {}
_LEADING_FLAGS = re.compile(r"\(\?([aiLmsux]+)\)")


def _has_upper_ascii(node) -> bool:
    """True when a parsed pattern (re._parser) names an upper-case ASCII letter or turns the
    case-insensitive flag off in a part of it; every other node matches alike on lower-cased text."""
    from re import _constants as c  # type: ignore[attr-defined]

    for op, av in node:
        if op in (c.LITERAL, c.NOT_LITERAL):
            if 65 <= av <= 90:
                return True
        elif op is c.IN:
            if _has_upper_ascii(av):
                return True
        elif op is c.RANGE:
            if av[0] <= 90 and av[1] >= 65:
                return True
        elif op is c.SUBPATTERN:
            _group, add_flags, del_flags, sub = av
            if (add_flags | del_flags) & re.IGNORECASE or _has_upper_ascii(sub):
                return True
        elif op is c.BRANCH:
            if any(_has_upper_ascii(branch) for branch in av[1]):
                return True
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            if _has_upper_ascii(av[2]):
                return True
        elif op in (c.ASSERT, c.ASSERT_NOT, c.ATOMIC_GROUP):
            if _has_upper_ascii(av[-1] if op is not c.ATOMIC_GROUP else av):
                return True
        elif op is c.GROUPREF_EXISTS:
            if any(part is not None and _has_upper_ascii(part) for part in av[1:]):
                return True
    return False


def _case_free_twin(pattern: re.Pattern) -> re.Pattern | None:
    """The pattern without re.IGNORECASE, for lower-cased ASCII text, when that is exact (module docstring)."""
    key = (pattern.pattern, pattern.flags)
    if key not in _TWINS:
        twin = None
        if pattern.flags & re.IGNORECASE:
            from re import _parser  # type: ignore[attr-defined]

            source = pattern.pattern
            leading = _LEADING_FLAGS.match(source)
            if leading and "i" in leading.group(1):  # '(?im)^...' (section headers): the flag written in it
                flags = leading.group(1).replace("i", "")
                source = (f"(?{flags})" if flags else "") + source[leading.end():]
            try:
                upper = _has_upper_ascii(_parser.parse(pattern.pattern, pattern.flags))
                candidate = re.compile(source, pattern.flags & ~re.IGNORECASE)
            except (re.error, TypeError, ValueError):  # pragma: no cover - patterns compiled already
                upper, candidate = True, None
            if not upper and candidate is not None and not candidate.flags & re.IGNORECASE:
                twin = candidate
        _TWINS[key] = twin
    return _TWINS[key]


def regions_of(doc) -> _Regions:
    """One text and one guard index per Doc, shared by the target, duration, ConText and section matchers."""
    regions = doc.user_data.get(_REGIONS_KEY)
    if regions is None or regions.doc is not doc:
        regions = _Regions(doc, doc.text_with_ws)
        doc.user_data[_REGIONS_KEY] = regions
    return regions


def regex_call(self, doc):
    """RegexMatcher.__call__: the matches of every pattern, in medspaCy's order."""
    from medspacy.common.util import get_token_for_char

    regions = regions_of(doc)
    text, lowered = regions.text, regions.lowered
    allowed = regions.allowed_sentences(getattr(self, "lumbar_restrict", None))
    matches = []
    for match_id, patterns in self._patterns.items():
        on_match = self._callbacks[match_id]
        for pattern in patterns:
            guards = GUARDS.get(pattern.pattern)
            searched = text
            if lowered is not None:
                twin = _case_free_twin(pattern)
                if twin is not None:
                    pattern, searched = twin, lowered
            if guards or allowed is not None:
                ranges = regions.ranges(guards, pattern.pattern in WHOLE_TEXT, allowed)
                if ranges is None:
                    continue
                found = (m for start, end in ranges for m in pattern.finditer(searched, start, end))
            else:
                found = pattern.finditer(searched)
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
