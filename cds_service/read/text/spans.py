"""Spans of a parsed note: the sentence table, the ConText modifiers of a non-target span, and the
<= 120 character snippet a card may quote.

Role in the data flow: helpers of the free-text reader (reader.py), read stage, and the names of
the span groups and extension attributes its pipeline fills (kept here so that importing the
reader does not import spaCy). Pure functions of a spaCy Doc / the text; nothing is logged.
"""

from __future__ import annotations

import bisect
import re

SNIPPET_LIMIT = 120
# Where the pipeline's steps put their results (nlp.py): span groups and extension attributes
SPAN_GROUP = "lumbar_text_targets"  # findings (components.TargetStep)
DURATION_GROUP = "lumbar_text_durations"  # duration phrases (components.TargetStep)
RULE_EXTENSION = "lumbar_rule"  # Span: the components.MatchRule that matched it
SECTIONS_EXTENSION = "lumbar_sections"  # Doc: medspaCy Sections (components.SectionStep)
MODIFIERS_EXTENSION = "lumbar_modifiers"  # Span: its ConText modifiers (context.ContextStep)
GRAPH_EXTENSION = "lumbar_context"  # Doc: the ConText graph (context.ContextStep)
_WS = re.compile(r"\s+")


def modifiers_of(graph, span):
    """The ConText modifiers of a span that was not a ConText target (durations)."""
    if graph is None:
        return ()
    return tuple(
        m for m in graph.modifiers
        if m.scope_span[0] < span.end and span.start < m.scope_span[1] and m.modifies(span)
    )


_TABLE_KEY = "lumbar_text_sentences"


class Sentences:
    """Sentence table of a Doc: token and character bounds, looked up by token index. One per Doc
    (`Sentences.of`), shared by the regex scan, ConText's scopes and the reader."""

    def __init__(self, doc):
        self.doc = doc
        self._bounds = [(s.start, s.end, s.start_char, s.end_char) for s in doc.sents]
        self._starts = [b[0] for b in self._bounds]
        self.token_ends = [b[1] for b in self._bounds]
        self.char_starts = [b[2] for b in self._bounds]
        self.char_ends = [b[3] for b in self._bounds]
        self._questions: dict[int, bool] = {}

    @classmethod
    def of(cls, doc) -> Sentences:
        """The Doc's table, built on first use and kept in doc.user_data (which the reader clears)."""
        table = doc.user_data.get(_TABLE_KEY)
        if table is None or table.doc is not doc:
            table = doc.user_data[_TABLE_KEY] = cls(doc)
        return table

    @property
    def token_starts(self) -> list[int]:
        return self._starts

    def __len__(self) -> int:
        return len(self._bounds)

    def index(self, token_index: int) -> int:
        return max(0, bisect.bisect_right(self._starts, token_index) - 1)

    def tokens(self, index: int) -> tuple[int, int]:
        return self._bounds[index][0], self._bounds[index][1]

    def chars(self, index: int) -> tuple[int, int]:
        return self._bounds[index][2], self._bounds[index][3]

    def is_question(self, index: int) -> bool:
        known = self._questions.get(index)
        if known is None:
            known = False
            start, end = self.tokens(index)
            for i in range(end - 1, start - 1, -1):
                token = self.doc[i]
                if not token.is_space:
                    known = token.text == "?"
                    break
            self._questions[index] = known
        return known

    def words(self, index: int) -> str:
        start, end = self.tokens(index)
        return " ".join(t.lower_ for t in self.doc[start:end] if not (t.is_punct or t.is_space))


def snippet(text: str, start: int, end: int, sent_start: int, sent_end: int, limit: int = SNIPPET_LIMIT) -> str:
    """The sentence around text[start:end] when it fits in `limit` characters, else a window of whole
    words around the match inside that sentence, with '…' where it was cut. Whitespace collapsed."""
    lo, hi = sent_start, sent_end
    while lo < start and text[lo].isspace():
        lo += 1
    while hi > end and text[hi - 1].isspace():
        hi -= 1
    whole = _WS.sub(" ", text[lo:hi]).strip()
    if len(whole) <= limit:
        return whole
    match = _WS.sub(" ", text[start:end]).strip()
    if len(match) >= limit - 2:
        cut = match[: limit - 1]
        if " " in cut[limit // 2:]:
            cut = cut[: cut.rfind(" ")]
        return cut.rstrip() + "…"
    budget = limit - 2 - len(match)
    left = max(lo, start - budget // 2)
    right = min(hi, end + (budget - (start - left)))
    left = max(lo, start - (budget - (right - end)))
    while True:
        pieces = []
        cut_left = left > lo
        cut_right = right < hi
        a, b = left, right
        if cut_left and not text[a - 1].isspace():
            while a < start and not text[a].isspace():
                a += 1
        if cut_right and not text[b].isspace():
            while b > end and not text[b - 1].isspace():
                b -= 1
        body = _WS.sub(" ", text[a:b]).strip()
        if cut_left:
            pieces.append("…")
        pieces.append(body)
        if cut_right:
            pieces.append("…")
        result = "".join(pieces)
        if len(result) <= limit or (left >= start and right <= end):
            return result[:limit]
        # shrink the longer side by a few characters and try again
        if start - left > right - end:
            left = min(start, left + 4)
        else:
            right = max(end, right - 4)
