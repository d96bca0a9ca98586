"""The project's rule matcher: phrases, spaCy token patterns and regular expressions of the text
rules as one list of (match_id, start, end), the longest of overlapping matches kept.

Role in the data flow: part of the free-text reader's pipeline (read stage); each of its spaCy
components (components.py, context.py) owns one `RuleMatcher`. It does what medspaCy's
MedspacyMatcher does (spaCy's PhraseMatcher on LOWER, spaCy's Matcher, regular expressions over
the text, match ids `<category>_<n>`), with three differences:
- `longest_first` replaces medspaCy's `prune_overlapping_matches`, which keeps the longer of two
  overlapping matches without comparing it with the next one and keeps the first of two equally long
  ones (so 'cauda equina warning' could knock out 'warning signs discussed'); spaCy's filter_spans
  rule instead: longer first, then earlier;
- a regular expression runs only where it can match (scan.TextIndex): not at all on a text without
  any of the substrings its rule `requires` (declared in the rule data), else on the sentences that
  contain one, and on an ASCII text only on those that also hold one of its leading words
  (leading.py); a restricted matcher runs only on the sentences its `restrict` setting allows.
  The matcher finds the expressions to run from the strings present (an index from each string
  to the expressions it guards), not by asking about each expression;
- on an ASCII text, a pattern that can only match lower-case letters runs without re.IGNORECASE on
  the lower-cased text (`case_free_twin`): ASCII letters are the only ones present, and lower-casing
  them is what the flag does, and the flag halves the speed of Python's regex engine.
Every pattern is compiled when the rule is added (no work is left for the first read).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from spacy.matcher import Matcher, PhraseMatcher

from .leading import leading_words
from .scan import Restriction, index_of
from .spans import Sentences

# a leading global flag group, '(?im)^Plan:' (section headers): its 'i' is the matcher's flag
_LEADING_FLAGS = re.compile(r"\(\?([aiLmsux]+)\)")
# escapes that name a character by name or octal code, or a back reference; hexadecimal ones are read
_CODED_ESCAPES = frozenset("N0123456789")
_HEX_WIDTH = {"x": 2, "u": 4, "U": 8}
# upper-case escapes that are classes or anchors, not letters: \S \W \D \B \A \Z
_CLASS_ESCAPES = frozenset("SWDBAZ")


def longest_first(matches: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Non-overlapping matches, the longer of two overlapping ones kept, then the earlier (as
    spaCy's filter_spans); sorted by position. Equal spans: the first in the list wins."""
    if not matches:
        return matches
    ordered = sorted(matches, key=lambda m: (-(m[2] - m[1]), m[1]))
    starts: list[int] = []  # kept intervals, sorted by start, non-overlapping
    ends: list[int] = []
    kept = []
    for match in ordered:
        start, end = match[1], match[2]
        i = bisect.bisect_right(starts, start)
        if (i > 0 and ends[i - 1] > start) or (i < len(starts) and starts[i] < end):
            continue
        starts.insert(i, start)
        ends.insert(i, end)
        kept.append(match)
    return sorted(kept, key=lambda m: (m[1], m[2]))


def _folds_to_ascii(char: str) -> bool:
    """A non-ASCII character that re.IGNORECASE matches with an ASCII letter ('ſ' ~ 's', Kelvin 'K' ~ 'k')."""
    return any(c.isascii() for c in char.lower() + char.upper() + char.casefold())


