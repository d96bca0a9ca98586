"""Every rule-data file is checked against its schema at start-up, and a bad one is refused with
a message naming the file, the entry and the problem (cds_service/rules/loader.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from cds_service.read.order_names import RULES_FILE, OrderNameRulesError, load_order_name_rules
from cds_service.read.valuesets import VALUESET_DIR, ValueSetError, load_valuesets_from
from cds_service.render.cards import CardContentError, CardRenderer
from cds_service.rules.loader import RuleDataError, RuleModel, shown, validate_rule_data

REPO = Path(__file__).resolve().parent.parent.parent
FEVER = json.loads((VALUESET_DIR / "infection-fever.json").read_text(encoding="utf-8"))


def broken_valueset(tmp_path, change) -> str:
    """The fever value set with one change, loaded from tmp_path: the error's message."""
    data = json.loads(json.dumps(FEVER))
    data["entries"] = [dict(entry) for entry in data["entries"] * 3]  # at least three entries
    change(data)
    (tmp_path / "infection-fever.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueSetError) as error:
        load_valuesets_from(tmp_path)
    assert isinstance(error.value, RuleDataError)
    assert str(error.value).startswith(str(tmp_path / "infection-fever.json") + ": ")
    return str(error.value).split(".json: ", 1)[1]


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["entries"][2].update(sytem="http://snomed.info/sct"),
     "entry 3 (entries[2]): unknown key(s) ['sytem']; allowed: ['code', 'contrast', 'display', 'exclude', "),
    (lambda d: d["entries"][1].pop("code"), "entry 2 (entries[1]): missing key 'code'"),
    (lambda d: d["entries"][0].update(match="fuzzy"), "entry 1 (entries[0]): 'match': Input should be 'exact' or 'prefix'"),
    (lambda d: d["entries"][1].update(modality="MRI"), "entry 2 (entries[1]): ['modality'] not an attribute of a red-flag value set"),
    (lambda d: d.update(windw_days=14), "unknown key(s) ['windw_days']"),
    (lambda d: d.pop("evidence_rule"), "red-flag value set needs 'evidence_rule'"),
    (lambda d: d.update(window_days=0), "'window_days': Input should be greater than 0"),
    (lambda d: d.update(group="infections"), "'group': Input should be 'cauda-equina', 'neurological-deficit'"),
    (lambda d: d.update(id="fever"), "id 'fever' differs from the file name"),
    (lambda d: d["entries"][0].update(match="prefix", system="http://snomed.info/sct"),
     "entry 1 (entries[0]): prefix matching only for"),
])
def test_a_bad_value_set_is_refused_naming_the_entry_and_the_key(tmp_path, change, message):
    assert broken_valueset(tmp_path, change).startswith(message)


def test_a_shipped_file_is_named_by_its_place_in_the_rules_folder():
    assert shown(VALUESET_DIR / "infection-fever.json") == "rules/valuesets/infection-fever.json"
    assert shown(RULES_FILE) == "rules/orders/order-names.json"


def broken_order_names(tmp_path, change) -> str:
    data = json.loads(RULES_FILE.read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "order-names.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(OrderNameRulesError) as error:
        load_order_name_rules(path)
    return str(error.value).split(".json: ", 1)[1]


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["modality"][2].update(modalty="MRI"), "modality rule 3: unknown key(s) ['modalty']"),
    (lambda d: d["contrast"][0].update(pattern="{withot} or x"), "contrast rule 1: 'pattern' names unknown word list(s) ['withot']"),
    (lambda d: d["modality"][0].update(absorbs=["PET"]), "modality rule 1: 'absorbs[0]': Input should be 'XR', 'CT'"),
    (lambda d: d.update(lumbar=[]), "'lumbar': List should have at least 1 item"),
    (lambda d: d["lumbar"][0].pop("description"), "lumbar rule 1: missing key 'description'"),
])
def test_a_bad_order_name_rule_is_refused_naming_the_rule(tmp_path, change, message):
    assert broken_order_names(tmp_path, change).startswith(message)


def test_order_name_patterns_share_the_word_lists_once():
    """'without' and 'with' are spelled once, in `words`, and every contrast rule refers to them."""
    raw = json.loads(RULES_FILE.read_text(encoding="utf-8"))
    assert set(raw["words"]) == {"without", "with"}
    for rule in raw["contrast"]:
        for words in raw["words"].values():
            assert words not in rule["pattern"], rule["description"]
    rules = load_order_name_rules()
    assert sum(raw["words"]["without"] in r.pattern.pattern for r in rules.by_section["contrast"]) >= 4


@pytest.fixture
def cards_copy(tmp_path):
    target = tmp_path / "cards"
    shutil.copytree(REPO / "cards", target)
    return target


@pytest.mark.parametrize(("file", "change", "message"), [
    ("repeat-imaging.yaml", lambda d: d.update(summry="x"), "unknown key(s) ['summry']"),
    ("repeat-imaging.yaml", lambda d: d["links"][0].update(url="http://example.org"),
     "link 1: every link needs a label and an https url"),
    ("repeat-imaging.yaml", lambda d: d["override_reasons"][0].pop("display"), "override reason 1: missing key 'display'"),
    # the CDS Hooks 3.0 example code an override reason maps to must be one of that value set
    ("repeat-imaging.yaml", lambda d: d["override_reasons"][0].update(non_adherence="too-busy"), "override reason 1: "),
    ("common.yaml", lambda d: d["rating_labels"].update({"maybe-appropriate": "May be"}), "'rating_labels.maybe-appropriate"),
    ("common.yaml", lambda d: d.pop("partials"), "missing key 'partials'"),
])
def test_a_bad_card_file_is_refused_naming_the_file_and_the_key(cards_copy, file, change, message):
    path = cards_copy / file
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(CardContentError) as error:
        CardRenderer(cards_copy)
    assert str(error.value).startswith(f"{path}: {message}")


class _Dose(RuleModel):
    entry_label = "{list}[{i}]"

    pattern: str


class _Item(RuleModel):
    entry_label = "{list}[{i}] ({name})"

    name: str
    doses: list[_Dose] = []


class _Forms(RuleModel):
    not_systemic: list[_Dose]


class _File(RuleModel):
    items: list[_Item]
    forms: _Forms


@pytest.mark.parametrize("data, message", [
    # an entry's label may name one of its own values; a nested list keeps the keys above it
    ({"items": [{"name": "naproxen", "brand": "Aleve"}], "forms": {"not_systemic": []}},
     "f.json: items[0] (naproxen): unknown key(s) ['brand']; allowed: ['doses', 'name']"),
    ({"items": [{"name": "ibuprofen", "doses": [{"pattern": 3}]}], "forms": {"not_systemic": []}},
     "f.json: items[0] (ibuprofen): doses[0]: 'pattern': Input should be a valid string"),
    ({"items": [], "forms": {"not_systemic": [{}]}}, "f.json: forms.not_systemic[0]: missing key 'pattern'"),
    # an entry without the value its label names: the default label
    ({"items": [{"doses": []}], "forms": {"not_systemic": []}}, "f.json: entry 1 (items[0]): missing key 'name'"),
])
def test_entry_labels_name_the_entry_by_its_own_values_and_its_place(data, message):
    with pytest.raises(RuleDataError) as error:
        validate_rule_data(data, _File, "f.json")
    assert str(error.value) == message
