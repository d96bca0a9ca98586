"""Cards, suggestions and system actions rendered from decisions (clinical-specification.md §7 and §7.6)."""

from __future__ import annotations

import shutil
import uuid

import pytest
import yaml

from cds_service import cards_dir
from cds_service.decide.outcomes import TOPICS
from cds_service.decide.rules import decide
from cds_service.read.inputs import (
    CAUDA_EQUINA,
    INFECTION,
    MALIGNANCY,
    MRI,
    WITH,
    WITHOUT,
    XR,
    Evidence,
    RedFlagFact,
)
from cds_service.render.cards import (
    PAMA_CONSULT_ID_URL,
    PAMA_RATING_SYSTEM,
    PAMA_RATING_URL,
    CardContentError,
    CardRenderer,
)
from tests.decide.builders import PATIENT_ID, REF, episode, flag, inputs, order, prior
from tests.decide.test_decide import TABLE
from tests.support.cds_conformance import assert_conforms

PATIENT = f"Patient/{PATIENT_ID}"


@pytest.fixture(scope="module")
def renderer():
    return CardRenderer(cards_dir(None))


def render(renderer, case):
    rendered = renderer.render(decide(case), PATIENT, case.reference_date)
    return rendered, renderer.response(rendered)


def rating_of(resource):
    ext = {e["url"]: e for e in resource["extension"]}
    return ext[PAMA_RATING_URL]["valueCodeableConcept"]["coding"][0]


@pytest.mark.parametrize("case, topic", [pytest.param(c, t, id=n) for n, c, t, *_ in TABLE])
def test_every_decision_renders_a_conforming_response(renderer, case, topic):
    rendered, response = render(renderer, case)
    assert_conforms(response)
    cards = response["cards"]
    if topic is None:
        assert cards == []
    else:
        (card,) = cards
        assert card["source"]["topic"]["code"] == topic
        assert card["source"]["topic"]["system"] == "urn:lumbar-imaging-cds:card-topic"
        assert len(card["summary"]) <= 140
        # The summary names the order's study; the emergency card's says the emergency action.
        if topic == "cauda-equina-risk":
            assert "emergency MRI lumbar spine without contrast" in card["summary"]
        else:
            assert renderer.order_name(rendered[0].decision).split(" ")[0] in card["summary"]
        # Plain words on the card, the references in its extension (§7.3).
        assert "Condition/" not in card["detail"] and "ServiceRequest/" not in card["detail"]
        assert card["extension"]["org.lumbar-imaging-cds.evidence"]["order"] == "ServiceRequest/o1"
        assert card["links"][0]["type"] == "absolute"
    # Every rated order gets one system action, in both places.
    assert response["systemActions"] == response["extension"]["systemActions"]
    (action,) = response["systemActions"]
    assert action["type"] == "update" and action["resource"]["id"] == "o1"
    assert rating_of(action["resource"]) == {"system": PAMA_RATING_SYSTEM, "code": rendered[0].decision.rating}


