"""Required substrings of a regular expression, for skipping it on texts that cannot match.

Role in the data flow: at pipeline build, the reader derives for every rule's regular expression a
set of lower-case (case-folded) strings such that every match contains at least one of them, and
registers it with the patched RegexMatcher (_medspacy_fixes.GUARDS); at read time a pattern whose
strings are all absent from the case-folded text is not run. Most rules name words ('retention',
'numb', 'ago') that a given note does not contain, so most patterns are skipped.

Derivation, on the parse tree of the pattern (the standard library's regex parser):
- a run of literal characters is a required string;
- a sequence of items requires what its most selective item requires (the item whose shortest
  string is longest);
- an alternation requires the union of its branches' sets, or nothing if one branch requires nothing;
- a group requires what its content requires; a repeat with minimum >= 1 what its item requires;
- character classes, '.', anchors and lookarounds require nothing.
The result is None when nothing is required (the pattern always runs). Strings shorter than
MIN_LENGTH are not worth checking, and neither are sets larger than MAX_SET.
"""

from __future__ import annotations

import re

try:  # Python 3.11+
    import re._parser as _parser  # type: ignore[import-not-found]
    from re._constants import (  # type: ignore[import-not-found]
        BRANCH,
        LITERAL,
        MAX_REPEAT,
        MIN_REPEAT,
        POSSESSIVE_REPEAT,
        SUBPATTERN,
    )
except ImportError:  # pragma: no cover - older interpreters
    import sre_parse as _parser  # type: ignore[no-redef]
    from sre_constants import BRANCH, LITERAL, MAX_REPEAT, MIN_REPEAT, SUBPATTERN  # type: ignore[no-redef]

    POSSESSIVE_REPEAT = None

MIN_LENGTH = 2
MAX_SET = 64
_REPEATS = {MAX_REPEAT, MIN_REPEAT} | ({POSSESSIVE_REPEAT} if POSSESSIVE_REPEAT is not None else set())


def _better(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if (min(map(len, a)), -len(a)) >= (min(map(len, b)), -len(b)) else b


def _sequence(items) -> frozenset[str] | None:
    best: frozenset[str] | None = None
    run: list[str] = []

    def flush():
        nonlocal best, run
        if len(run) >= MIN_LENGTH:
            best = _better(best, frozenset(["".join(run).casefold()]))
        run = []

    for op, arg in items:
        if op is LITERAL:
            run.append(chr(arg))
            continue
        flush()
        best = _better(best, _item(op, arg))
    flush()
    return best


def _item(op, arg) -> frozenset[str] | None:
    if op is SUBPATTERN:
        return _sequence(arg[-1])
    if op is BRANCH:
        union: set[str] = set()
        for branch in arg[1]:
            found = _sequence(branch)
            if not found:
                return None
            union |= found
        return frozenset(union) if len(union) <= MAX_SET else None
    if op in _REPEATS:
        low, _high, item = arg
        return _sequence(item) if low >= 1 else None
    return None


def required_strings(pattern: str) -> tuple[str, ...] | None:
    """Case-folded strings one of which every match of `pattern` contains, or None."""
    try:
        tree = _parser.parse(pattern, re.IGNORECASE)
    except re.error:
        return None
    found = _sequence(list(tree))
    if not found or min(map(len, found)) < MIN_LENGTH:
        return None
    return tuple(sorted(found))
