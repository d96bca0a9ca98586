"""The reader's spaCy pipeline, built and warmed once: medspaCy's clinical tokenizer, then the
reader's own registered components - sentences, text index, target and duration matchers, ConText,
sections (clinical-specification.md §9.6).

Role in the data flow: part of the free-text reader (read stage); `reader.TextReader` calls
`build_pipeline` once, when the worker starts. Every rule is compiled while it is added and a
warm-up note is read before the pipeline is handed over, so that the first note of a worker costs
what the others do (no pattern compiled, no automaton built, no rule word new to the vocabulary).
medspaCy is imported through library.py (the process's warning filters kept, its QuickUMLS import
kept out).
"""

from __future__ import annotations

import warnings

from spacy.attrs import ORTH

from .rules import RuleSet, expand_token_pattern
from .spans import DURATION_GROUP, SPAN_GROUP

WARM_UP_NOTE = ("HPI: 58M with low back pain x 3 days after lifting. Denies fever, urinary retention or saddle "
                "numbness. Return if you develop bowel incontinence.\nFamily History: mother had breast cancer.\n"
                "Plan: start naproxen, physical therapy.")


def target_rules(specs) -> list:
    """components.MatchRule objects of rules entries; a simple token pattern becomes phrases
    (rules.expand_token_pattern)."""
    from .components import MatchRule

    made = []
    for spec in specs:
        expanded = expand_token_pattern(spec.pattern)
        if expanded is None:
            made.append(MatchRule(spec.literal, spec.category, spec.pattern, spec))
        else:
            made.extend(MatchRule(p, spec.category, None, spec, expanded[1]) for p in expanded[0])
    return made


def modifier_rules(rule_class, rules: list[dict]) -> list:
    """medspaCy ConTextRule / SectionRule objects; a simple uncased token pattern becomes phrases."""
    made = []
    for rule in rules:
        expanded = expand_token_pattern(rule.get("pattern"))
        if expanded is None or expanded[1] is not None:
            made.append(rule_class(**rule))
        else:
            rest = {k: v for k, v in rule.items() if k not in ("literal", "pattern")}
            made.extend(rule_class(literal=p, **rest) for p in expanded[0])
    return made


def without_whitespace_specials(tokenizer) -> None:
    """Drop the tokenizer exceptions that only say a whitespace run ('\\n', ' ', '\\t') is one token of
    that text, which the tokenizer makes of it anyway. Why: spaCy's tokenizer stops caching the
    tokens of a word for the rest of a text once a special case has been used in it (a flag set per
    text, not per word), and in notes a line break comes in the first line, so no word of a note was
    ever cached. Without them, a word is split into prefixes, suffixes and infixes once per process,
    not once per note (the tokens are the same: the tests compare them)."""
    tokenizer.rules = {text: attrs for text, attrs in tokenizer.rules.items()
                       if not (text.isspace() and attrs == [{ORTH: text}])}


def build_pipeline(rules: RuleSet):
    """The reader's pipeline of these rules, every rule compiled and a warm-up note read."""
    from . import components, context, scan, sentences  # noqa: F401  (register the lumbar_text_* factories)
    from .library import medspacy  # imported before any medspacy module: library.py says why

    with warnings.catch_warnings():
        nlp = medspacy.load(medspacy_enable=["medspacy_tokenizer"])
    without_whitespace_specials(nlp.tokenizer)
    anchors = list(rules.durations.get("anchors", ()))
    nlp.add_pipe("lumbar_text_sentences")
    index = nlp.add_pipe("lumbar_text_index")
    targets = nlp.add_pipe("lumbar_text_targets", config={"span_group": SPAN_GROUP})
    # Durations get their own matcher and span group, not ConText targets: a duration phrase ('3 years
    # ago') neither knocks out a finding nor swallows the modifier that makes it historical; their
    # assertion is read from the same ConText graph afterwards (spans.modifiers_of). A duration counts
    # only in a sentence with a finding or an anchor word, so the matcher searches only those.
    durations = nlp.add_pipe("lumbar_text_targets", name="lumbar_text_durations", config={
        "span_group": DURATION_GROUP, "restrict": {"groups": [SPAN_GROUP], "anchors": anchors}})
    context_step = nlp.add_pipe("lumbar_text_context", config={
        "span_group": SPAN_GROUP, "restrict_to_groups": [SPAN_GROUP, DURATION_GROUP]})
    sections = nlp.add_pipe("lumbar_text_sections")
    targets.add(target_rules(s for s in rules.targets if s.kind is None), rules.requires)
    durations.add(target_rules(s for s in rules.targets if s.kind is not None), rules.requires)
    context_step.add(modifier_rules(medspacy.context.ConTextRule, rules.context_rules), rules.requires)
    sections.add(modifier_rules(medspacy.section_detection.SectionRule, rules.section_rules), rules.requires)
    for step in (targets, durations, context_step, sections):
        index.index(step.matcher.guard_strings)
    index.index(anchors)
    index.compile()
    nlp(WARM_UP_NOTE + "\n" + "\n".join(r.literal for r in rules.targets)).user_data.clear()
    return nlp


def matchers(nlp) -> list:
    """The RuleMatcher of every step (for the warm-up test and the benchmark)."""
    return [nlp.get_pipe(name).matcher for name in nlp.pipe_names if hasattr(nlp.get_pipe(name), "matcher")]