def test_imaging_before_6_weeks_card(renderer):
    case = inputs(episodes=[episode(onset_days=20, cid="lbp-7")], unavailable=["observations", "medications"],
                  skipped=["Observation/broken-1"])
    rendered, response = render(renderer, case)
    (card,) = response["cards"]
    assert card["indicator"] == "warning"
    assert "2 weeks" in card["summary"] and "MRI lumbar spine without contrast" in card["summary"]
    assert "reassess on 23 Jun 2026" in card["summary"]
    detail = card["detail"]
    for expected in ("Low back pain on the problem list since 12 May 2026", "2 weeks by 1 Jun 2026",
                     "**Reassess on 23 Jun 2026**",
                     "Screened in the record: cauda equina, neurological deficit, infection, cancer, fracture: none found.",
                     "**Not checked:** temperature, weight and post-void residual, prescriptions.",
                     "1 unreadable record skipped.", "physical therapy"):
        assert expected in detail, expected
    for absent in ("Condition/lbp-7", "Observation/broken-1", "CPT", "72148", "2026-05-12"):
        assert absent not in detail, absent
    evidence = card["extension"]["org.lumbar-imaging-cds.evidence"]
    assert evidence["evidence"][0] == {"role": "episode", "reference": "Condition/lbp-7", "resourceType": "Condition",
                                       "system": evidence["evidence"][0]["system"], "code": "279039007",
                                       "display": "Low back pain", "date": "2026-05-12"}
    assert evidence["skippedRecords"] == ["Observation/broken-1"]
    assert evidence["orderCode"]["code"] == "72148" and evidence["referenceDate"] == "2026-06-01"
    remove, refer = card["suggestions"]  # one action each: Epic applies one action per suggestion
    assert card["selectionBehavior"] == "any"
    assert (remove["label"], remove.get("isRecommended"), refer["label"]) == (
        "Remove the imaging order", True, "Refer to physical therapy")
    (delete,), (create,) = remove["actions"], refer["actions"]
    # Epic shows the description instead of the label: it reads on its own.
    assert delete["description"].startswith("Remove the draft order: MRI")
    assert create["description"] == "Refer the patient to physical therapy for low back pain"
    assert delete == {"type": "delete", "description": delete["description"], "resourceId": ["ServiceRequest/o1"]}
    pt = create["resource"]
    assert create["type"] == "create" and pt["resourceType"] == "ServiceRequest"
    assert pt["code"]["coding"][0]["code"] == "91251008"
    assert pt["subject"] == {"reference": PATIENT}
    assert pt["reasonCode"][0]["coding"][0]["code"] == "279039007"
    assert {r["code"] for r in card["overrideReasons"]} >= {"red-flag-not-in-record"}
    assert rendered[0].suggestion_uuids == (remove["uuid"], refer["uuid"])


def test_lower_bound_onset_is_said_in_the_card(renderer):
    _, response = render(renderer, inputs(episodes=[episode(recorded_days=10)]))
    (card,) = response["cards"]
    assert "at least" in card["summary"]
    assert "recorded 22 May 2026 (onset not recorded): at least 10 days" in card["detail"]
    assert card["extension"]["org.lumbar-imaging-cds.evidence"]["onsetIsLowerBound"] is True


def test_cauda_equina_card_suggests_stat_mri_carrying_its_rating(renderer):
    fact = RedFlagFact(CAUDA_EQUINA, "urinary-retention", "Urinary retention",
                       Evidence("Condition/ret-1", "Condition", "267064002", "http://snomed.info/sct",
                                "Retention of urine", REF))
    _, response = render(renderer, inputs(orders=[order(XR)], flags=[fact]))
    (card,) = response["cards"]
    assert card["indicator"] == "critical"
    assert card["detail"].startswith("**Sign:** Urinary retention on the problem list, 1 Jun 2026.")
    assert "MRI lumbar spine without contrast within hours" in card["detail"] and len(card["detail"]) <= 400
    (item,) = [i for i in card["extension"]["org.lumbar-imaging-cds.evidence"]["evidence"] if i["role"].startswith("red-flag")]
    assert (item["reference"], item["code"], item["role"]) == ("Condition/ret-1", "267064002",
                                                                 "red-flag:cauda-equina:urinary-retention")
    (suggestion,) = card["suggestions"]
    (update,) = suggestion["actions"]
    assert card["selectionBehavior"] == "any"
    # What Epic shows instead of the label: the order and what the update makes of it.
    assert update["description"] == "Change X-ray lumbar spine to MRI lumbar spine without contrast, stat priority"
    resource = update["resource"]
    assert update["type"] == "update" and resource["id"] == "o1"
    assert resource["code"]["coding"][0]["code"] == "72148"
    assert resource["priority"] == "stat"
    assert rating_of(resource)["code"] == "appropriate"
    # The order itself (X-ray) is rated not appropriate in the system action.
    assert rating_of(response["systemActions"][0]["resource"])["code"] == "not-appropriate"


