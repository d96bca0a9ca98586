"""Medicines as EHRs record them (clinical-specification.md §3.7): the vocabulary (rule data and its
schema), recognition by code then by name, the dose form, and where a record keeps its medicine
(medicationCodeableConcept, a contained, gathered or fetched Medication, a reference's display)."""

from __future__ import annotations

import json
from datetime import date

import pytest

from cds_service.gather.medications import gather_medications, reference_key
from cds_service.gather.prefetch import GatheredData, shape_problem
from cds_service.queries import build_query_plan
from cds_service.read.care_names import CareNamesError, load_care_names, load_care_names_file
from cds_service.read.medicines import VOCABULARY_FILE, VocabularyError, load_vocabulary
from cds_service.read.valuesets import load_valuesets
from cds_service.rules.schemas.medicines import load_vocabulary_file
from tests.read.builders import PID, bundle, condition, order, run

RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
SUBJECT = {"reference": f"Patient/{PID}"}
VOCABULARY = load_vocabulary()


def names(text: str) -> list[str]:
    return [m.ingredient.name for m in VOCABULARY.by_name([text])]


@pytest.mark.parametrize(("text", "ingredient"), [
    ("methylPREDNISolone 4 MG Oral Tablet", "methylprednisolone"),
    ("naproxen (NAPROSYN) 500 MG tablet", "naproxen"),
    ("Ibuprofen 400 mg tab, 1 PO TID prn", "ibuprofen"),
    ("Aleve 220 mg, OTC", "naproxen"),
    ("Mobic 15 mg", "meloxicam"),
    ("Naproxen sodium 220 MG Oral Tablet", "naproxen"),
    ("HYDROcodone-acetaminophen (NORCO) 5-325 MG per tablet", "acetaminophen"),
    ("oxyCODONE-acetaminophen (PERCOCET) 5-325 mg", "acetaminophen"),
    ("Percocet 5/325", "acetaminophen"),
    ("co-codamol 30/500 tablets", "acetaminophen"),
    ("Paracetamol 500mg tablets", "acetaminophen"),
    ("NUROFEN 200MG", "ibuprofen"),
    ("Solu-Medrol 125 mg IV push", "methylprednisolone"),
    ("Depo-Medrone with lidocaine", "methylprednisolone"),
    ("cyclobenzaprine (FLEXERIL) 10 MG tablet", "cyclobenzaprine"),
    ("gabapentin (NEURONTIN) 300 MG capsule", "gabapentin"),
    ("Lyrica 75mg", "pregabalin"),
])
def test_ingredients_and_brands_are_recognised_by_name(text, ingredient):
    assert names(text) == [ingredient]


def test_the_names_of_a_text_are_found_the_same_when_remembered():
    text = "Naproxen sodium 220 MG Oral Tablet and Percocet"
    first = VOCABULARY.by_name([text])
    hits = VOCABULARY._names_of.cache_info().hits
    assert VOCABULARY.by_name([text]) == first and VOCABULARY._names_of.cache_info().hits == hits + 1
    again = VOCABULARY.by_name([text.upper(), text])
    assert [(m.ingredient.name, m.word) for m in first] == [("naproxen", "Naproxen"), ("acetaminophen", "Percocet")]
    assert [(m.ingredient.name, m.word) for m in again] == [("naproxen", "NAPROXEN"), ("acetaminophen", "PERCOCET")]


@pytest.mark.parametrize("text", [
    "methylprednisolone 4 mg",  # not prednisolone inside it
    "hydrocortisone 10 mg",  # not cortisone inside it
    "lisinopril 10 MG Oral Tablet",
    "Ibuprofenx",  # whole words only
    "PT/INR",
])
def test_a_name_inside_another_word_is_not_a_match(text):
    found = names(text)
    assert "prednisolone" not in found and "cortisone" not in found and "ibuprofen" not in found
    assert len(found) <= 1


