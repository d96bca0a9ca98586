"""Where the rules' required substrings occur in a note, found once per Doc for every matcher
(spaCy component 'lumbar_text_index'), and which sentences a matcher needs to search.

Role in the data flow: the step of the reader's pipeline after the sentence splitter; the
matchers of the later steps (matching.RuleMatcher) ask the Doc's `TextIndex` which ranges of the
text a regular expression has to search. Only work is skipped, never a match (the tests compare
the findings with and without):
- a regular expression whose rule `requires` substrings (declared in the rule data; one of them is
  in every match) is not run on a text that has none of them, and otherwise only on the sentences
  that contain one (a rule match never spans two sentences). The text is scanned once for all those
  strings (600 of them) with one Aho-Corasick automaton (pyahocorasick), built when the pipeline is;
- a `Restriction`: ConText runs only on the sentences that hold a finding (a modifier's scope never
  leaves its sentence, so a modifier elsewhere can modify nothing), the duration matcher only on
  those that hold a finding or a symptom anchor word (a duration counts only there, reader.py);
- a pattern's leading words (leading.py) are indexed too and guard it like its `requires`.
A set of sentences is a bit mask (bit i: sentence i): a matcher ORs the masks of the strings
present into each pattern's mask and ANDs the guards and the restriction, and the character
ranges of a mask are worked out once per Doc (the patterns of a note share a few sentences).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from spacy.language import Language
from spacy.tokens import Doc

_EXTENSION = "lumbar_text_index"
if not Doc.has_extension(_EXTENSION):
    Doc.set_extension(_EXTENSION, default=None)


@dataclass(frozen=True)
class Restriction:
    """Search only the sentences that hold a span of one of `groups` or one of the case-folded
    `anchors` words (which must be strings of the index)."""

    groups: tuple[str, ...]
    anchors: frozenset[str] = frozenset()


def index_of(doc) -> TextIndex:
    index = doc._.get(_EXTENSION)
    if index is None:
        raise ValueError("the 'lumbar_text_index' step must run before the reader's matchers")
    return index


class TextIndex:
    """Per Doc: the text, where each indexed string occurs, and the sentences that contain it."""

    def __init__(self, doc, automaton):
        from .spans import Sentences

        text = doc.text_with_ws
        self.doc = doc
        self.text = text
        # an ASCII text lower-cased: offsets unchanged, for the case-free pattern twins (matching.py);
        # on ASCII, case-folding is lower-casing
        self.lowered = text.lower() if text.isascii() else None
        folded = self.lowered if self.lowered is not None else text.casefold()
        self.aligned = len(folded) == len(text)  # offsets in the folded text are offsets in the text
        self._allowed: dict[Restriction, frozenset[int] | None] = {}
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
        # each indexed string present -> the sentences holding it, as a bit mask (bit i: sentence i)
        masks: dict[str, int] = {}
        if automaton is not None:
            for end, string in automaton.iter(folded):
                sentence = bisect.bisect_right(starts, end - len(string) + 1) - 1
                masks[string] = masks.get(string, 0) | (1 << max(sentence, 0))
        self._masks = masks
        self.present = masks.keys()
        self.whole = [(0, len(text))]
        self.every = (1 << len(starts)) - 1
        self._set_masks: dict[frozenset[int], int] = {}
        self._ranges_of: dict[int, list[tuple[int, int]] | None] = {}

    def sentences_with(self, string: str) -> list[int]:
        mask, found, index = self._masks.get(string, 0), [], 0
        while mask:
            if mask & 1:
                found.append(index)
            mask >>= 1
            index += 1
        return found

    def allowed_sentences(self, restriction: Restriction | None) -> frozenset[int] | None:
        """The sentences a restricted matcher runs on; None: the whole text."""
        if restriction is None or not self.aligned or len(self.starts) < 2:
            return None
        if restriction not in self._allowed:
            from .spans import Sentences

            table = Sentences.of(self.doc)  # the same sentences as self.starts, by token
            chosen = {table.index(span.start) for group in restriction.groups
                      for span in self.doc.spans.get(group, ())}
            chosen.update(i for word in restriction.anchors for i in self.sentences_with(word))
            self._allowed[restriction] = frozenset(chosen)
        return self._allowed[restriction]

    def ranges(self, guards, whole_text: bool, allowed: frozenset[int] | None = None):
        """None: skip the pattern; else the (start, end) character ranges to search (the general
        way, for a whole-text matcher or a text whose case-folded form has other offsets)."""
        if allowed is not None and not allowed:
            return None
        if guards and self.present.isdisjoint(guards):
            return None
        if guards and (whole_text or not self.aligned):
            return self.whole
        mask = self.every if allowed is None else self.mask_of_set(allowed)
        if guards:
            mask &= self._mask_of_any(guards)
        return self.ranges_of_mask(mask)

    def ranges_of_mask(self, mask: int):
        """The character ranges of the sentences of a bit mask (None: none), once per Doc and mask."""
        found = self._ranges_of.get(mask)
        if found is None:
            found = self._ranges_of[mask] = self._merged(mask) if mask else None
        return found

    def mask_of(self, string: str) -> int:
        return self._masks.get(string, 0)

    def _mask_of_any(self, strings) -> int:
        mask = 0
        for string in strings:
            if string in self.present:
                mask |= self.mask_of(string)
        return mask

    def mask_of_set(self, sentences: frozenset[int]) -> int:
        mask = self._set_masks.get(sentences)
        if mask is None:
            mask = 0
            for index in sentences:
                mask |= 1 << index
            self._set_masks[sentences] = mask
        return mask

    def _merged(self, mask: int) -> list[tuple[int, int]]:
        """The character ranges of the sentences of a mask, adjacent ones joined; the whole text
        when they are more than half of the sentences."""
        if mask.bit_count() * 2 > len(self.starts):
            return self.whole
        ranges: list[list[int]] = []
        index = 0
        while mask:
            if mask & 1:
                start, end = self.starts[index], self.ends[index]
                if ranges and ranges[-1][1] >= start - 1:
                    ranges[-1][1] = max(ranges[-1][1], end)
                else:
                    ranges.append([start, end])
            mask >>= 1
            index += 1
        return [(start, end) for start, end in ranges]


@Language.factory("lumbar_text_index")
def make_text_index(nlp, name: str):
    return TextIndexStep()


class TextIndexStep:
    """The pipeline step that puts a `TextIndex` on each Doc (doc._.lumbar_text_index). The
    builder gives it every matcher's guard strings and the duration anchors (`index`), then
    `compile()` builds the automaton, once."""

    def __init__(self):
        self._strings: set[str] = set()
        self._automaton = None
        self.compiled = False

    def index(self, strings) -> None:
        self._strings.update(s.casefold() for s in strings)
        self.compiled = False

    def compile(self) -> None:
        import ahocorasick

        automaton = None
        if self._strings:
            automaton = ahocorasick.Automaton()
            for string in sorted(self._strings):
                automaton.add_word(string, string)
            automaton.make_automaton()
        self._automaton, self.compiled = automaton, True

    def __call__(self, doc):
        if not self.compiled:
            self.compile()
        doc._.set(_EXTENSION, TextIndex(doc, self._automaton))
        return doc