def test_prefer_mri_update_keeps_the_order_and_rates_it(renderer):
    _, response = render(renderer, inputs(orders=[order(MRI, WITH, priority="urgent")], episodes=[episode(onset_days=60)],
                                          management=[20]))
    (card,) = response["cards"]
    assert card["indicator"] == "info"
    resource = card["suggestions"][0]["actions"][0]["resource"]
    assert resource["priority"] == "urgent" and resource["subject"] == {"reference": PATIENT}
    assert rating_of(resource)["code"] == "appropriate"
    assert "reasonCode" not in resource  # the sandbox's empty [] is not echoed back


def test_repeat_imaging_card_cites_the_prior_study(renderer):
    _, response = render(renderer, inputs(priors=[prior(MRI, 120, "mr-9")]))
    (card,) = response["cards"]
    assert "1 Feb 2026" in card["summary"]
    assert "a lumbar MRI in the imaging record, 1 Feb 2026 (120 days ago)" in card["detail"]
    assert "**reassess on 1 Feb 2027**" in card["detail"]
    evidence = card["extension"]["org.lumbar-imaging-cds.evidence"]["evidence"]
    assert {"role": "prior-imaging", "reference": "ImagingStudy/mr-9"}.items() <= evidence[-1].items()
    (action,) = card["suggestions"][0]["actions"]
    assert action["type"] == "delete" and action["resourceId"] == ["ServiceRequest/o1"]


def test_duration_unknown_card_has_no_override_reasons_or_suggestions(renderer):
    _, response = render(renderer, inputs(episodes=[episode(cid="undated")]))
    (card,) = response["cards"]
    assert "Low back pain on the problem list, with no onset or recorded date" in card["detail"]
    assert card["extension"]["org.lumbar-imaging-cds.evidence"]["evidence"][0]["reference"] == "Condition/undated"
    assert "suggestions" not in card and "overrideReasons" not in card and "selectionBehavior" not in card


def test_several_orders_cards_name_their_order_and_consult_ids_are_unique(renderer):
    case = inputs(orders=[order(XR, oid="a"), order(MRI, WITH, oid="b"), order(MRI, WITHOUT, oid="c")],
                  episodes=[episode(onset_days=60)], management=[20])
    rendered, response = render(renderer, case)
    assert_conforms(response)
    summaries = [c["summary"] for c in response["cards"]]
    assert len(summaries) == 2
    assert summaries[0].startswith("X-ray lumbar spine") and summaries[1].startswith("MRI lumbar spine with contrast")
    assert [a["resource"]["id"] for a in response["systemActions"]] == ["a", "b", "c"]
    consults = [r.consult_id for r in rendered]
    assert len(set(consults)) == 3 and all(c.startswith("urn:uuid:") and uuid.UUID(c[9:]) for c in consults)
    for action, consult in zip(response["systemActions"], consults, strict=True):
        ext = {e["url"]: e for e in action["resource"]["extension"]}
        assert ext[PAMA_CONSULT_ID_URL]["valueUri"] == consult


def test_existing_pama_extension_is_replaced_not_duplicated(renderer):
    o = order()
    o.resource["extension"] = [
        {"url": PAMA_RATING_URL, "valueCodeableConcept": {"coding": [{"system": PAMA_RATING_SYSTEM, "code": "appropriate"}]}},
        {"url": "http://example.org/other", "valueString": "kept"},
    ]
    _, response = render(renderer, inputs(orders=[o]))
    extensions = response["systemActions"][0]["resource"]["extension"]
    assert [e["url"] for e in extensions].count(PAMA_RATING_URL) == 1
    assert {"url": "http://example.org/other", "valueString": "kept"} in extensions
    assert rating_of(response["systemActions"][0]["resource"])["code"] == "not-appropriate"


