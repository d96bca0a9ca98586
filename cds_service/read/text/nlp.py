"""The reader's medspaCy pipeline, built once: tokenizer, sentences, target and duration matchers,
ConText, sections (clinical-specification.md §9.6).

Role in the data flow: part of the free-text reader (read stage); `reader.TextReader` calls
`build_pipeline` once. medspaCy is imported here with its warnings filter undone, its loguru
logging off (PyRuSH would log every sentence) and its unused QuickUMLS import kept out; the
corrections and speed-ups of _medspacy_fixes and _regex_scan are installed before the pipeline is
built.
"""

from __future__ import annotations

import sys
import types
import warnings

from .rules import RuleSet, expand_token_pattern

SPAN_GROUP = "lumbar_text_targets"
DURATION_GROUP = "lumbar_text_durations"


def _silence_library_logging() -> None:
    try:
        from loguru import logger
    except ImportError:  # pragma: no cover - loguru comes with PyRuSH
        return
    for name in ("PyRuSH", "medspacy", "quickumls", "PyFastNER"):
        logger.disable(name)


def _import_medspacy():
    saved = list(warnings.filters)
    # medspacy.util imports QuickUMLS (UMLS concept mapping, which the reader does not use) only to
    # register its spaCy factory, and QuickUMLS imports NLTK: 19 MB of every worker and 0.15 s of
    # its start. A stand-in module is given for that one import and taken away after it, so a
    # later `import quickumls` anywhere in the process gets the real one.
    stand_ins = {name: types.ModuleType(name) for name in ("quickumls", "quickumls.spacy_component")}
    stand_ins["quickumls"].spacy_component = stand_ins["quickumls.spacy_component"]
    placed = [name for name in stand_ins if name not in sys.modules and "medspacy" not in sys.modules]
    sys.modules.update({name: stand_ins[name] for name in placed})
    try:
        import medspacy  # noqa: F401  (registers the medspacy_* factories)
        from medspacy.context import ConTextRule
        from medspacy.section_detection import SectionRule
        from medspacy.target_matcher import TargetRule
    finally:
        for name in placed:
            if sys.modules.get(name) is stand_ins[name]:
                del sys.modules[name]
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


def build_pipeline(rules: RuleSet):
    """The medspaCy pipeline of these rules (module docstring), with the regex guards and the
    ConText and duration restrictions of _regex_scan registered."""
    medspacy, TargetRule, ConTextRule, SectionRule = _import_medspacy()
    _register_sentence_splitter()
    from . import _regex_scan
    from .regex_guards import required_strings

    patterns = [t.pattern for t in rules.targets] + [r.get("pattern") for r in rules.context_rules]
    for pattern in [r.get("pattern") for r in rules.section_rules]:
        if isinstance(pattern, str):
            _regex_scan.WHOLE_TEXT.add(pattern)  # headers are found on the whole text, not per sentence
    patterns += [r.get("pattern") for r in rules.section_rules]
    for pattern in patterns:
        if isinstance(pattern, str) and pattern not in _regex_scan.GUARDS:
            guards = required_strings(pattern)
            if guards:
                _regex_scan.GUARDS[pattern] = guards
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
        matcher.add([r for s in rules.targets if s.kind is None for r in _target_rules(TargetRule, s)])
        durations.add([r for s in rules.targets if s.kind is not None for r in _target_rules(TargetRule, s)])
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
        context.add([r for rule in rules.context_rules for r in _context_rules(ConTextRule, rule)])
        sectionizer = nlp.add_pipe(
            "medspacy_sectionizer", config={"rules": None, "span_attrs": None, "input_span_type": "group",
                                            "span_group_name": SPAN_GROUP}
        )
        sectionizer.add([r for rule in rules.section_rules for r in _section_rules(SectionRule, rule)])
        # ConText and the duration matcher run only on the sentences where they can matter
        # (the results are the same; _regex_scan.restrict says why).
        _regex_scan.ANCHORS.update(a.casefold() for a in rules.durations.get("anchors", ()))
        _regex_scan.restrict(context._ConText__matcher, (SPAN_GROUP, DURATION_GROUP))
        _regex_scan.restrict(durations._TargetMatcher__matcher, (SPAN_GROUP,), anchored=True)
    finally:
        warnings.filters[:] = saved
        warnings._filters_mutated()  # type: ignore[attr-defined]
    return nlp
