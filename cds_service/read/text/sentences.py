"""Rule-based sentence splitter for clinical notes (spaCy component 'lumbar_text_sentences').

Role in the data flow: the second step of the reader's pipeline, after medspaCy's tokenizer; ConText
scopes stop at the sentences it marks. spaCy's own Sentencizer only splits on punctuation, and notes
are made of lines (review-of-systems templates, problem lists), so a line break also ends a sentence.

Sentence starts: the first token; the first token after '.', '!', a '?' that closes a word and is
followed by a space ('Any retention? No.'; '?CES' and ': ? cauda equina' do not split); the first token
after a line break; a capitalised word or a number after a word that kept its period ('900 mL.
Denies', since medspaCy's tokenizer leaves 'mL.' whole) unless that word is a title or abbreviation
('Dr. Smith'); not after a period split off a dotted abbreviation unless a capital follows ('5 mg p.o.
daily'). Space tokens never start a sentence. Vectorised over the token array (no Python
loop over tokens).
"""

from __future__ import annotations

import numpy
from spacy.attrs import IS_DIGIT, IS_PUNCT, IS_SPACE, IS_TITLE, IS_UPPER, ORTH, SENT_START, SPACY
from spacy.language import Language

ABBREVIATIONS = frozenset({
    "dr.", "mr.", "mrs.", "ms.", "prof.", "st.", "vs.", "v.", "e.g.", "i.e.", "approx.", "no.", "fig.", "jr.", "sr.",
    "dept.", "ave.", "mt.", "cf.", "etc.", "ca.", "c.", "pt.", "pts.", "hx.", "dx.", "tx.", "rx.", "sx.",
})


_NEWLINE, _DOTTED, _INNER = 1, 2, 3
# the kind of each word seen (by its ORTH hash, which names one string for good): 0 for most words,
# so a note's words are classified once per process, not once per note
_KINDS: dict[int, int] = {}


def _kind(text: str) -> int:
    if "\n" in text and text.isspace():
        return _NEWLINE
    if len(text) > 1 and text.endswith(".") and text[-2] != "." and text.lower() not in ABBREVIATIONS:
        return _DOTTED
    if "." in text[1:-1] and text[0].isalpha():
        return _INNER
    return 0


@Language.component("lumbar_text_sentences")
def lumbar_text_sentences(doc):
    n = len(doc)
    if n == 0:
        return doc
    arr = doc.to_array([ORTH, IS_SPACE, SPACY, IS_PUNCT, IS_TITLE, IS_UPPER, IS_DIGIT]).reshape(n, 7)  # uint64
    orth, space, trailing, punct = arr[:, 0], arr[:, 1] == 1, arr[:, 2] == 1, arr[:, 3] == 1
    capital = (arr[:, 4] == 1) | (arr[:, 5] == 1) | (arr[:, 6] == 1)
    strings = doc.vocab.strings
    marks = {_NEWLINE: numpy.zeros(n, dtype=bool),
             _DOTTED: numpy.zeros(n, dtype=bool),  # a word that kept its final period ('mL.')
             _INNER: numpy.zeros(n, dtype=bool)}  # a dotted abbreviation whose last period was split off ('p.o' '.')
    for value in numpy.unique(orth).tolist():
        kind = _KINDS.get(value)
        if kind is None:
            kind = _KINDS[value] = _kind(strings[value])
        if kind:
            marks[kind] |= orth == value
    newline, dotted, inner = marks[_NEWLINE], marks[_DOTTED], marks[_INNER]
    period, bang, question_mark = (numpy.uint64(strings.add(t)) for t in (".", "!", "?"))
    next_capital = numpy.zeros(n, dtype=bool)
    next_capital[:-1] = capital[1:]
    after_abbreviation = numpy.zeros(n, dtype=bool)
    after_abbreviation[1:] = inner[:-1]
    ends = ((orth == period) & ~(after_abbreviation & ~next_capital)) | (orth == bang) | newline
    before_ok = numpy.zeros(n, dtype=bool)
    before_ok[1:] = ~trailing[:-1] & ~punct[:-1]
    ends |= (orth == question_mark) & before_ok & trailing
    significant = ~space | newline
    index = numpy.where(significant, numpy.arange(n), -1)
    previous = numpy.empty(n, dtype=numpy.int64)
    previous[0] = -1
    previous[1:] = numpy.maximum.accumulate(index)[:-1]
    start = numpy.where(previous < 0, True, ends[numpy.maximum(previous, 0)])
    start |= (previous >= 0) & dotted[numpy.maximum(previous, 0)] & capital & trailing[numpy.maximum(previous, 0)]
    start &= ~space
    start[0] = True
    doc.from_array([SENT_START], numpy.where(start, 1, -1).astype(numpy.uint64).reshape(n, 1))
    return doc
