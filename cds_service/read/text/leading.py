"""The literal words every match of a regular expression begins with, read from the pattern text.

Role in the data flow: part of the free-text reader's pipeline (read stage). matching.RuleMatcher
uses these words as a second guard next to a rule's declared `requires`: on an ASCII text a
pattern runs only on the sentences holding one of its required substrings AND one of its leading
words (scan.TextIndex finds both with the same automaton). The declared substrings are often
common words ('pain', 'no'), the leading words of the same pattern rarer ones ('bilateral',
'b/l'), so a pattern is run far less often; no match is lost, because no match can start
without one of them. The test test_leading_words_hold_on_the_corpus checks them like `requires`.

Read only from a pattern of the form  [\\b] (?:alt|alt|...) rest  or  [\\b] literal rest,  with no
'|' outside a group: each alternative's literal start up to its first special character (a
character made optional by ? * or {..} is not counted), or, for an alternative that opens with a
group itself, the starts of that group's alternatives. Anything else - an optional group, inline
flags, look-behinds, classes first, a leading word shorter than three characters or not ASCII -
gives None (no guard).
"""

from __future__ import annotations

# escapes that stand for the character itself
_PLAIN_ESCAPES = frozenset("./-'&,:; ")
# characters of a literal run that are not special outside a class
_PLAIN_PUNCTUATION = frozenset(" /'-&,:;")
_QUANTIFIERS = frozenset("?*{")
MIN_LENGTH = 3


def _alternatives(source: str, start: int) -> tuple[list[str] | None, int]:
    """The top-level alternatives of the group that opens at source[start] ('(?:'), and the index
    after its ')'; None when the group does not close."""
    depth, i, in_class, parts, begin = 0, start, False, [], start + 3
    while i < len(source):
        char = source[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            i += source[i + 1:i + 2] == "^"
            i += source[i + 1:i + 2] == "]"  # a ']' first in a class is a literal
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                parts.append(source[begin:i])
                return parts, i + 1
        elif char == "|" and depth == 1:
            parts.append(source[begin:i])
            begin = i + 1
        i += 1
    return None, len(source)


def _literal_start(text: str) -> str:
    """The characters every match of `text` begins with (see the module docstring)."""
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            escaped = text[i + 1:i + 2]
            if escaped not in _PLAIN_ESCAPES or text[i + 2:i + 3] in _QUANTIFIERS:
                break
            out.append(escaped)
            i += 2
            continue
        if not (char.isalnum() or char in _PLAIN_PUNCTUATION) or text[i + 1:i + 2] in _QUANTIFIERS:
            break
        out.append(char)
        i += 1
    return "".join(out)


def _starts(text: str) -> list[str] | None:
    """The literal starts of a piece of pattern: its literal run, or those of its leading group's
    alternatives (nested groups too); None when a group is optional or does not close."""
    if not text.startswith("(?:"):
        return [_literal_start(text)]
    parts, after = _alternatives(text, 0)
    if parts is None or text[after:after + 1] in _QUANTIFIERS:
        return None
    words = []
    for part in parts:
        found = _starts(part)
        if found is None:
            return None
        words.extend(found)
    return words


def leading_words(source: str) -> tuple[str, ...] | None:
    """Case-folded literals one of which every match of the pattern begins with, or None."""
    whole, _ = _alternatives("(?:" + source + ")", 0)
    if whole is None or len(whole) > 1:  # a '|' outside any group: no common start
        return None
    words = _starts(source[2:] if source.startswith("\\b") else source)
    if not words or any(len(word) < MIN_LENGTH or not word.isascii() for word in words):
        return None
    return tuple(sorted({word.casefold() for word in words}))
