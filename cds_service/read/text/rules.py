"""Load and check the free-text rules (cds_service/rules/text/*.json).

Role in the data flow: read once by `TextReader.__init__`; turns the JSON rule files into medspaCy
TargetRule / ConTextRule / SectionRule objects plus the small tables the reader applies itself
(assertion precedence, section effects, duration parsing, prefilter triggers).

Files:
- one file per fact group (`<group>.json`): {group, description, source, triggers, trigger_patterns?,
  entries: [{literal, category, pattern?, also?, assertion?, exclude?}]}. `pattern` is a regular
  expression (a string, matched case-insensitively over the text) or a spaCy token pattern (a list);
  without it the literal is matched as a phrase (lower case). `also` names further groups the same
  match gives ('bowel or bladder incontinence'); `assertion` is an intrinsic one ('afebrile' is a
  negated fever); `exclude` marks a longer phrase that wins over and silences a shorter match
  ('stress incontinence', 'PT/INR').
- durations.json: entries of group 'duration' with a `kind` for the onset parser.
- context.json: ConText modifier rules, the category -> assertion map and precedence, type sets.
- sections.json: Sectionizer header rules and their effects.

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

DEFAULT_RULES_DIR = Path(__file__).resolve().parents[2] / "rules" / "text"
SPECIAL_FILES = {"context.json", "sections.json", "durations.json"}
EXCLUDE = "_exclude"
ASSERTIONS = ("affirmed", "negated", "historical", "hypothetical", "other-person", "uncertain")


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
    requires: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _load(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        raise RulesError(f"{path.name}: cannot read rules ({type(exc).__name__})") from exc
    if not isinstance(data, dict):
        raise RulesError(f"{path.name}: expected a JSON object")
    for key in ("description", "source"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise RulesError(f"{path.name}: missing '{key}'")
    return data


def _check_pattern(name: str, literal: str, pattern: Any) -> None:
    if pattern is None:
        return
    if isinstance(pattern, str):
        try:
            re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise RulesError(f"{name}: bad regular expression for {literal!r}: {exc}") from exc
    elif not (isinstance(pattern, list) and all(isinstance(t, dict) for t in pattern)):
        raise RulesError(f"{name}: pattern for {literal!r} must be a string or a list of token objects")


def _target_entries(path: Path, data: dict[str, Any], default_group: str) -> list[TargetSpec]:
    entries = data.get("entries")
    if not isinstance(entries, list) or not entries:
        raise RulesError(f"{path.name}: 'entries' must be a non-empty list")
    specs = []
    for entry in entries:
        literal = entry.get("literal")
        if not isinstance(literal, str) or not literal:
            raise RulesError(f"{path.name}: entry without a literal")
        unknown = set(entry) - {"literal", "category", "pattern", "also", "assertion", "exclude", "kind", "requires"}
        if unknown:
            raise RulesError(f"{path.name}: {literal!r} has unknown keys {sorted(unknown)}")
        group = entry.get("category", default_group)
        pattern = entry.get("pattern")
        _check_pattern(path.name, literal, pattern)
        assertion = entry.get("assertion")
        if assertion is not None and assertion not in ASSERTIONS:
            raise RulesError(f"{path.name}: {literal!r} has unknown assertion {assertion!r}")
        specs.append(
            TargetSpec(
                literal=literal,
                category=EXCLUDE if entry.get("exclude") else group,
                pattern=pattern,
                group=group,
                also=tuple(entry.get("also", ())),
                assertion=assertion,
                kind=entry.get("kind"),
                source_file=path.name,
            )
        )
    return specs


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


def load_rules(rules_dir: Path | None = None) -> RuleSet:
    rules_dir = Path(rules_dir) if rules_dir is not None else DEFAULT_RULES_DIR
    if not rules_dir.is_dir():
        raise RulesError(f"rules directory not found: {rules_dir}")
    targets: list[TargetSpec] = []
    groups: list[str] = []
    words: set[str] = set()
    trigger_patterns: list[str] = []
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(rules_dir.glob("*.json")):
        if path.name in SPECIAL_FILES:
            continue
        data = _load(path)
        group = data.get("group")
        if not isinstance(group, str) or path.stem != group:
            raise RulesError(f"{path.name}: 'group' must equal the file name")
        files[path.name] = data
        groups.append(group)
        specs = _target_entries(path, data, group)
        targets.extend(specs)
        words.update(t.lower() for t in data.get("triggers", ()))
        trigger_patterns.extend(data.get("trigger_patterns", ()))
        for spec in specs:
            if spec.pattern is None:
                words.add(spec.literal.lower())
    # durations
    dpath = rules_dir / "durations.json"
    durations = _load(dpath)
    files[dpath.name] = durations
    for spec in _target_entries(dpath, durations, "duration"):
        if spec.kind is None:
            raise RulesError(f"durations.json: {spec.literal!r} has no 'kind'")
        targets.append(spec)
    groups.append("duration")
    words.update(a.lower() for a in durations.get("anchors", ()) if len(a) > 2)
    # context
    cpath = rules_dir / "context.json"
    context = _load(cpath)
    files[cpath.name] = context
    type_sets = context.get("type_sets", {})
    context_rules = []
    for rule in context.get("context_rules", ()):
        rule = dict(rule)
        unknown = set(rule) - {"literal", "category", "direction", "pattern", "allowed_types", "excluded_types",
                               "max_scope", "max_targets", "terminated_by", "requires"}
        if unknown:
            raise RulesError(f"context.json: {rule.get('literal')!r} has unknown keys {sorted(unknown)}")
        _check_pattern("context.json", rule.get("literal", "?"), rule.get("pattern"))
        for key in ("allowed_types", "excluded_types"):
            if key in rule:
                expanded: list[str] = []
                for name in rule[key]:
                    if name.startswith("@"):
                        if name not in type_sets:
                            raise RulesError(f"context.json: unknown type set {name}")
                        expanded.extend(type_sets[name])
                    else:
                        expanded.append(name)
                rule[key] = expanded
        context_rules.append(rule)
    assertion_of_category = {k.upper(): v for k, v in context.get("assertions", {}).items()}
    precedence = list(context.get("precedence", ()))
    if set(precedence) | {"affirmed"} != set(ASSERTIONS):
        raise RulesError("context.json: 'precedence' must list every assertion but 'affirmed'")
    # sections
    spath = rules_dir / "sections.json"
    sections = _load(spath)
    files[spath.name] = sections
    for rule in sections.get("section_rules", ()):
        _check_pattern("sections.json", rule.get("literal", "?"), rule.get("pattern"))
    requires = {}
    for entries in [d.get("entries", ()) for d in files.values()] + [context.get("context_rules", ()),
                                                                      sections.get("section_rules", ())]:
        for entry in entries:
            if isinstance(entry.get("pattern"), str) and entry.get("requires"):
                requires[entry["pattern"]] = tuple(s.casefold() for s in entry["requires"])
    context_rules = [{k: v for k, v in r.items() if k != "requires"} for r in context_rules]
    trigger_regex = re.compile("|".join(_scoped(p) for p in trigger_patterns)) if trigger_patterns else None
    return RuleSet(
        targets=targets,
        context_rules=context_rules,
        assertion_of_category=assertion_of_category,
        precedence=precedence,
        cancels={k.upper(): list(v) for k, v in context.get("cancels", {}).items()},
        question_answers={
            answer.lower(): assertion
            for assertion, answers in context.get("question_answers", {}).items()
            for answer in answers
        },
        section_rules=[{k: v for k, v in r.items() if k != "requires"} for r in sections.get("section_rules", ())],
        section_effects=dict(sections.get("effects", {})),
        stop_section_at_blank_line=bool(sections.get("stop_at_blank_line", True)),
        durations=durations,
        groups=groups,
        trigger_words=tuple(sorted(words)),
        trigger_regex=trigger_regex,
        files=files,
        requires=requires,
    )