def test_no_system_action_and_no_empty_arrays_when_nothing_is_rated(renderer):
    case = inputs(orders=[])
    _, response = render(renderer, case)
    assert response == {"cards": []}


def test_record_text_cannot_inject_markdown(renderer):
    evil = RedFlagFact(INFECTION, "fever", "Fever", Evidence(
        "Observation/x`y", "Observation", "8310-5", "http://loinc.org", "[click me](http://evil.example) <b>",
        REF, "Temp\x00 38.5 **Cel** [click me](http://evil.example) <b>"), window_days=14)
    _, response = render(renderer, inputs(orders=[order(XR)], flags=[evil]))
    detail = response["cards"][0]["detail"]
    assert "[click me](http" not in detail and "<b>" not in detail and "\x00" not in detail
    assert r"Fever (temp 38.5 \*\*Cel\*\* \[click me\]\(http://evil.example\) \<b\>) in the observations" in detail
    assert "Observation/x`y" not in detail  # the reference is in the extension, as sent
    references = [i["reference"] for i in response["cards"][0]["extension"]["org.lumbar-imaging-cds.evidence"]["evidence"]]
    assert "Observation/x`y" in references


@pytest.fixture
def cards_copy(tmp_path):
    target = tmp_path / "cards"
    shutil.copytree(cards_dir(None), target)
    return target


def test_card_wording_comes_from_the_yaml_files_and_summaries_stay_short(cards_copy):
    common = yaml.safe_load((cards_copy / "common.yaml").read_text())
    common["study_labels"]["XR"] = "Plain radiograph of the lumbosacral spine, " * 6
    (cards_copy / "common.yaml").write_text(yaml.safe_dump(common))
    topic = yaml.safe_load((cards_copy / "prefer-mri-without-contrast.yaml").read_text())
    topic["source"]["label"] = "Local imaging committee"
    (cards_copy / "prefer-mri-without-contrast.yaml").write_text(yaml.safe_dump(topic))
    renderer = CardRenderer(cards_copy)
    _, response = render(renderer, inputs(orders=[order(XR)], episodes=[episode(onset_days=60)], management=[20]))
    (card,) = response["cards"]
    assert card["source"]["label"] == "Local imaging committee"
    assert len(card["summary"]) <= 140
    assert card["summary"].startswith("Plain radiograph of the lumbosacral spine")
    assert card["summary"].endswith("the usually appropriate study here")  # the advice is never cut


@pytest.mark.parametrize("topic", TOPICS)
def test_a_missing_topic_file_fails_at_start_up(cards_copy, topic):
    (cards_copy / f"{topic}.yaml").unlink()
    with pytest.raises(CardContentError, match=topic):
        CardRenderer(cards_copy)


def test_a_broken_template_fails_at_start_up(cards_copy):
    path = cards_copy / "repeat-imaging.yaml"
    data = yaml.safe_load(path.read_text())
    data["detail"] = "{% for x in %}"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CardContentError, match="repeat-imaging/detail"):
        CardRenderer(cards_copy)


def test_override_reason_without_display_fails_at_start_up(cards_copy):
    path = cards_copy / "repeat-imaging.yaml"
    data = yaml.safe_load(path.read_text())
    data["override_reasons"].append({"code": "no-display"})
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CardContentError, match="override reason"):
        CardRenderer(cards_copy)


