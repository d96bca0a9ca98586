"""Load and check the free-text rules (cds_service/rules/text/*.json).

Role in the data flow: read once by `TextReader.__init__` (at start-up); validates every file with
its model (schema.py) and turns the files into the `RuleSet` the pipeline and the reader use: the
target entries of every group, the ConText and section rules, the small tables the reader applies
itself (assertion precedence, section effects, duration parsing) and the prefilter's triggers.

Files (their keys: schema.py):
- one file per fact group (`<group>.json`, `group` equal to the file name): {group, description,
  source, triggers, trigger_patterns?, entries: [{literal, category, pattern?, requires?, also?,
  assertion?, exclude?}]}. `pattern` is a regular expression (a string, matched case-insensitively
  over the text) or a spaCy token pattern (a list); without it the literal is matched as a phrase
  (lower case). A regular expression lists in `requires` substrings one of which every match
  contains: it is searched only where one is (scan.py; tests/read/text/test_engine.py checks them
  on the corpus).
- durations.json: entries of group 'duration' with a `kind` for the onset parser.
- context.json: ConText modifier rules, the category -> assertion map and precedence, type sets.
- sections.json: section header rules and their effects.
- wordlists.json: word lists used by several rules, defined once: `@{name}` in a regular expression
  stands for `(?:word|word|...)` (each word a piece of regular expression), "@name" as the value
  of a token's "IN" for the list itself.

`triggers` (lower-case substrings) and `trigger_patterns` (regular expressions) feed the keyword
prefilter: a text that contains none of them skips the pipeline. Every entry with a `pattern` must
be covered by its file's triggers (checked by the tests on the corpus); a literal entry is its own
trigger.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .schema import (
    ASSERTIONS,
    ContextFile,
    DurationsFile,
    GroupFile,
    SectionsFile,
    WordListsFile,
)

DEFAULT_RULES_DIR = Path(__file__).resolve().parents[2] / "rules" / "text"
SPECIAL_FILES = {"context.json", "sections.json", "durations.json", "wordlists.json"}
EXCLUDE = "_exclude"
__all__ = ["ASSERTIONS", "DEFAULT_RULES_DIR", "EXCLUDE", "RuleSet", "RulesError", "TargetSpec", "load_rules"]
_LIST_REFERENCE = re.compile(r"@\{([a-z][a-z0-9-]*)\}")
_ENTRY_LISTS = ("entries", "context_rules", "section_rules")


class RulesError(ValueError):
    """A rules file is malformed (raised at start-up, never while reading a note)."""


@dataclass(frozen=True)
class TargetSpec:
    literal: str
    category: str  # the group, or EXCLUDE
    pattern: str | list | None
    group: str
    also: tuple[str, ...] = ()
    assertion: str | None = None
    kind: str | None = None  # durations only
    source_file: str = ""


@dataclass
class RuleSet:
    targets: list[TargetSpec]
    context_rules: list[dict[str, Any]]
    assertion_of_category: dict[str, str]
    precedence: list[str]
    cancels: dict[str, list[str]]
    question_answers: dict[str, str]
    section_rules: list[dict[str, Any]]
    section_effects: dict[str, dict[str, Any]]
    stop_section_at_blank_line: bool
    durations: dict[str, Any]
    groups: list[str]
    trigger_words: tuple[str, ...]
    trigger_regex: re.Pattern | None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    # regular expression -> the case-folded substrings one of which every match contains
    requires: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        raise RulesError(f"{path.name}: cannot read rules ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict):
        raise RulesError(f"{path.name}: expected a JSON object")
    return data


def _where(data: dict[str, Any], location: tuple) -> str:
    """'entries[3] ('urinary retention')' for an error inside an entry, else the key path."""
    if len(location) >= 2 and location[0] in _ENTRY_LISTS and isinstance(location[1], int):
        entries = data.get(location[0])
        entry = entries[location[1]] if isinstance(entries, list) and location[1] < len(entries) else None
        literal = entry.get("literal") if isinstance(entry, dict) else None
        rest = ".".join(str(part) for part in location[2:])
        return f"{location[0]}[{location[1]}]" + (f" ({literal!r})" if literal else "") + (f" {rest}" if rest else "")
    return ".".join(str(part) for part in location) or "file"


def _validated(model: type[BaseModel], path: Path, data: dict[str, Any]):
    """The file as its model, or a RulesError naming the file, the entry and the problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = error["msg"].removeprefix("Value error, ")
        raise RulesError(f"{path.name}: {_where(data, tuple(error['loc']))}: {message}") from exc