def _may_match_upper_case(source: str) -> bool:
    """True unless the pattern text can only match lower-case ASCII letters: no upper-case letter
    written, no character by code, no back reference, no range over 'A'-'Z', no inline 'i' flag."""
    in_class, previous, i = False, "", 0
    while i < len(source):
        char = source[i]
        if char == "\\":
            escaped = source[i + 1:i + 2]
            if escaped in _HEX_WIDTH:  # '\u2019': the character it names
                width = _HEX_WIDTH[escaped]
                try:
                    named = chr(int(source[i + 2:i + 2 + width], 16))
                except ValueError:
                    return True
                if (named.isascii() and named.isupper()) or (not named.isascii() and _folds_to_ascii(named)):
                    return True
                previous, i = named, i + 2 + width
                continue
            if escaped in _CODED_ESCAPES or (escaped.isupper() and escaped not in _CLASS_ESCAPES):
                return True
            previous, i = "\\" + escaped, i + 2
            continue
        if not char.isascii() and _folds_to_ascii(char):
            return True
        if in_class:
            if char == "]":
                in_class = False
            elif char == "-" and len(previous) == 1 and source[i + 1:i + 2] not in ("]", ""):
                low, high = previous, source[i + 1]
                if high == "\\" or (low <= "Z" and high >= "A"):
                    return True
        elif char == "[":
            in_class, previous, i = True, "", i + 1 + (source[i + 1:i + 2] == "^")
            if source[i:i + 1] == "]":  # a ']' first in a class is a literal
                previous, i = "]", i + 1
            continue
        elif source.startswith("(?P", i):
            close = source.find(">", i) if source.startswith("(?P<", i) else source.find(")", i)
            previous, i = "", max(close, i + 3)
            continue
        elif source.startswith("(?", i) and re.match(r"\(\?[aiLmsux]*-?[imsx]*[:)]", source[i:]):
            flags = re.match(r"\(\?([aiLmsux]*-?[imsx]*)", source[i:]).group(1)
            if "i" in flags:
                return True
        if char.isascii() and char.isupper():
            return True
        previous, i = char, i + 1
    return False


def case_free_twin(pattern: re.Pattern) -> re.Pattern | None:
    """The pattern without re.IGNORECASE, for lower-cased ASCII text, when that is exact (module docstring)."""
    if not pattern.flags & re.IGNORECASE:
        return None
    source = pattern.pattern
    leading = _LEADING_FLAGS.match(source)
    if leading and "i" in leading.group(1):
        flags = leading.group(1).replace("i", "")
        source = (f"(?{flags})" if flags else "") + source[leading.end():]
    if _may_match_upper_case(source):
        return None
    twin = re.compile(source, pattern.flags & ~re.IGNORECASE)
    return None if twin.flags & re.IGNORECASE else twin


@dataclass(frozen=True)
class _Regex:
    match_id: int
    pattern: re.Pattern
    twin: re.Pattern | None
    requires: tuple[str, ...] | None
    leading: tuple[str, ...] | None = None  # leading.leading_words (a guard on ASCII texts)


