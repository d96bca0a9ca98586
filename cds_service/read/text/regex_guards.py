"""Required substrings of a regular expression, for skipping it on texts that cannot match.

Role in the data flow: at pipeline build, the reader derives for every rule's regular expression a
set of lower-case (case-folded) strings such that every match contains at least one of them, and
registers it with the patched RegexMatcher (_regex_scan.GUARDS); at read time a pattern whose
strings are all absent from the case-folded text is not run. Most rules name words ('retention',
'numb', 'ago') that a given note does not contain, so most patterns are skipped.

Derivation, on the parse tree of the pattern (the standard library's regex parser):
- a run of literal characters is a required string, and so is a run of items that each match a few
  literal strings only ('3[89]' -> '38', '39'; the parser's factored alternations, 's(?:/p|tatus)',
  -> 's/p', 'status'; an optional '(?:rees)?' -> '' or 'rees'), while the run's strings stay few;
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
from itertools import product

try:  # Python 3.11+
    import re._parser as _parser  # type: ignore[import-not-found]
    from re._constants import (  # type: ignore[import-not-found]
        BRANCH,
        IN,
        LITERAL,
        MAX_REPEAT,
        MIN_REPEAT,
        POSSESSIVE_REPEAT,
        RANGE,
        SUBPATTERN,
    )
except ImportError:  # pragma: no cover - older interpreters
    import sre_parse as _parser  # type: ignore[no-redef]
    from sre_constants import (  # type: ignore[no-redef]
        BRANCH,
        IN,
        LITERAL,
        MAX_REPEAT,
        MIN_REPEAT,
        RANGE,
        SUBPATTERN,
    )

    POSSESSIVE_REPEAT = None

MIN_LENGTH = 2
MAX_SET = 64
MAX_CLASS = 8  # a character class of at most this many literal characters is a few strings
_REPEATS = {MAX_REPEAT, MIN_REPEAT} | ({POSSESSIVE_REPEAT} if POSSESSIVE_REPEAT is not None else set())


def _better(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if (min(map(len, a)), -len(a)) >= (min(map(len, b)), -len(b)) else b


def _finite(op, arg) -> frozenset[str] | None:
    """The strings an item matches when they are a few literal strings, else None."""
    if op is LITERAL:
        return frozenset([chr(arg)])
    if op is IN:
        chars: set[str] = set()
        for kind, value in arg:
            if kind is LITERAL:
                chars.add(chr(value))
            elif kind is RANGE and value[1] - value[0] < MAX_CLASS:
                chars.update(chr(c) for c in range(value[0], value[1] + 1))
            else:
                return None
        return frozenset(chars) if len(chars) <= MAX_CLASS else None
    if op is SUBPATTERN:
        return _finite_sequence(arg[-1])
    if op is BRANCH:
        union: set[str] = set()
        for branch in arg[1]:
            found = _finite_sequence(branch)
            if found is None:
                return None
            union |= found
        return frozenset(union) if len(union) <= MAX_SET else None
    if op in _REPEATS:
        low, high, item = arg
        found = _finite_sequence(item)
        if found is None or high > 1:
            return None
        return found | {""} if low == 0 else found
    return None


def _finite_sequence(items) -> frozenset[str] | None:
    strings = frozenset([""])
    for op, arg in items:
        found = _finite(op, arg)
        if found is None or len(strings) * len(found) > MAX_SET:
            return None
        strings = frozenset(a + b for a, b in product(strings, found))
    return strings


def _sequence(items, prefix: frozenset[str] = frozenset([""])) -> frozenset[str] | None:
    best: frozenset[str] | None = None
    run: frozenset[str] = prefix

    def flush():
        nonlocal best, run
        if min(map(len, run)) >= MIN_LENGTH:
            best = _better(best, frozenset(r.casefold() for r in run))
        run = frozenset([""])

    for op, arg in items:
        found = _finite(op, arg)
        if found is not None and len(run) * len(found) <= MAX_SET:
            run = frozenset(a + b for a, b in product(run, found))
            continue
        if op is BRANCH and run != frozenset([""]):
            # the run goes in front of every alternative: 's(?:/p|tatus\s+post)' -> 's/p', 'status'
            best = _better(best, _branch(arg, run))
        flush()
        best = _better(best, _item(op, arg))
    flush()
    return best


def _branch(arg, prefix: frozenset[str]) -> frozenset[str] | None:
    union: set[str] = set()
    for branch in arg[1]:
        found = _sequence(branch, prefix)
        if not found:
            return None
        union |= found
    return frozenset(union) if len(union) <= MAX_SET else None


def _item(op, arg) -> frozenset[str] | None:
    if op is SUBPATTERN:
        return _sequence(arg[-1])
    if op is BRANCH:
        return _branch(arg, frozenset([""]))
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