def test_codes_come_first_and_say_so():
    scd = VOCABULARY.recognise([{"system": RX, "code": "197806"}], ["naproxen"])
    assert [(m.ingredient.name, m.recognised_by, m.product.tty) for m in scd] == [("ibuprofen", "code", "SCD")]
    sbd = VOCABULARY.recognise([{"system": "urn:oid:2.16.840.1.113883.6.88", "code": "209387"}], [])
    assert [(m.ingredient.name, m.product.tty) for m in sbd] == [("acetaminophen", "SBD")]
    # An RxNorm code the vocabulary does not know: the display is read by name.
    unknown = VOCABULARY.recognise([{"system": RX, "code": "1049221"}], ["Naproxen 375 MG Oral Tablet"])
    assert [(m.ingredient.name, m.recognised_by, m.word) for m in unknown] == [("naproxen", "name", "Naproxen")]


def test_a_cough_and_cold_remedy_is_not_back_pain_care():
    syrup = "Acetaminophen 21.7 MG/ML / Dextromethorphan Hydrobromide 1 MG/ML / doxylamine succinate 0.417 MG/ML Oral Solution"
    assert VOCABULARY.recognise([], [syrup]) == []
    assert [m.ingredient.name for m in VOCABULARY.recognise([], ["Tylenol PM (acetaminophen/diphenhydramine)"])] == ["acetaminophen"]


@pytest.mark.parametrize(("text", "systemic"), [
    ("predniSONE 20 MG Oral Tablet", True),
    ("methylPREDNISolone acetate 40 MG/ML Injectable Suspension", True),
    ("prednisoLONE 3 MG/ML Oral Solution", True),
    ("Ibuprofen 200 MG Oral Capsule [Advil Liqui-Gels]", True),
    ("Mobic 15 mg", True),
    ("budesonide 0.25 MG/ML Inhalation Suspension", False),
    ("triamcinolone acetonide 55 MCG/ACTUAT Nasal Spray", False),
    ("diclofenac sodium 10 MG/ML Topical Gel [Voltaren]", False),
    ("hydrocortisone 1 % Topical Cream", False),
    ("prednisoLONE acetate 10 MG/ML Ophthalmic Suspension", False),
    ("ciprofloxacin-dexamethasone otic suspension", False),
    ("Fluorouracil (EFUDEX) 5 % Top Crea", False),
    ("triamcinolone acetonide 1 MG/ML Oral Paste", False),
])
def test_the_dose_form_decides_systemic_or_not(text, systemic):
    assert VOCABULARY.systemic([text]) is systemic


def test_every_ingredient_code_is_in_its_groups_value_set():
    """The vocabulary and the value sets agree: an ingredient's RxNorm code selects the same group."""
    valuesets = load_valuesets()
    groups = VOCABULARY.vocabulary.groups
    for ingredient in VOCABULARY.ingredients:
        if ingredient.rxnorm:
            hits = {e.valueset.id for e in valuesets.lookup(RX, ingredient.rxnorm)}
            assert groups[ingredient.group].valueset in hits, ingredient.name


def test_the_vocabulary_names_its_sources_and_size():
    vocabulary = VOCABULARY.vocabulary
    products = [p for i in vocabulary.ingredients for p in i.products]
    assert len(vocabulary.ingredients) >= 35 and len(products) >= 15
    assert {p.source for p in products} <= set(vocabulary.sources)
    assert {p.tty for p in products} == {"SCD", "SBD"}


def _broken(tmp_path, change) -> str:
    raw = json.loads(VOCABULARY_FILE.read_text(encoding="utf-8"))
    change(raw)
    path = tmp_path / "vocabulary.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(VocabularyError) as error:
        load_vocabulary_file(path)
    return str(error.value)


def _ingredient(raw: dict, name: str) -> dict:
    return next(i for i in raw["ingredients"] if i["name"] == name)


