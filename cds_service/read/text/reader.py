"""The free-text reader: clinical note text -> red-flag, episode, duration and care findings.

Role in the data flow: a stand-alone stage of cds_service/read ("FHIR records -> pathway inputs"). The
caller hands it the text of a note (for attachments, via `attachment_text`) and the note's date; it
returns `TextFinding`s, each a fact group (the value-set group names), an assertion, a <= 120
character snippet for the card to quote, the character offsets, and for durations the onset date.

Engine: a spaCy pipeline built and warmed once per `TextReader` (the slow part, ~1 s with the
import; nlp.py): medspaCy's clinical tokenizer, then the reader's own registered components - a
rule-based sentence splitter (sentence ends, line breaks; spaCy's Sentencizer ignores line breaks,
PyRuSH costs ~50 ms per 2 KB note here), the text index of required substrings (scan.py), the target
and duration matchers with the group rules of rules/text/*.json (phrases, token patterns and regular
expressions; the longest overlapping match wins, so an `exclude` phrase silences a shorter one;
components.py, matching.py), ConText (Chapman et al.) with the modifier rules of
rules/text/context.json (context.py, on medspaCy's ConText classes with its scope bug fixed) and the
section headers of rules/text/sections.json. The reader then maps modifier categories to one
assertion by precedence (other-person > hypothetical > negated > uncertain > historical > affirmed),
applies section effects (Family History -> other-person, return precautions -> hypothetical, ...)
and parses durations (durations.py).

Speed: a keyword prefilter (no trigger word of any rule -> no pipeline, ()), whose "no" for a
short text is remembered (records repeat the same names: "Body temperature", "Heart rate"), and an
in-process LRU cache keyed by sha256(text, written_on): a repeated read is a dictionary look-up.

Privacy: nothing here logs; medspaCy/PyRuSH log through loguru, which is disabled for their
modules, and medspaCy's global `warnings.filterwarnings("ignore")` on import is kept inside
`warnings.catch_warnings()` (library.py). Matches go to span groups, not `doc.ents`, so spaCy
never warns with a span's text. Findings (with snippets) stay in memory only.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .durations import onset_of
from .nlp import build_pipeline
from .rules import EXCLUDE, RuleSet, load_rules
from .spans import (  # noqa: F401  (SNIPPET_LIMIT re-exported)
    DURATION_GROUP,
    GRAPH_EXTENSION,
    MODIFIERS_EXTENSION,
    RULE_EXTENSION,
    SECTIONS_EXTENSION,
    SNIPPET_LIMIT,
    SPAN_GROUP,
    snippet,
)
from .spans import Sentences as _Sentences
from .spans import modifiers_of as _modifiers_of

CACHE_SIZE = 1024
# Short texts' prefilter verdicts, remembered (the verdict depends on the text alone): at
# N = 300 the prefilter was 13 % of reading the record, for 50 distinct texts among 218.
VERDICTS_KEPT, SHORT_TEXT_CHARS = 16384, 256
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")


@dataclass(frozen=True)
class TextFinding:
    group: str  # a fact group: the value-set group names, 'qualifying-episode', 'duration', 'conservative-care'
    assertion: str  # affirmed | negated | historical | hypothetical | other-person | uncertain
    snippet: str  # <= 120 characters around the match (whole words, '…' where cut), for the card to quote
    start: int  # character offsets of the match in the text given
    end: int
    onset: date | None = None  # group 'duration' only: the onset this duration implies


class TextReader:
    """Reads clinical free text. Build once (the pipeline is built here); `read` is thread-safe."""

    def __init__(self, rules_dir: Path | None = None, cache_size: int = CACHE_SIZE):
        self.rules: RuleSet = load_rules(rules_dir)
        self._nlp = build_pipeline(self.rules)
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, tuple[TextFinding, ...]] = OrderedDict()
        self._cache_size = cache_size
        # The prefilter's verdict on a short text (an Observation's name and value, a medicine's
        # display), remembered: a record repeats them, and the EHR its calls.
        self._short_might_match = functools.lru_cache(maxsize=VERDICTS_KEPT)(self._scan)
        # One Aho-Corasick pass for the prefilter's words instead of a substring test per word: an
        # Observation's short text is checked against hundreds of words (records hold thousands).
        self._prefilter = _automaton_of(self.rules.trigger_words)
        self._trigger_regex = self.rules.trigger_regex
        self._precedence = {name: rank for rank, name in enumerate(self.rules.precedence)}
        durations = self.rules.durations
        self._anchor_words = frozenset(a.lower() for a in durations.get("anchors", ()))
        self._anchor_groups = frozenset(durations.get("anchor_groups", ()))
        self._not_anchoring = frozenset(durations.get("not_anchoring_groups", ()))
        self._compiled: dict[str, re.Pattern] = {}
        for spec in self.rules.targets:
            if spec.kind and isinstance(spec.pattern, str):
                self._compiled[spec.literal] = re.compile(spec.pattern, re.IGNORECASE)

    # ------------------------------------------------------------------ public
    def read(self, text: str, written_on: date | None) -> tuple[TextFinding, ...]:
        if not text or not self.might_match(text):
            return ()
        key = hashlib.sha256(
            text.encode("utf-8", "surrogatepass") + b"\x00" + (written_on.isoformat().encode() if written_on else b"-")
        ).digest()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
            findings = self._read(text, written_on)
            self._cache[key] = findings
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return findings

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()
        self._short_might_match.cache_clear()

    def might_match(self, text: str) -> bool:
        """The keyword prefilter: False means no rule can match (the pipeline is skipped). The
        verdict on a text of at most SHORT_TEXT_CHARS characters is remembered."""
        return self._short_might_match(text) if len(text) <= SHORT_TEXT_CHARS else self._scan(text)

    def _scan(self, text: str) -> bool:
        if self._prefilter is not None and next(self._prefilter.iter(text.lower()), None) is not None:
            return True
        return bool(self._trigger_regex and self._trigger_regex.search(text))

    # ------------------------------------------------------------------ internals
    def _read(self, text: str, written_on: date | None) -> tuple[TextFinding, ...]:
        doc = self._nlp(text)
        try:
            return self._findings(doc, text, written_on)
        finally:
            # The extension values (ConText graph, sections, the matchers' per-Doc indexes) live in
            # doc.user_data and point back at the Doc: cleared, the Doc is freed at once instead of
            # by the cyclic garbage collector (which cost ~15 % of a long read).
            doc.user_data.clear()

    def _findings(self, doc, text: str, written_on: date | None) -> tuple[TextFinding, ...]:
        # (span, rule spec) pairs, each span's extension attribute read once (they are not free)
        targets = _with_specs(doc.spans.get(SPAN_GROUP, ()))
        durations = _with_specs(doc.spans.get(DURATION_GROUP, ()))
        if not targets and not durations:
            return ()
        by_position = lambda pair: (pair[0].start, pair[0].end)  # noqa: E731
        targets.sort(key=by_position)
        sents = _Sentences.of(doc)
        sections = list(doc._.get(SECTIONS_EXTENSION) or [])
        section_starts = [sec.section_span[0] for sec in sections]
        graph = doc._.get(GRAPH_EXTENSION)
        findings: list[TextFinding] = []
        seen: set[tuple] = set()
        for span, spec in sorted(targets + durations, key=by_position):
            index = sents.index(span.start)
            if spec.kind is not None and not self._duration_anchored(span, targets, sents, index):
                continue
            modifiers = span._.get(MODIFIERS_EXTENSION) if spec.kind is None else _modifiers_of(graph, span)
            categories = {m.category for m in modifiers}
            assertion = self._assertion(categories, spec.assertion)
            answered = self._answer(sents, index)
            if answered is not None and assertion in ("affirmed", "uncertain"):
                assertion = answered
            sent_start_char, sent_end_char = sents.chars(index)
            quote = None
            for group in (spec.group, *spec.also):
                final = _section_effect(self.rules, doc, text, span, group, assertion, categories, sections,
                                        section_starts)
                key = (group, final, span.start_char, span.end_char)
                if key in seen:
                    continue
                seen.add(key)
                onset = None
                if spec.kind is not None and final in ("affirmed", "historical"):
                    match = self._compiled[spec.literal].search(span.text)
                    onset = onset_of(spec.kind, match, written_on, self.rules.durations) if match else None
                if quote is None:
                    quote = snippet(text, span.start_char, span.end_char, sent_start_char, sent_end_char)
                findings.append(TextFinding(group, final, quote, span.start_char, span.end_char, onset))
        return tuple(findings)

    def _assertion(self, categories: set[str], intrinsic: str | None) -> str:
        candidates = [self.rules.assertion_of_category[c] for c in categories if c in self.rules.assertion_of_category]
        if intrinsic is not None:
            candidates.append(intrinsic)
        cancelled = {name for c in categories for name in self.rules.cancels.get(c, ())}
        candidates = [c for c in candidates if c != "affirmed" and c not in cancelled]
        if not candidates:
            return "affirmed"
        return min(candidates, key=lambda name: self._precedence[name])

    def _answer(self, sents: _Sentences, index: int) -> str | None:
        """'Significant fall? Denies.': the assertion of a one-word answer sentence after a question."""
        if not sents.is_question(index) or index + 1 >= len(sents):
            return None
        return self.rules.question_answers.get(sents.words(index + 1))

    def _duration_anchored(self, span, targets, sents: _Sentences, index: int) -> bool:
        """A duration counts when its sentence has a symptom anchor and its nearest match is not care."""
        sent_start, sent_end = sents.tokens(index)
        best_distance, best_is_care, anchored = None, False, False
        for token in sents.doc[sent_start:sent_end]:
            if token.lower_ in self._anchor_words and not (span.start <= token.i < span.end):
                anchored = True
                distance = span.start - token.i if token.i < span.start else token.i - span.end + 1
                if best_distance is None or distance < best_distance:
                    best_distance, best_is_care = distance, False
        for other, spec in targets:
            if other.start < sent_start or other.end > sent_end:
                continue
            group = spec.group
            is_care = group in self._not_anchoring
            if group in self._anchor_groups:
                anchored = True
            elif not is_care:
                continue
            distance = span.start - other.end + 1 if other.end <= span.start else other.start - span.end + 1
            distance = max(distance, 0)
            if best_distance is None or distance < best_distance or (distance == best_distance and is_care):
                best_distance, best_is_care = distance, is_care
        return anchored and not best_is_care


def _with_specs(group) -> list:
    """(span, spec) for each span of a span group whose rule is not an `exclude` rule."""
    pairs = []
    for span in group:
        spec = span._.get(RULE_EXTENSION).spec
        if spec.category != EXCLUDE:
            pairs.append((span, spec))
    return pairs


def _section_effect(rules, doc, text, span, group, assertion, categories, sections, section_starts) -> str:
    """The assertion a section gives (Family History -> other-person, return precautions -> hypothetical)."""
    if not sections:
        return assertion
    index = bisect.bisect_right(section_starts, span.start) - 1
    if index < 0:
        return assertion
    section = sections[index]
    effect = rules.section_effects.get(section.category or "")
    if not effect or span.start >= section.section_span[1]:
        return assertion
    if effect.get("groups") and group not in effect["groups"]:
        return assertion
    if assertion not in effect.get("replaces", ()):
        return assertion
    if effect.get("unless_modifier") and effect["unless_modifier"].upper() in categories:
        return assertion
    if rules.stop_section_at_blank_line:
        body_start = doc[section.body_span[0]].idx if section.body_span[0] < len(doc) else len(text)
        if _BLANK_LINE.search(text, body_start, span.start_char):
            return assertion
    return effect["assertion"]


_DEFAULT: TextReader | None = None
_DEFAULT_LOCK = threading.Lock()


def default_reader() -> TextReader:
    """One process-wide reader with the packaged rules (built on first use, ~1 s)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = TextReader()
        return _DEFAULT


def _automaton_of(words):
    """An Aho-Corasick automaton (pyahocorasick) of the non-empty `words`, or None."""
    import ahocorasick

    words = sorted({w for w in words if w})
    if not words:
        return None
    automaton = ahocorasick.Automaton()
    for word in words:
        automaton.add_word(word, word)
    automaton.make_automaton()
    return automaton
