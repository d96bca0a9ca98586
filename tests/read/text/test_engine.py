"""The reader's engine: its own spaCy components, the medspaCy bugs it fixes (shown against medspaCy's
own behaviour), the work it skips without changing a finding, and a pipeline warmed at start."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date
from pathlib import Path

import pytest

from cds_service.read.text import TextReader
from cds_service.read.text.context import ScopedGraph, ScopedModifier, overlaps
from cds_service.read.text.leading import leading_words
from cds_service.read.text.matching import case_free_twin, longest_first
from cds_service.read.text.nlp import matchers
from cds_service.read.text.rules import DEFAULT_RULES_DIR, load_rules
from cds_service.read.text.spans import Sentences

ON = date(2024, 6, 15)
CORPUS = Path(__file__).with_name("corpus.jsonl")
SCREEN = "CES screen: urinary retention no, saddle numbness yes, bowel incontinence no."


def corpus_texts() -> list[str]:
    texts = [json.loads(line)["text"] for line in CORPUS.read_text().splitlines() if line]
    texts += ["\n".join(texts[i:i + 40]) for i in range(0, len(texts), 40)]  # notes of one sentence a line
    texts.append(" ".join(texts[:60]))  # one long paragraph
    return texts


@pytest.fixture(scope="module")
def reader() -> TextReader:
    return TextReader()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return corpus_texts()


def test_the_pipeline_is_the_readers_own_registered_components(reader):
    assert reader._nlp.pipe_names == ["lumbar_text_sentences", "lumbar_text_index", "lumbar_text_targets",
                                      "lumbar_text_durations", "lumbar_text_context", "lumbar_text_sections"]
    from spacy.language import Language

    for factory in ("lumbar_text_index", "lumbar_text_targets", "lumbar_text_context", "lumbar_text_sections"):
        assert factory in Language.factories


def test_medspacy_is_left_as_shipped(reader):
    """Building the reader replaces nothing in medspaCy: its own helpers keep their (buggy) behaviour."""
    import medspacy.context.context_modifier as modifier_module
    import medspacy.util
    from medspacy.common import util as common_util
    from medspacy.context import ConTextGraph, ConTextModifier

    assert medspacy.util.tuple_overlaps((0, 10), (2, 3)) is True
    assert medspacy.util.tuple_overlaps((2, 3), (0, 10)) is False  # b strictly contains a: missed
    assert modifier_module.tuple_overlaps is medspacy.util.tuple_overlaps
    assert common_util.prune_overlapping_matches([(1, 1, 3), (2, 1, 2), (3, 2, 5)]) == [(3, 2, 5)]
    assert ConTextGraph.update_scopes is not ScopedGraph.update_scopes
    assert ConTextModifier.limit_scope is not ScopedModifier.limit_scope


def _screen_graph(reader, modifier_class, graph_class):
    """The ConText graph of SCREEN built from fresh modifiers of one class, in one graph class."""
    from medspacy.context import ConTextModifier

    doc = reader._nlp(SCREEN)
    found = doc._.lumbar_context
    sentences = Sentences.of(doc)
    modifiers = []
    for old in found.modifiers:
        scoped = ScopedModifier(old.rule, *old.modifier_span, doc, sentences)  # the scope before limiting
        if modifier_class is ConTextModifier:
            scoped = ConTextModifier(old.rule, *old.modifier_span, doc, *scoped.scope_span)
        modifiers.append(scoped)
    graph = graph_class(targets=list(found.targets), modifiers=modifiers, prune_on_modifier_overlap=True)
    graph.update_scopes()
    graph.apply_modifiers()
    return {target.text: sorted(m.category for t, m in graph.edges if t is target) for target in graph.targets}


def test_context_scope_bug_stock_and_fixed(reader):
    """A TERMINATE modifier ('yes') must cut the scope of a modifier with a max_scope ('no' after the
    sign): medspaCy's tuple_overlaps misses it, so 'saddle numbness yes' is negated by the last 'no'."""
    from medspacy.context import ConTextGraph, ConTextModifier

    stock = _screen_graph(reader, ConTextModifier, ConTextGraph)
    fixed = _screen_graph(reader, ScopedModifier, ScopedGraph)
    assert stock["saddle numbness"] == ["NEGATED_EXISTENCE"]
    assert fixed["saddle numbness"] == []
    assert fixed["urinary retention"] == fixed["bowel incontinence"] == ["NEGATED_EXISTENCE"]
    found = {(f.group, f.assertion) for f in reader.read(SCREEN, ON)}
    assert ("cauda-equina-saddle-anaesthesia", "affirmed") in found
    assert overlaps((2, 3), (0, 10)) and overlaps((0, 10), (2, 3)) and not overlaps((0, 2), (2, 4))