class RuleMatcher:
    """Phrases, token patterns and regular expressions of rules (objects with `category`, `literal`,
    `pattern`); `requires` maps a regular expression to the case-folded substrings one of which every
    match of it contains (the rules' `requires`). `whole_text`: guarded patterns search the whole text (section
    headers: '^' and line ends), not the sentences. `restrict`: see scan.Restriction."""

    def __init__(self, nlp, *, whole_text: bool = False, restrict: Restriction | None = None):
        self.vocab = nlp.vocab
        self._tokenizer = nlp.tokenizer
        self._tokens = Matcher(nlp.vocab)
        self._phrases = PhraseMatcher(nlp.vocab, attr="LOWER")
        self._regexes: list[_Regex] = []
        # the positions (in rule order) of the guarded regular expressions by required substring, and
        # of the unguarded ones: a call visits only those a substring of the text lets run
        self._by_guard: dict[str, list[int]] = {}
        self._unguarded: list[int] = []
        self._by_leading: dict[str, list[int]] = {}  # the same for the leading words (leading.py)
        self.rule_map: dict[str, object] = {}
        self.whole_text = whole_text
        self.restrict = restrict
        self.compiled = 0  # regular expressions compiled (all of them when the rules are added)
        self.case_free = True  # use the case-free twins on ASCII text (the tests turn them off to compare)
        self.leading = True  # guard with the leading words on ASCII text (the tests turn them off to compare)

    @property
    def guard_strings(self) -> set[str]:
        return {s for regex in self._regexes for s in (regex.requires or ()) + (regex.leading or ())}

    def add(self, rules, requires=None) -> None:
        for rule in rules:
            rule_id = f"{rule.category}_{len(self.rule_map)}"
            self.rule_map[rule_id] = rule
            if isinstance(rule.pattern, str):
                pattern = re.compile(rule.pattern, re.IGNORECASE)
                twin = case_free_twin(pattern)
                self.compiled += 1 + (twin is not None)
                guards = tuple(requires.get(rule.pattern) or ()) if requires else ()
                for guard in set(guards):
                    self._by_guard.setdefault(guard, []).append(len(self._regexes))
                if not guards:
                    self._unguarded.append(len(self._regexes))
                leading = None if self.whole_text else leading_words(rule.pattern)
                for word in leading or ():
                    self._by_leading.setdefault(word, []).append(len(self._regexes))
                self._regexes.append(_Regex(self.vocab.strings.add(rule_id), pattern, twin, guards or None, leading))
            elif isinstance(rule.pattern, list):
                self._tokens.add(rule_id, [rule.pattern])
            else:
                self._phrases.add(rule_id, [self._tokenizer(rule.literal.lower())])

    def rule_of(self, match_id: int):
        return self.rule_map[self.vocab.strings[match_id]]

    def __call__(self, doc) -> list[tuple[int, int, int]]:
        matches = self._tokens(doc) if len(self._tokens) else []
        if len(self._phrases):
            matches += self._phrases(doc)
        index = index_of(doc)
        allowed = index.allowed_sentences(self.restrict)
        if allowed is not None and matches:
            table = Sentences.of(doc)
            matches = [m for m in matches if table.index(m[1]) in allowed]
        matches += self._regex_matches(doc, index, allowed)
        return longest_first(matches)

    def _regex_matches(self, doc, index, allowed) -> list[tuple[int, int, int]]:
        """The matches of every regular expression, in rule order (as medspaCy's RegexMatcher)."""
        matches = []
        regexes = self._regexes
        if self.whole_text or not index.aligned:
            runnable = self._unguarded + [i for g in self._by_guard.keys() & index.present for i in self._by_guard[g]]
            chosen = {position: None for position in runnable}
        else:
            chosen = self._sentence_masks(index, allowed)
        for position in sorted(chosen):
            regex = regexes[position]
            pattern, searched = regex.pattern, index.text
            if index.lowered is not None and regex.twin is not None and self.case_free:
                pattern, searched = regex.twin, index.lowered
            mask = chosen[position]
            if mask is not None:
                ranges = index.ranges_of_mask(mask)
            elif regex.requires or allowed is not None:
                ranges = index.ranges(regex.requires, self.whole_text, allowed)
                if ranges is None:
                    continue
            else:
                ranges = index.whole
            found = (m for start, end in ranges for m in pattern.finditer(searched, start, end))
            for re_match in found:
                span = _token_span(doc, re_match.start(), re_match.end())
                if len(span):
                    matches.append((regex.match_id, span.start, span.end))
        return matches

    def _sentence_masks(self, index, allowed) -> dict[int, int]:
        """The regular expressions that can match this text (by position) and the sentences each has
        to search, as a bit mask (scan.TextIndex): those holding one of its required substrings, one
        of its leading words (on an ASCII text) and allowed by the restriction. Built from the
        strings present, so an expression none of whose substrings is present costs nothing."""
        every = index.every if allowed is None else index.mask_of_set(allowed)
        masks = dict.fromkeys(self._unguarded, every)
        for guard in self._by_guard.keys() & index.present:
            mask = index.mask_of(guard)
            for position in self._by_guard[guard]:
                masks[position] = masks.get(position, 0) | mask
        if index.lowered is not None and self.leading:
            leading: dict[int, int] = {}
            for word in self._by_leading.keys() & index.present:
                mask = index.mask_of(word)
                for position in self._by_leading[word]:
                    leading[position] = leading.get(position, 0) | mask
            regexes = self._regexes
            for position in list(masks):
                if regexes[position].leading:
                    masks[position] &= leading.get(position, 0)
        if allowed is not None:
            for position in masks:
                masks[position] &= every
        return {position: mask for position, mask in masks.items() if mask}


def _token_span(doc, start_char: int, end_char: int):
    """The tokens of a character range, widened to whole tokens (medspaCy's resolve 'left'/'right')."""
    span = doc.char_span(start_char, end_char)
    if span is not None:
        return span
    start = _token_at(doc, start_char, "left")
    end = _token_at(doc, end_char, "right")
    return doc[start.i:len(doc) if end is None else end.i]


def _token_at(doc, char: int, resolve: str):
    from medspacy.common.util import get_token_for_char

    return get_token_for_char(doc, char, resolve=resolve)
