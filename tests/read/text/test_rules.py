"""The rules as data: every file is well formed, names its source, and its groups are the project's."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from cds_service.read.text import RulesError, TextReader
from cds_service.read.text.rules import DEFAULT_RULES_DIR, load_rules

REPO = Path(__file__).resolve().parents[3]
GROUPS = {
    "cauda-equina-syndrome", "cauda-equina-urinary-retention", "cauda-equina-urinary-incontinence",
    "cauda-equina-neurogenic-bladder", "cauda-equina-fecal-incontinence", "cauda-equina-saddle-anaesthesia",
    "cauda-equina-bilateral-sciatica", "neuro-deficit", "infection-fever", "infection-spinal", "infection-iv-drug-use",
    "infection-immunosuppression", "malignancy-history", "malignancy-weight-loss", "fracture-trauma",
    "fracture-osteoporosis", "fracture-long-term-steroids", "spinal-surgery", "qualifying-episode", "conservative-care",
}


def test_every_group_has_a_file_and_a_source():
    rules = load_rules()
    assert set(rules.groups) == GROUPS | {"duration"}
    for name, data in rules.files.items():
        assert data["source"].strip() and data["description"].strip(), name


def test_groups_match_the_value_sets():
    valuesets = {p.stem for d in ("cds_service/rules/valuesets", "cds_service/valuesets") for p in (REPO / d).glob("*.json")}
    if not valuesets:
        pytest.skip("value sets not found")
    assert GROUPS - {"conservative-care"} <= valuesets


def test_patterns_compile_and_triggers_cover_literals():
    rules = load_rules()
    for spec in rules.targets:
        if isinstance(spec.pattern, str):
            re.compile(spec.pattern, re.IGNORECASE)
        if spec.pattern is None and spec.kind is None:
            assert spec.literal.lower() in rules.trigger_words
        for group in spec.also:
            assert group in GROUPS


def test_context_categories_are_mapped():
    rules = load_rules()
    categories = {r["category"].upper() for r in rules.context_rules}
    mapped = set(rules.assertion_of_category) | {"TERMINATE", "PSEUDO", "CURRENT"}
    assert categories <= mapped
    assert set(rules.assertion_of_category.values()) == set(rules.precedence)


def test_broken_rules_fail_at_start_up(tmp_path):
    rules_dir = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules_dir)
    path = rules_dir / "infection-fever.json"
    data = json.loads(path.read_text())
    data["entries"].append({"literal": "bad", "pattern": "(unclosed"})
    path.write_text(json.dumps(data))
    with pytest.raises(RulesError):
        load_rules(rules_dir)
    data["entries"].pop()
    del data["source"]
    path.write_text(json.dumps(data))
    with pytest.raises(RulesError):
        TextReader(rules_dir)


def test_rules_dir_is_a_parameter(tmp_path):
    rules_dir = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules_dir)
    path = rules_dir / "infection-fever.json"
    data = json.loads(path.read_text())
    data["entries"].append({"literal": "calentura", "category": "infection-fever"})
    path.write_text(json.dumps(data))
    findings = TextReader(rules_dir).read("Reports calentura since yesterday.", None)
    assert [(f.group, f.assertion) for f in findings] == [("infection-fever", "affirmed")]


def _broken_copy(tmp_path, name: str, change) -> Path:
    rules_dir = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules_dir)
    path = rules_dir / name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return rules_dir


@pytest.mark.parametrize("name, change, message", [
    ("infection-fever.json", lambda d: d["entries"][1].update(colour="red"),
     r"infection-fever\.json: entries\[1\] \('.+'\) colour: Extra inputs are not permitted"),
    ("infection-fever.json", lambda d: d["entries"].append({"literal": "bad", "pattern": "(unclosed"}),
     r"infection-fever\.json: entries\[\d+\] \('bad'\) pattern.*bad regular expression"),
    ("infection-fever.json", lambda d: d["entries"][0].update(assertion="maybe"),
     r"infection-fever\.json: entries\[0\] \('.+'\) assertion: Input should be 'affirmed'"),
    ("infection-fever.json", lambda d: d["entries"].append({"literal": "x", "requires": ["fever"]}),
     r"infection-fever\.json: entries\[\d+\] \('x'\): 'requires' is for a regular expression"),
    ("infection-fever.json", lambda d: d.pop("source"), r"infection-fever\.json: source: Field required"),
    ("infection-fever.json", lambda d: d.update(group="fever"), r"infection-fever\.json: 'group' must equal"),
    ("durations.json", lambda d: d["entries"][2].update(kind="fortnightly"),
     r"durations\.json: entries\[2\] \('.+'\) kind: Input should be 'relative'"),
    ("context.json", lambda d: d["context_rules"][0].update(direction="SIDEWAYS"),
     r"context\.json: context_rules\[0\] \('no'\) direction: Input should be 'FORWARD'"),
    ("context.json", lambda d: d["context_rules"][0].update(allowed_types=["@nothing"]),
     r"context\.json: .*unknown type set @nothing"),
    ("context.json", lambda d: d["precedence"].pop(), r"context\.json: .*'precedence' must list every assertion"),
    ("context.json", lambda d: d["context_rules"][0].update(pattern=r"\b@{no-such-list}\b"),
     r"context\.json: context_rules\[0\] \('no'\): unknown word list 'no-such-list'"),
    ("sections.json", lambda d: d["effects"]["plan"].update(assertion="planned"),
     r"sections\.json: effects\.plan\.assertion: Input should be"),
    ("wordlists.json", lambda d: d["lists"].update(empty=[]), r"wordlists\.json: lists: .*at least one word"),
])
def test_each_rule_file_has_a_schema_and_errors_name_the_file_and_entry(tmp_path, name, change, message):
    rules_dir = _broken_copy(tmp_path, name, change)
    with pytest.raises(RulesError, match=message):
        load_rules(rules_dir)


def test_word_lists_are_defined_once_and_referenced():
    lists = json.loads((DEFAULT_RULES_DIR / "wordlists.json").read_text())["lists"]
    context = (DEFAULT_RULES_DIR / "context.json").read_text()
    assert "reports?|reported|states?" not in context and context.count("@{reporting-verbs}") == 4
    assert context.count('"@relatives"') == 2
    rules = load_rules()
    patterns = [r["pattern"] for r in rules.context_rules]
    assert not any("@{" in p for p in patterns if isinstance(p, str))
    assert sum(p.count("(?:" + "|".join(lists["reporting-verbs"]) + ")") for p in patterns if isinstance(p, str)) == 4
    assert sum(1 for p in patterns if isinstance(p, list) and any(t.get("LOWER", {}) == {"IN": lists["relatives"]}
                                                                  for t in p)) == 2
    findings = TextReader().read("Wife reports he has been incontinent of urine.", None)
    assert ("cauda-equina-urinary-incontinence", "affirmed") in {(f.group, f.assertion) for f in findings}
