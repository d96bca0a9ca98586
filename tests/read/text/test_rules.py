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