def _expand_pattern(pattern, lists: dict[str, list[str]], where: str):
    """A pattern with its word-list references replaced (module docstring)."""
    def listed(name: str) -> list[str]:
        if name not in lists:
            raise RulesError(f"{where}: unknown word list {name!r}")
        return lists[name]

    if isinstance(pattern, str):
        return _LIST_REFERENCE.sub(lambda match: "(?:" + "|".join(listed(match.group(1))) + ")", pattern)
    if not isinstance(pattern, list):
        return pattern
    expanded = []
    for token in pattern:
        if isinstance(token, dict):
            token = {key: {**value, "IN": list(listed(value["IN"][1:]))}
                     if isinstance(value, dict) and isinstance(value.get("IN"), str) and value["IN"].startswith("@")
                     else value for key, value in token.items()}
        expanded.append(token)
    return expanded


def _with_word_lists(data: dict[str, Any], lists: dict[str, list[str]], name: str) -> dict[str, Any]:
    """The file with the word-list references of its entries' patterns replaced."""
    data = dict(data)
    for key in _ENTRY_LISTS:
        if not isinstance(data.get(key), list):
            continue
        entries = []
        for index, entry in enumerate(data[key]):
            if isinstance(entry, dict) and "pattern" in entry:
                where = f"{name}: {_where(data, (key, index))}"
                entry = {**entry, "pattern": _expand_pattern(entry["pattern"], lists, where)}
            entries.append(entry)
        data[key] = entries
    return data


def _load(model: type[BaseModel], path: Path, lists: dict[str, list[str]]):
    raw = _read_json(path)
    return _validated(model, path, _with_word_lists(raw, lists, path.name)), raw


def _specs(entries, default_group: str, source_file: str) -> list[TargetSpec]:
    return [
        TargetSpec(
            literal=entry.literal,
            category=EXCLUDE if getattr(entry, "exclude", False) else (entry.category or default_group),
            pattern=entry.pattern,
            group=entry.category or default_group,
            also=tuple(getattr(entry, "also", ())),
            assertion=getattr(entry, "assertion", None),
            kind=getattr(entry, "kind", None),
            source_file=source_file,
        )
        for entry in entries
    ]


def _context_rules(context: ContextFile) -> list[dict[str, Any]]:
    """ConTextRule keyword arguments, type sets ('@care') expanded."""
    rules = []
    for entry in context.context_rules:
        rule = entry.model_dump(exclude_unset=True, exclude={"requires"})
        for key in ("allowed_types", "excluded_types"):
            if key in rule:
                rule[key] = [t for name in rule[key] for t in (context.type_sets[name] if name.startswith("@") else [name])]
        rules.append(rule)
    return rules


def _requires(*entry_lists) -> dict[str, tuple[str, ...]]:
    return {entry.pattern: tuple(s.casefold() for s in entry.requires)
            for entries in entry_lists for entry in entries if isinstance(entry.pattern, str) and entry.requires}


def expand_token_pattern(pattern: Any, limit: int = 5000) -> tuple[list[str], frozenset[str] | None] | None:
    """The phrases a simple spaCy token pattern matches, or None if it is not simple.

    Simple: every token is {"LOWER": word} or {"LOWER": {"IN": [words]}} (or the same with "TEXT"),
    optionally with "OP": "?". The reader turns such patterns into phrase rules, since spaCy's
    PhraseMatcher is much faster than the Matcher's set predicates; the phrases are tokenized like the
    notes, so they match the same tokens. A TEXT token with letters is case-sensitive ('CES', 'PT'):
    then every token must be TEXT, and the second value is the set of exact spellings (spaces
    removed) that a phrase match must have; otherwise it is None.
    """
    if not isinstance(pattern, list) or not pattern:
        return None
    choices: list[list[str]] = []
    cased = uncased = False
    total = 1
    for token in pattern:
        if not isinstance(token, dict) or set(token) - {"LOWER", "TEXT", "OP"}:
            return None
        keys = [k for k in ("LOWER", "TEXT") if k in token]
        if len(keys) != 1:
            return None
        op = token.get("OP")
        if op not in (None, "?"):
            return None
        value = token[keys[0]]
        if isinstance(value, str):
            options = [value]
        elif isinstance(value, dict) and set(value) == {"IN"} and all(isinstance(v, str) for v in value["IN"]):
            options = list(value["IN"])
        else:
            return None
        if keys[0] == "TEXT" and any(ch.isalpha() for o in options for ch in o):
            cased = True
        else:
            uncased = uncased or keys[0] == "LOWER"
        if op == "?":
            options = options + [""]
        choices.append(options)
        total *= len(options)
        if total > limit:
            return None
    if cased and uncased:
        return None
    phrases = [""]
    for options in choices:
        phrases = [f"{p} {o}".strip() if o else p for p in phrases for o in options]
    phrases = sorted({p for p in phrases if p})
    exact = frozenset(p.replace(" ", "") for p in phrases) if cased else None
    return phrases, exact