def test_overlap_pruning_stock_and_fixed():
    """medspaCy keeps the longer of two overlapping matches without comparing it with the next one:
    it loses 'b' (tokens 1-2), which overlaps nothing that is kept. The longest-first rule keeps it."""
    from medspacy.common.util import prune_overlapping_matches

    matches = [(1, 1, 3), (2, 1, 2), (3, 2, 5)]
    assert prune_overlapping_matches(list(matches)) == [(3, 2, 5)]
    assert longest_first(list(matches)) == [(2, 1, 2), (3, 2, 5)]
    assert longest_first([(7, 0, 2), (8, 0, 2), (9, 1, 3)]) == [(7, 0, 2)]  # a tie: the first, then the earlier


def test_longer_phrase_wins_over_shorter_one(reader):
    found = {(f.group, f.assertion) for f in reader.read("Cauda equina warning signs discussed.", ON)}
    assert ("cauda-equina-syndrome", "affirmed") not in found


def test_case_free_twin():
    assert case_free_twin(re.compile(r"\bnumb(?:ness)?\b", re.I)) is not None
    assert case_free_twin(re.compile(r"(?im)^plan:", re.I)).flags & re.I == 0  # the written flag is taken out
    assert case_free_twin(re.compile(r"n['\u2019]t\s+(?P<num>\d+)", re.I)) is not None
    for kept in (r"\bCES\b", r"[A-Z]{2}", r"(?-i:Pt)\b", r"[!-~]", r"\x41", r"(a)\1", "\u017f", r"\N{LATIN SMALL LETTER A}"):
        assert case_free_twin(re.compile(kept, re.I)) is None, kept
    assert case_free_twin(re.compile("abc")) is None  # no flag: nothing to take out


def test_the_tokens_are_medspacys_without_the_whitespace_exceptions(reader, texts):
    """The reader's tokenizer keeps the words of a note cached (nlp.without_whitespace_specials)
    and makes the tokens medspaCy's stock tokenizer makes, repeated reads included."""
    from cds_service.read.text.library import medspacy

    stock = medspacy.load(medspacy_enable=["medspacy_tokenizer"]).tokenizer
    assert "\n" in stock.rules and "\n" not in reader._nlp.tokenizer.rules
    texts = texts + ["a  b\t\tc \n d\xa0e\r\n\n", "Line one.\n\n  Line two\tcannot\n\tthree"]
    for text in texts + texts:
        mine, theirs = reader._nlp.tokenizer(text), stock(text)
        assert [(t.text, t.idx, t.norm_, t.whitespace_) for t in mine] == \
            [(t.text, t.idx, t.norm_, t.whitespace_) for t in theirs]


def test_case_free_twins_give_the_same_findings(reader, texts):
    texts = texts + [t.upper() for t in texts[-5:]]
    fast = [reader._read(t, ON) for t in texts]
    for matcher in matchers(reader._nlp):
        matcher.case_free = False
    try:
        assert [reader._read(t, ON) for t in texts] == fast
    finally:
        for matcher in matchers(reader._nlp):
            matcher.case_free = True


def test_required_substrings_hold_on_the_corpus(texts):
    """Every match of a rule's regular expression contains one of the substrings the rule `requires`."""
    rules = load_rules()
    assert len(rules.requires) > 200
    for pattern, required in rules.requires.items():
        compiled = re.compile(pattern, re.IGNORECASE)
        for text in texts:
            for match in compiled.finditer(text):
                assert any(s in match.group().casefold() for s in required), (pattern, match.group())


def test_leading_words_hold_on_the_corpus(reader, texts):
    """Every match of a regular expression with leading words (leading.py) begins with one of them."""
    guarded = [(regex.pattern, regex.leading) for matcher in matchers(reader._nlp) for regex in matcher._regexes
               if regex.leading]
    assert len(guarded) > 50
    assert leading_words(r"\b(?:bilateral|bilat|b/l)\.?\s+legs?") == ("b/l", "bilat", "bilateral")
    assert leading_words(r"\bpains?\s+both") == ("pain",)
    assert leading_words(r"\b(?:(?:reduced|less)\s+feeling|numb(?:ness)?)") == ("less", "numb", "reduced")
    for unguarded in (r"\b(?:pain|x)\s", r"\bfoo|\bbar", r"(?:pain|ache)?\s+x", r"(?:(?:pain|ache)?\s+x|abc)", r"(?<!\w)pain", r"pa(?:in)", r"[p]ain"):
        assert leading_words(unguarded) is None, unguarded
    for pattern, words in guarded:
        for text in texts:
            for match in pattern.finditer(text):
                assert match.group().casefold().startswith(words), (pattern.pattern, match.group())