def test_red_flag_checklist_lists_found_and_documented_absent(renderer):
    facts = [flag(INFECTION, "fever", days=5, window=14, label="Fever 38.4 C", ref="Observation/t1"),
             flag(CAUDA_EQUINA, "saddle-anaesthesia", days=9, label="Saddle anaesthesia", ref="Condition/s1"),
             flag(CAUDA_EQUINA, "saddle-anaesthesia", days=2, negated=True, label="Saddle anaesthesia absent",
                  ref="Observation/neg1")]
    _, response = render(renderer, inputs(orders=[order(MRI, WITHOUT)], flags=facts,
                                          episodes=[episode(onset_days=60)], priors=[]))
    assert response["cards"] == []  # MRI without contrast with an infection red flag: appropriate
    _, response = render(renderer, inputs(orders=[order(XR)], flags=facts, episodes=[episode(onset_days=60)]))
    detail = response["cards"][0]["detail"]
    assert "**Why imaging:** Fever 38.4 C in the observations, 27 May 2026." in detail
    assert ("Screened in the record: cauda equina, neurological deficit, cancer, fracture: none found; "
            "found: infection; documented absent: saddle anaesthesia.") in detail
    evidence = response["cards"][0]["extension"]["org.lumbar-imaging-cds.evidence"]
    assert [i["reference"] for i in evidence["documentedAbsent"]] == ["Condition/s1"]


@pytest.mark.parametrize("group, kind, window", [(INFECTION, "spinal-infection", 365), (MALIGNANCY, "history-of-cancer", None)])
def test_contrast_mri_with_suspected_infection_or_tumour_is_also_offered_without_and_with(renderer, group, kind, window):
    """ACR variant 7: MRI without and with contrast is usually appropriate; the card must not
    only steer away from contrast (seen in the CDS Hooks sandbox: 72149 + osteomyelitis)."""
    suspected = flag(group, kind, days=5, window=window)
    _, response = render(renderer, inputs(orders=[order(MRI, WITH)], flags=[suspected]))
    assert_conforms(response)
    (card,) = response["cards"]
    assert card["source"]["topic"]["code"] == "prefer-mri-without-contrast"
    without, without_with = card["suggestions"]
    assert without["isRecommended"] is True and "isRecommended" not in without_with
    assert without["actions"][0]["resource"]["code"]["coding"][0]["code"] == "72148"
    contrast_resource = without_with["actions"][0]["resource"]
    assert contrast_resource["code"]["coding"][0]["code"] == "72158"
    assert rating_of(contrast_resource)["code"] == "appropriate"
    assert "without and with contrast" in without_with["label"]
    # Two alternative studies for the same order: taking both would leave whichever came last.
    assert card["selectionBehavior"] == "at-most-one"
    assert without_with["actions"][0]["description"] == (
        "Change MRI lumbar spine with contrast to MRI lumbar spine without and with contrast")
    assert "usually appropriate, and so is MRI lumbar spine without and with contrast" in card["detail"]


def test_contrast_mri_without_a_reason_for_contrast_is_offered_only_mri_without(renderer):
    _, response = render(renderer, inputs(orders=[order(MRI, WITH)], episodes=[episode(onset_days=60)], management=[20]))
    (card,) = response["cards"]
    (suggestion,) = card["suggestions"]
    assert suggestion["actions"][0]["resource"]["code"]["coding"][0]["code"] == "72148"
    assert "and so is" not in card["detail"]


def test_cauda_equina_with_a_routine_mri_without_contrast_asks_only_for_stat(renderer):
    """The same study at another priority: the label and detail say so (no "instead")."""
    fact = flag(CAUDA_EQUINA, "urinary-retention", days=1, window=None)
    _, response = render(renderer, inputs(orders=[order(MRI, WITHOUT, priority="routine")], flags=[fact]))
    (card,) = response["cards"]
    assert len(card["summary"]) <= 140 and "\u2026" not in card["summary"]
    assert card["summary"].startswith("Possible cauda equina syndrome: emergency MRI")
    (suggestion,) = card["suggestions"]
    assert suggestion["label"] == "Make this MRI lumbar spine without contrast stat priority"
    assert suggestion["actions"][0]["resource"]["priority"] == "stat"
    assert suggestion["actions"][0]["description"] == "Make MRI lumbar spine without contrast stat priority"
    assert "Make the MRI ordered stat." in card["detail"]
    assert "CT only" not in card["detail"]