def _scoped(pattern: str) -> str:
    """'(?i)abc' -> '(?i:abc)', so that several patterns can share one alternation."""
    match = re.match(r"\(\?([aiLmsux]+)\)", pattern)
    if match:
        return f"(?{match.group(1)}:{pattern[match.end():]})"
    return f"(?:{pattern})"


def _scoped(pattern: str) -> str:
    """'(?i)abc' -> '(?i:abc)', so that several patterns can share one alternation."""
    match = re.match(r"\(\?([aiLmsux]+)\)", pattern)
    if match:
        return f"(?{match.group(1)}:{pattern[match.end():]})"
    return f"(?:{pattern})"



def _word_lists(rules_dir: Path) -> dict[str, list[str]]:
    path = rules_dir / "wordlists.json"
    return _validated(WordListsFile, path, _read_json(path)).lists if path.exists() else {}


def _group_files(rules_dir: Path, lists: dict[str, list[str]]) -> list[tuple[str, GroupFile, dict]]:
    loaded = []
    for path in sorted(rules_dir.glob("*.json")):
        if path.name in SPECIAL_FILES:
            continue
        model, raw = _load(GroupFile, path, lists)
        if path.stem != model.group:
            raise RulesError(f"{path.name}: 'group' must equal the file name")
        loaded.append((path.name, model, raw))
    return loaded


def _trigger_words(group_files, durations: DurationsFile) -> tuple[str, ...]:
    """The prefilter's words: every file's triggers, every phrase entry, the duration anchors."""
    words: set[str] = set()
    for _name, model, _raw in group_files:
        words.update(t.lower() for t in model.triggers)
        words.update(entry.literal.lower() for entry in model.entries if entry.pattern is None)
    words.update(a.lower() for a in durations.anchors if len(a) > 2)
    return tuple(sorted(words))


def load_rules(rules_dir: Path | None = None) -> RuleSet:
    """The rules of a rules directory (default: the packaged ones), every file validated."""
    rules_dir = Path(rules_dir) if rules_dir is not None else DEFAULT_RULES_DIR
    if not rules_dir.is_dir():
        raise RulesError(f"rules directory not found: {rules_dir}")
    lists = _word_lists(rules_dir)
    group_files = _group_files(rules_dir, lists)
    durations, durations_raw = _load(DurationsFile, rules_dir / "durations.json", lists)
    context, context_raw = _load(ContextFile, rules_dir / "context.json", lists)
    sections, sections_raw = _load(SectionsFile, rules_dir / "sections.json", lists)
    targets = [spec for name, model, _raw in group_files for spec in _specs(model.entries, model.group, name)]
    trigger_patterns = [pattern for _name, model, _raw in group_files for pattern in model.trigger_patterns]
    files = {name: raw for name, _model, raw in group_files}
    files.update({"durations.json": durations_raw, "context.json": context_raw, "sections.json": sections_raw})
    return RuleSet(
        targets=targets + _specs(durations.entries, "duration", "durations.json"),
        context_rules=_context_rules(context),
        assertion_of_category={k.upper(): v for k, v in context.assertions.items()},
        precedence=list(context.precedence),
        cancels={k.upper(): list(v) for k, v in context.cancels.items()},
        question_answers={answer.lower(): assertion
                          for assertion, answers in context.question_answers.items() for answer in answers},
        section_rules=[entry.model_dump(exclude_unset=True, exclude={"requires"}) for entry in sections.section_rules],
        section_effects={name: effect.model_dump(exclude_unset=True) for name, effect in sections.effects.items()},
        stop_section_at_blank_line=sections.stop_at_blank_line,
        durations=durations.model_dump(exclude={"entries"}),
        groups=[model.group for _name, model, _raw in group_files] + ["duration"],
        trigger_words=_trigger_words(group_files, durations),
        trigger_regex=re.compile("|".join(_scoped(p) for p in trigger_patterns)) if trigger_patterns else None,
        files=files,
        requires=_requires(*(model.entries for _name, model, _raw in group_files), durations.entries,
                           context.context_rules, sections.section_rules),
    )