def test_leading_words_only_skip_work(reader, texts):
    guarded = [reader._read(t, ON) for t in texts]
    for matcher in matchers(reader._nlp):
        matcher.leading = False
    try:
        assert [reader._read(t, ON) for t in texts] == guarded
    finally:
        for matcher in matchers(reader._nlp):
            matcher.leading = True


def test_required_substrings_only_skip_work(tmp_path, reader, texts):
    """The same findings from rules without any `requires`."""
    rules_dir = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules_dir)
    for path in rules_dir.glob("*.json"):
        data = json.loads(path.read_text())
        for key in ("entries", "context_rules", "section_rules"):
            for entry in data.get(key, ()):
                entry.pop("requires", None)
        path.write_text(json.dumps(data))
    unguarded = TextReader(rules_dir)
    assert unguarded.rules.requires == {}
    assert [unguarded._read(t, ON) for t in texts] == [reader._read(t, ON) for t in texts]


def test_context_and_durations_on_the_sentences_that_matter_give_the_same_findings(reader, texts):
    """ConText and the duration matcher search only the sentences with a finding (or a duration anchor)."""
    steps = [reader._nlp.get_pipe(name).matcher for name in ("lumbar_text_context", "lumbar_text_durations")]
    restricted = [reader._read(t, ON) for t in texts]
    saved = [m.restrict for m in steps]
    assert all(saved)
    try:
        for matcher in steps:
            matcher.restrict = None
        whole = [reader._read(t, ON) for t in texts]
    finally:
        for matcher, restriction in zip(steps, saved, strict=True):
            matcher.restrict = restriction
    assert restricted == whole
    assert sum(map(len, whole)) > len(texts)  # findings were made, not only empty reads


def test_the_pipeline_is_warm_when_the_reader_is_built():
    """Every rule is compiled when the reader is built: the first read compiles nothing more."""
    reader = TextReader()
    index = reader._nlp.get_pipe("lumbar_text_index")
    compiled = [m.compiled for m in matchers(reader._nlp)]
    assert index.compiled and sum(compiled) > 200
    assert reader.read("Denies saddle numbness. Return precautions: urinary retention. Mother had breast cancer.", ON)
    assert [m.compiled for m in matchers(reader._nlp)] == compiled and index.compiled


def test_the_app_starts_with_a_warm_reader():
    """create_app builds the reader (in a fresh process): the first read after it compiles nothing."""
    import subprocess
    import sys

    script = (
        "from cds_service.app import create_app\n"
        "from cds_service.read.text import reader as module\n"
        "from cds_service.read.text.nlp import matchers\n"
        "assert module._DEFAULT is None\n"
        "create_app({'TESTING': True, 'RECORD_JUDGEMENTS': False})\n"
        "text_reader = module._DEFAULT\n"
        "index = text_reader._nlp.get_pipe('lumbar_text_index')\n"
        "before = [m.compiled for m in matchers(text_reader._nlp)]\n"
        "assert index.compiled and sum(before) > 200\n"
        "assert text_reader.read('LBP x 3 days, now urinary retention.', None)\n"
        "assert [m.compiled for m in matchers(text_reader._nlp)] == before\n"
        "print('warm')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert result.stdout.split() == ["warm"], result.stderr[-2000:]


def test_each_reader_keeps_its_own_rules_and_index(tmp_path, reader):
    """No state is shared through modules: a second reader built with one more (guarded) regular
    expression finds it, and the first reader, built before, still does not."""
    rules_dir = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules_dir)
    path = rules_dir / "infection-fever.json"
    data = json.loads(path.read_text())
    data["entries"].append({"literal": "calentura", "pattern": r"\bcalentura\b", "requires": ["calentura"],
                            "category": "infection-fever"})
    data["triggers"].append("calentura")
    path.write_text(json.dumps(data))
    other = TextReader(rules_dir)
    text = "Reports calentura since yesterday."
    assert [(f.group, f.assertion) for f in other.read(text, ON)] == [("infection-fever", "affirmed")]
    assert reader.read(text, ON) == () and reader._read(text, ON) == ()
