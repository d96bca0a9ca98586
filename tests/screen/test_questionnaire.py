"""The screen's Questionnaire is rule data that must agree with the rest of the rules
(docs/clinical-specification.md §12.1): valid FHIR R4, every yes/no question mapped to a red-flag
kind the value sets know, with the same look-back window, and a broken file stops the start-up."""

from __future__ import annotations

import json

import pytest

from cds_service.read.screen import QUESTIONNAIRE_FILE, ScreenDataError, load_questionnaire
from cds_service.read.valuesets import load_valuesets


def test_every_red_flag_question_is_a_value_set_kind_with_its_window():
    questionnaire = load_questionnaire()
    kinds = {(vs.group, vs.kind): vs.window_days for vs in load_valuesets().by_id.values() if vs.group}
    red_flags = [q for q in questionnaire.questions if q.is_red_flag]
    assert len(red_flags) == 14
    for question in red_flags:
        assert (question.group, question.kind) in kinds, question.link_id
        assert question.window_days == kinds[(question.group, question.kind)], question.link_id
    management = {vs.kind for vs in load_valuesets().by_id.values() if vs.id.startswith("management-")}
    assert {q.kind for q in questionnaire.questions if not q.is_red_flag} <= management


def test_every_question_the_screen_asks_has_its_page_words():
    questionnaire = load_questionnaire()
    sections = questionnaire.sections([q.link_id for q in questionnaire.questions])
    assert [name for name, _ in sections] == [
        "Cauda equina signs (new, with this episode)", "Neurological deficit", "Infection", "Cancer",
        "Fracture risk", "Conservative care tried in this episode"]
    assert all(q.text and q.label for q in questionnaire.questions)


@pytest.mark.parametrize("breakage", ["not json", "no extension", "not a questionnaire"])
def test_a_broken_questionnaire_is_refused_at_start_up(tmp_path, breakage):
    data = json.loads(QUESTIONNAIRE_FILE.read_text(encoding="utf-8"))
    if breakage == "no extension":
        del data["item"][1]["item"][0]["extension"]
    elif breakage == "not a questionnaire":
        data["item"] = {"linkId": "onset"}  # one item where FHIR has a list
    path = tmp_path / "screen.json"
    path.write_text("{" if breakage == "not json" else json.dumps(data), encoding="utf-8")
    with pytest.raises(ScreenDataError):
        load_questionnaire(path)