def test_a_broken_vocabulary_stops_the_app_naming_file_and_entry(tmp_path):
    # The file, the entry (named by the ingredient) and the problem, as every rule file says them
    # (rules.loader).
    message = _broken(tmp_path, lambda raw: _ingredient(raw, "naproxen").update(brand="Aleve"))
    assert message.startswith(str(tmp_path / "vocabulary.json") + ": ingredients[")
    assert "] (naproxen): unknown key(s) ['brand']; allowed: ['brands'," in message
    message = _broken(tmp_path, lambda raw: _ingredient(raw, "ibuprofen")["products"][0].update(rxnorm="19x806"))
    assert "] (ibuprofen): products[0]: 'rxnorm': " in message and "1-8 digits" in message
    message = _broken(tmp_path, lambda raw: _ingredient(raw, "meloxicam").update(rxnorm="7258"))
    assert "(meloxicam): RxNorm code 7258 is already naproxen's" in message
    message = _broken(tmp_path, lambda raw: raw["dose_forms"]["not_systemic"][0].update(pattern=r"\binhaler\b"))
    assert "dose_forms.not_systemic[0]" in message and "does not match its examples" in message
    message = _broken(tmp_path, lambda raw: _ingredient(raw, "celecoxib").update(group="coxib"))
    assert "(celecoxib): unknown group 'coxib'" in message


def test_care_names_and_their_schema(tmp_path):
    rules = load_care_names()
    assert rules.valueset_of(["Ambulatory referral to Physical Therapy"]) == "management-physical-therapy"
    assert rules.valueset_of(["REF TO CHIROPRACTIC"]) == "management-spinal-manipulation"
    assert rules.valueset_of(["PT/INR", "Referral to cardiology"]) is None
    raw = json.loads((load_care_names_file.__globals__["RULES_FILE"]).read_text(encoding="utf-8"))
    raw["rules"][0]["counter_examples"].append("Physical therapy")
    path = tmp_path / "care_names.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(CareNamesError, match=r"care_names.json: rules\[0\]: .*counter_examples"):
        load_care_names_file(path)


# -- where the medicine is -----------------------------------------------------------------------
def prescription(mid: str, medicine: dict, when: str = "2026-02-05", **more) -> dict:
    return {"resourceType": "MedicationRequest", "id": mid, "status": "active", "intent": "order",
            "subject": SUBJECT, "authoredOn": when, **medicine, **more}


def management(**data) -> list[tuple[str, str | None, str | None]]:
    inputs = run([order()], conditions=[condition("c1", "http://snomed.info/sct", "279039007")], **data)
    return sorted((e.reference, e.display, e.recognised_by) for e in inputs.management)


def test_a_contained_or_bundled_medication_is_read_by_its_reference():
    contained = prescription("m1", {"medicationReference": {"reference": "#med"}, "contained": [
        {"resourceType": "Medication", "id": "med", "code": {"coding": [{"system": RX, "code": "198014"}]}}]})
    bundled = prescription("m2", {"medicationReference": {"reference": "Medication/med-2"}})
    medication = {"resourceType": "Medication", "id": "med-2", "code": {"text": "Mobic 7.5 mg tablet"}}
    assert management(medications=[contained, bundled, medication]) == [
        ("MedicationRequest/m1", "Naproxen 500 MG Oral Tablet", "code"),  # the SCD's RxNorm name
        ("MedicationRequest/m2", "meloxicam", "name"),
    ]


def test_a_reference_display_is_read_when_nothing_else_is_there():
    epic = prescription("m1", {"medicationReference": {"reference": "Medication/elsewhere",
                                                       "display": "ibuprofen (MOTRIN) 600 MG tablet"}})
    assert management(medications=[epic]) == [("MedicationRequest/m1", "ibuprofen", "name")]


def test_records_not_given_or_in_error_are_no_exposure():
    never = prescription("m1", {"medicationCodeableConcept": {"text": "naproxen 500 mg"}}, doNotPerform=True)
    error = prescription("m2", {"medicationCodeableConcept": {"text": "naproxen 500 mg"}}, status="entered-in-error")
    statement = {"resourceType": "MedicationStatement", "id": "s1", "status": "not-taken", "subject": SUBJECT,
                 "medicationCodeableConcept": {"text": "ibuprofen"}, "effectiveDateTime": "2026-02-01"}
    assert management(medications=[never, error], medicationStatements=bundle(statement)) == []


