"""The free-text reader: clinical note text -> red-flag, episode, duration and care findings.

Role in the data flow: a stand-alone stage of cds_service/read ("FHIR records -> pathway inputs"). The
caller hands it the text of a note (for attachments, via `attachment_text`) and the note's date; it
returns `TextFinding`s, each a fact group (the value-set group names), an assertion, a <= 120
character snippet for the card to quote, the character offsets, and for durations the onset date.

Engine: a medspaCy pipeline built once per `TextReader` (the slow part, ~1 s with the import):
medspaCy's clinical tokenizer; a rule-based sentence splitter (sentence ends, line breaks; spaCy's
Sentencizer ignores line breaks, PyRuSH costs ~50 ms per 2 KB note here); medspaCy's TargetMatcher with the group rules
of textrules/*.json (phrases, token patterns and regular expressions; the longest overlapping match
wins, so an `exclude` phrase silences a shorter one); ConText (Chapman et al.) with the modifier rules
of textrules/context.json; the Sectionizer with textrules/sections.json. The reader then maps
modifier categories to one assertion by precedence (other-person > hypothetical > negated >
uncertain > historical > affirmed), applies section effects (Family History -> other-person, return
precautions -> hypothetical, ...) and parses durations (durations.py).

Speed: a keyword prefilter (no trigger word of any rule -> no pipeline, ()) and an in-process LRU
cache keyed by sha256(text, written_on): a repeated read is a dictionary look-up.

Privacy: nothing here logs; medspaCy/PyRuSH log through loguru, which is disabled for their
modules at build time, and medspaCy's global `warnings.filterwarnings("ignore")` on import is undone
(the process's warning filters are restored). Matches go to span groups, not `doc.ents`, so spaCy
never warns with a span's text. Findings (with snippets) stay in memory only.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .durations import onset_of
from .rules import EXCLUDE, RuleSet, expand_token_pattern, load_rules
from .spans import SNIPPET_LIMIT, snippet  # noqa: F401  (SNIPPET_LIMIT re-exported)
from .spans import Sentences as _Sentences
from .spans import modifiers_of as _modifiers_of

CACHE_SIZE = 1024
SPAN_GROUP = "lumbar_text_targets"
DURATION_GROUP = "lumbar_text_durations"
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")


@dataclass(frozen=True)
class TextFinding:
    group: str  # a fact group: the value-set group names, 'qualifying-episode', 'duration', 'conservative-care'
    assertion: str  # affirmed | negated | historical | hypothetical | other-person | uncertain
    snippet: str  # <= 120 characters around the match (whole words, '…' where cut), for the card to quote
    start: int  # character offsets of the match in the text given
    end: int
    onset: date | None = None  # group 'duration' only: the onset this duration implies


def _silence_library_logging() -> None:
    try:
        from loguru import logger
    except ImportError:  # pragma: no cover - loguru comes with PyRuSH
        return
    for name in ("PyRuSH", "medspacy", "quickumls", "PyFastNER"):
        logger.disable(name)


def _import_medspacy():
    saved = list(warnings.filters)
    try:
        import medspacy  # noqa: F401  (registers the medspacy_* factories)
        from medspacy.context import ConTextRule
        from medspacy.section_detection import SectionRule
        from medspacy.target_matcher import TargetRule
    finally:
        warnings.filters[:] = saved
        warnings._filters_mutated()  # type: ignore[attr-defined]
    _silence_library_logging()
    from . import _medspacy_fixes

    _medspacy_fixes.apply()
    return medspacy, TargetRule, ConTextRule, SectionRule


def _register_sentence_splitter():
    from . import sentences  # noqa: F401  (registers the 'lumbar_text_sentences' component)


def _target_rules(TargetRule, spec):
    expanded = expand_token_pattern(spec.pattern)
    if expanded is None:
        return [TargetRule(literal=spec.literal, category=spec.category, pattern=spec.pattern,
                           metadata={"spec": spec, "exact": None})]
    phrases, exact = expanded
    return [TargetRule(literal=p, category=spec.category, metadata={"spec": spec, "exact": exact}) for p in phrases]


def _context_rules(ConTextRule, rule):
    expanded = expand_token_pattern(rule.get("pattern"))
    if expanded is None or expanded[1] is not None:
        return [ConTextRule(**rule)]
    rest = {k: v for k, v in rule.items() if k not in ("literal", "pattern")}
    return [ConTextRule(literal=p, **rest) for p in expanded[0]]


def _section_rules(SectionRule, rule):
    expanded = expand_token_pattern(rule.get("pattern"))
    if expanded is None or expanded[1] is not None:
        return [SectionRule.from_dict(rule)]
    return [SectionRule(literal=p, category=rule["category"]) for p in expanded[0]]


def _register_case_filter():
    from spacy.language import Language

    if "lumbar_text_case_filter" in Language.factories:
        return

    @Language.component("lumbar_text_case_filter")
    def lumbar_text_case_filter(doc):
        """Drop phrase matches of case-sensitive rules ('CES', 'PT', 'HIV') whose spelling differs
        ('pt' is the patient), before ConText sees them."""
        if SPAN_GROUP in doc.spans:
            group = doc.spans[SPAN_GROUP]
            kept = [s for s in group
                    if not (exact := s._.target_rule.metadata.get("exact")) or "".join(s.text.split()) in exact]
            if len(kept) != len(group):
                doc.spans[SPAN_GROUP] = kept
        return doc


class TextReader:
    """Reads clinical free text. Build once (the pipeline is built here); `read` is thread-safe."""

    def __init__(self, rules_dir: Path | None = None, cache_size: int = CACHE_SIZE):
        self.rules: RuleSet = load_rules(rules_dir)
        medspacy, TargetRule, ConTextRule, SectionRule = _import_medspacy()
        _register_sentence_splitter()
        from . import _medspacy_fixes
        from .regex_guards import required_strings

        patterns = [t.pattern for t in self.rules.targets] + [r.get("pattern") for r in self.rules.context_rules]
        for pattern in [r.get("pattern") for r in self.rules.section_rules]:
            if isinstance(pattern, str):
                _medspacy_fixes.WHOLE_TEXT.add(pattern)  # headers are found on the whole text, not per sentence
        patterns += [r.get("pattern") for r in self.rules.section_rules]
        for pattern in patterns:
            if isinstance(pattern, str) and pattern not in _medspacy_fixes.GUARDS:
                guards = required_strings(pattern)
                if guards:
                    _medspacy_fixes.GUARDS[pattern] = guards
        saved = list(warnings.filters)
        try:
            nlp = medspacy.load(medspacy_enable=["medspacy_tokenizer"])
            nlp.add_pipe("lumbar_text_sentences")
            matcher = nlp.add_pipe(
                "medspacy_target_matcher", config={"result_type": "group", "span_group_name": SPAN_GROUP}
            )
            _register_case_filter()
            nlp.add_pipe("lumbar_text_case_filter")
            # Durations get their own matcher (span group DURATION_GROUP) and are not ConText targets, so
            # that a duration phrase ('3 years ago', 'since 2019') neither knocks out a finding nor
            # swallows the temporal modifier that makes that finding historical; their assertion is
            # read from the same ConText graph afterwards (_modifiers_of).
            durations = nlp.add_pipe(
                "medspacy_target_matcher",
                name="lumbar_text_durations",
                config={"result_type": "group", "span_group_name": DURATION_GROUP},
            )
            matcher.add([r for s in self.rules.targets if s.kind is None for r in _target_rules(TargetRule, s)])
            durations.add([r for s in self.rules.targets if s.kind is not None for r in _target_rules(TargetRule, s)])
            context = nlp.add_pipe(
                "medspacy_context",
                config={
                    "rules": None,
                    "span_attrs": None,
                    "prune_on_target_overlap": True,
                    "input_span_type": "group",
                    "span_group_name": SPAN_GROUP,
                },
            )
            context.add([r for rule in self.rules.context_rules for r in _context_rules(ConTextRule, rule)])
            sectionizer = nlp.add_pipe(
                "medspacy_sectionizer", config={"rules": None, "span_attrs": None, "input_span_type": "group",
                                                "span_group_name": SPAN_GROUP}
            )
            sectionizer.add([r for rule in self.rules.section_rules for r in _section_rules(SectionRule, rule)])
        finally:
            warnings.filters[:] = saved
            warnings._filters_mutated()  # type: ignore[attr-defined]
        self._nlp = nlp
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, tuple[TextFinding, ...]] = OrderedDict()
        self._cache_size = cache_size
        self._words = self.rules.trigger_words
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

    def might_match(self, text: str) -> bool:
        """The keyword prefilter: False means no rule can match (the pipeline is skipped)."""
        low = text.lower()
        for word in self._words:
            if word in low:
                return True
        return bool(self._trigger_regex and self._trigger_regex.search(text))

    # ------------------------------------------------------------------ internals
    def _read(self, text: str, written_on: date | None) -> tuple[TextFinding, ...]:
        doc = self._nlp(text)
        spans = [s for s in doc.spans.get(SPAN_GROUP, ()) if s._.target_rule.category != EXCLUDE]
        duration_spans = [s for s in doc.spans.get(DURATION_GROUP, ()) if s._.target_rule.category != EXCLUDE]
        if not spans and not duration_spans:
            return ()
        spans.sort(key=lambda s: (s.start, s.end))
        sents = _Sentences(doc)
        sections = list(getattr(doc._, "sections", None) or [])
        section_starts = [sec.section_span[0] for sec in sections]
        graph = doc._.context_graph
        findings: list[TextFinding] = []
        seen: set[tuple] = set()
        for span in sorted(spans + duration_spans, key=lambda s: (s.start, s.end)):
            spec = span._.target_rule.metadata.get("spec")
            if spec is None or spec.category == EXCLUDE:
                continue
            index = sents.index(span.start)
            if spec.kind is not None and not self._duration_anchored(span, spans, sents, index):
                continue
            modifiers = span._.modifiers if spec.kind is None else _modifiers_of(graph, span)
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

    def _duration_anchored(self, span, spans, sents: _Sentences, index: int) -> bool:
        """A duration counts when its sentence has a symptom anchor and its nearest match is not care."""
        sent_start, sent_end = sents.tokens(index)
        best_distance, best_is_care, anchored = None, False, False
        for token in sents.doc[sent_start:sent_end]:
            if token.lower_ in self._anchor_words and not (span.start <= token.i < span.end):
                anchored = True
                distance = span.start - token.i if token.i < span.start else token.i - span.end + 1
                if best_distance is None or distance < best_distance:
                    best_distance, best_is_care = distance, False
        for other in spans:
            if other.start < sent_start or other.end > sent_end:
                continue
            group = other._.target_rule.metadata["spec"].group
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