def test_self_reported_and_statements_count():
    reported = prescription("m1", {"medicationCodeableConcept": {"text": "Advil 200 mg OTC"}}, intent="plan",
                            reportedBoolean=True)
    statement = {"resourceType": "MedicationStatement", "id": "s1", "status": "active", "subject": SUBJECT,
                 "medicationCodeableConcept": {"text": "Voltarol 50mg tablets"}, "effectiveDateTime": "2026-02-01"}
    assert management(medications=[reported], medicationStatements=bundle(statement)) == [
        ("MedicationRequest/m1", "ibuprofen", "name"), ("MedicationStatement/s1", "diclofenac", "name")]


def test_a_systemic_steroid_known_by_name_is_exposure_and_an_inhaled_one_is_not():
    oral = prescription("m1", {"medicationCodeableConcept": {"text": "Medrol 4 mg tablets"}}, when="2025-09-01")
    inhaled = prescription("m2", {"medicationCodeableConcept": {"coding": [{"system": RX, "code": "8638"}],
                                                                "text": "prednisolone inhaler"}}, when="2025-09-01")
    inputs = run([order()], medications=[oral, inhaled], today=date(2026, 3, 1))
    assert [(e.reference, e.recognised_by) for e in inputs.corticosteroids] == [("MedicationRequest/m1", "name")]
    assert [f.kind for f in inputs.red_flags] == ["prolonged-corticosteroids"]


# -- gathering the referenced Medications ---------------------------------------------------------
def test_reference_keys():
    assert reference_key("Medication/12") == "Medication/12"
    assert reference_key("https://ehr.example.org/fhir/Medication/12/_history/3") == "Medication/12"
    assert reference_key("urn:uuid:1b2c") == "urn:uuid:1b2c"
    assert reference_key("#med") is None and reference_key("Substance/1") is None


def test_an_unreadable_reference_makes_its_key_incomplete_unless_it_has_a_display():
    def gathered(*records) -> GatheredData:
        return GatheredData(data={"medications": bundle(*records)})

    without = gathered(prescription("m1", {"medicationReference": {"reference": "Medication/x"}}))
    gather_medications(without, None, 0.0)
    assert without.incomplete == {"medications": "not-fetched"}
    named = gathered(prescription("m1", {"medicationReference": {"reference": "Medication/x", "display": "Aleve"}}))
    gather_medications(named, None, 0.0)
    assert named.incomplete == {}
    included = gathered(prescription("m1", {"medicationReference": {"reference": "Medication/x"}}),
                        {"resourceType": "Medication", "id": "x", "code": {"text": "Aleve"}})
    gather_medications(included, None, 0.0)
    assert included.incomplete == {} and set(included.medications) == {"Medication/x"}
    dangling = gathered(prescription("m1", {"medicationReference": {"reference": "urn:uuid:nowhere"}}))
    gather_medications(dangling, None, 0.0)
    assert dangling.incomplete == {"medications": "unreadable"}
    ignored = gathered(prescription("m1", {"medicationReference": {"reference": "Medication/x"}}, status="entered-in-error"))
    gather_medications(ignored, None, 0.0)
    assert ignored.incomplete == {}


def test_medication_keys_ask_for_their_medications_and_accept_them():
    plan = build_query_plan(load_valuesets(), {})
    assert plan.keys["medications"].template.endswith("&_include=MedicationRequest:medication")
    assert plan.keys["medicationStatements"].template.endswith("&_include=MedicationStatement:medication")
    # A server that refuses _include (HTTP 400) is asked again without it, the date floor kept.
    first = plan.keys["medications"].queries[0]
    assert "_include=" in first.url("p1", date(2026, 3, 1)) and "authoredon=ge2024-03-01" in first.url("p1", date(2026, 3, 1))
    retried = first.url("p1", date(2026, 3, 1), step=1)
    assert "_include" not in retried and "authoredon=ge" in retried
    included = bundle(prescription("m1", {"medicationReference": {"reference": "Medication/x"}}),
                      {"resourceType": "Medication", "id": "x"})
    assert shape_problem(included, "MedicationRequest") is None
    assert shape_problem(bundle({"resourceType": "Observation", "id": "o"}), "MedicationRequest") == \
        "an entry is a Observation, not a MedicationRequest"
