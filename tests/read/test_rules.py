"""parse_inputs, rule by rule (clinical-specification.md §3, §7.6 and §10), on small synthetic resources."""

from __future__ import annotations

from datetime import date

import pytest

from cds_service.gather.prefetch import GatheredData
from cds_service.read.parser import parse_inputs
from cds_service.read.valuesets import load_valuesets

from .builders import (
    CPT,
    ICD,
    LOINC,
    PID,
    SCT,
    TODAY,
    bundle,
    coding,
    condition,
    hook_request,
    observation,
    order,
    patient,
    quantity,
    run,
)


def flags(inputs, kind=None):
    return [f for f in inputs.red_flags if kind is None or f.kind == kind]


# ---------------------------------------------------------------- orders and reference date

def test_lumbar_order_is_read_with_modality_contrast_priority_and_date():
    inputs = run([order("o1", "72158", priority="urgent")])
    (o,) = inputs.orders
    assert (o.reference, o.modality, o.contrast, o.priority) == ("ServiceRequest/o1", "MRI", "without-with", "urgent")
    assert o.authored_on == date(2026, 2, 20) and o.code.code == "72158"
    assert o.resource["id"] == "o1"
    assert inputs.reference_date == date(2026, 2, 20)


def test_reference_date_is_the_latest_authored_on_else_today():
    inputs = run([order("a", authored="2026-01-05"), order("b", "72131", authored="2026-02-11T10:00:00Z")])
    assert inputs.reference_date == date(2026, 2, 11)
    assert run([order("a", authored=None)]).reference_date == TODAY


def test_the_sandbox_empty_order_is_not_an_order_and_not_an_error():
    inputs = run([order("empty", cpt=None)])
    assert inputs.orders == [] and inputs.skipped_resources == [] and inputs.episode == []
    assert inputs.reference_date == TODAY


def test_non_lumbar_imaging_is_not_an_order():
    chest = order("chest")
    chest["code"] = {"coding": [coding(CPT, "71046")]}
    assert run([chest, order("mri")]).orders[0].reference == "ServiceRequest/mri"
    assert len(run([chest, order("mri")]).orders) == 1


def test_loinc_and_snomed_coded_orders():
    ct = order("ct", None)
    ct["code"] = {"coding": [coding(LOINC, "24963-1")]}
    mri = order("mri", None)
    mri["code"] = {"coding": [coding(SCT, "394451000119106")]}
    got = {o.reference: (o.modality, o.contrast) for o in run([ct, mri]).orders}
    assert got == {"ServiceRequest/ct": ("CT", "unspecified"), "ServiceRequest/mri": ("MRI", "without")}


def test_order_select_judges_only_the_selected_orders():
    orders = [order("a", "72148", authored="2026-02-01"), order("b", "72100", authored="2026-02-25")]
    request = hook_request(orders, hook="order-select", selections=["ServiceRequest/a"])
    inputs = run(request=request)
    assert [o.reference for o in inputs.orders] == ["ServiceRequest/a"]
    assert inputs.reference_date == date(2026, 2, 1)  # from the judged order only


def test_order_select_matches_a_selection_by_full_url():
    draft = {"resourceType": "Bundle", "entry": [
        {"fullUrl": "urn:uuid:1234", "resource": order("a")}, {"resource": order("b")}]}
    request = hook_request([], hook="order-select", selections=["urn:uuid:1234"], draft_bundle=draft)
    assert [o.reference for o in run(request=request).orders] == ["ServiceRequest/a"]


def test_order_sign_judges_every_lumbar_order():
    assert len(run([order("a"), order("b", "72131")]).orders) == 2


def test_an_order_for_another_patient_is_not_judged():
    assert run([order("a", patient="someone-else")]).orders == []


def test_a_malformed_lumbar_order_is_skipped_and_reported():
    broken = order("bad", authored="20th of February")  # not a FHIR dateTime
    inputs = run([broken, order("good")])
    assert [o.reference for o in inputs.orders] == ["ServiceRequest/good"]
    assert inputs.skipped_resources == ["ServiceRequest/bad"]


# ---------------------------------------------------------------- the order's reasonCode

def test_reason_code_qualifies_the_episode():
    inputs = run([order(reason=[(SCT, "279039007")])])
    (episode,) = inputs.episode
    assert episode.from_order_reason and episode.onset is None and episode.recorded is None
    assert episode.evidence.reference == "ServiceRequest/o1"


@pytest.mark.parametrize("code, group, kind", [
    ("192970008", "cauda-equina", "cauda-equina-syndrome"),
    ("12454008", "cauda-equina", "cauda-equina-syndrome"),
    ("267064002", "cauda-equina", "urinary-retention"),
    ("236648008", "cauda-equina", "urinary-retention"),
    ("203241002", "infection", "spinal-infection"),
    ("422868009", "malignancy", "weight-loss"),
])
def test_reason_code_carries_a_red_flag_dated_authored_on(code, group, kind):
    inputs = run([order(reason=[(SCT, code)])])
    (flag,) = inputs.red_flags
    assert (flag.group, flag.kind, flag.negated) == (group, kind, False)
    assert flag.evidence.reference == "ServiceRequest/o1" and flag.evidence.date == date(2026, 2, 20)
    assert inputs.episode == []  # a red-flag reason is not itself a back-pain diagnosis


def test_reason_with_empty_array_is_fine():
    inputs = run([order(reason=[])])
    assert inputs.episode == [] and inputs.red_flags == []


# ---------------------------------------------------------------- patient

def test_patient_age_and_sex_from_a_patient_or_a_bundle():
    inputs = run(patient_resource=patient("1960-02-21", "male"))
    assert inputs.patient.sex == "male" and inputs.patient.age_on(inputs.reference_date) == 65
    inputs = run(patient_resource=bundle(patient("1960-02-20", "female")))
    assert inputs.patient.age_on(inputs.reference_date) == 66 and inputs.patient.sex == "female"


def test_patient_bundle_with_several_patients_uses_this_one():
    other = patient("1950-01-01", "male", pid="someone-else")
    inputs = run(patient_resource=bundle(other, patient("1990-05-05", "female")))
    assert inputs.patient.birth_date == date(1990, 5, 5) and inputs.patient.sex == "female"


def test_another_patients_record_gives_no_birth_date():
    inputs = run(patient_resource=patient(pid="someone-else"))
    assert inputs.patient.birth_date is None


def test_malformed_patient_is_skipped_and_reported():
    inputs = run(patient_resource={"resourceType": "Patient", "id": PID, "birthDate": "1970-13-45"})
    assert inputs.patient.birth_date is None
    assert "Patient/pat-1" in inputs.skipped_resources


# ---------------------------------------------------------------- the episode

def test_episode_onset_from_onset_date_time():
    (e,) = run(conditions=[condition("c1", ICD, "M54.50", onset="2026-01-10T08:00:00-05:00")]).episode
    assert e.onset == date(2026, 1, 10) and not e.from_order_reason
    assert e.evidence.reference == "Condition/c1" and e.evidence.code == "M54.50"


def test_episode_onset_from_onset_period_start():
    c = condition("c1", SCT, "278862001", onset=None, onsetPeriod={"start": "2026-01-20"})
    assert run(conditions=[c]).episode[0].onset == date(2026, 1, 20)


def test_episode_onset_from_onset_age_and_birth_date():
    c = condition("c1", SCT, "23056005", onset=None, onsetAge={"value": 55, "unit": "a", "code": "a",
                                                               "system": "http://unitsofmeasure.org"})
    inputs = run(conditions=[c], patient_resource=patient("1970-06-15"))
    assert inputs.episode[0].onset == date(2025, 6, 15)


def test_recorded_date_only_is_a_lower_bound():
    c = condition("c1", ICD, "M54.16", onset=None, recordedDate="2026-01-02")
    (e,) = run(conditions=[c]).episode
    assert e.onset is None and e.recorded == date(2026, 1, 2)


def test_no_dates_at_all():
    (e,) = run(conditions=[condition("c1", ICD, "M54.5", onset=None)]).episode
    assert e.onset is None and e.recorded is None


@pytest.mark.parametrize("verification", ["refuted", "entered-in-error"])
def test_refuted_and_entered_in_error_conditions_are_ignored(verification):
    inputs = run(conditions=[
        condition("c1", ICD, "M54.5", verification=verification),
        condition("c2", ICD, "G83.4", verification=verification),
        condition("c3", ICD, "C50.911", verification=verification, clinical="resolved"),
    ])
    assert inputs.episode == [] and inputs.red_flags == []


def test_inactive_episode_and_current_signs_do_not_count_but_history_does():
    inputs = run(conditions=[
        condition("c1", ICD, "M54.5", clinical="resolved"),
        condition("c2", ICD, "R33.9", clinical="resolved"),
        condition("c3", ICD, "C50.911", clinical="resolved", onset="2010-05-01"),
        condition("c4", ICD, "Z85.3", clinical="inactive", onset=None),
        condition("c5", ICD, "M81.0", clinical="remission"),
    ])
    assert inputs.episode == []
    assert sorted(f.evidence.reference for f in inputs.red_flags) == ["Condition/c3", "Condition/c4", "Condition/c5"]
    cancer = [f for f in inputs.red_flags if f.kind == "history-of-cancer"]
    assert len(cancer) == 2 and all(f.window_days is None for f in cancer)


@pytest.mark.parametrize("clinical", ["active", "recurrence", "relapse", None])
def test_current_sign_with_active_like_or_no_status_counts(clinical):
    (flag,) = flags(run(conditions=[condition("c1", ICD, "R33.9", clinical=clinical)]))
    assert (flag.group, flag.kind) == ("cauda-equina", "urinary-retention")


def test_cancer_c44_is_not_a_red_flag():
    assert run(conditions=[condition("c1", ICD, "C44.91")]).red_flags == []


@pytest.mark.parametrize("code, group, kind, window", [
    ("M21.372", "neurological-deficit", "neurological-deficit", 365),
    ("G57.31", "neurological-deficit", "neurological-deficit", 365),
    ("R50.9", "infection", "fever", 14),
    ("M46.46", "infection", "spinal-infection", 365),
    ("F11.20", "infection", "iv-drug-use", 365),
    ("B20", "infection", "immunosuppression", None),
    ("Z94.0", "infection", "immunosuppression", None),
    ("R63.4", "malignancy", "weight-loss", 180),
    ("S32.009A", "fracture", "trauma", 90),
    ("M80.08XA", "fracture", "osteoporosis", None),
    ("Z79.52", "fracture", "long-term-steroids", 365),
    ("G83.4", "cauda-equina", "cauda-equina-syndrome", None),
    ("N31.9", "cauda-equina", "neurogenic-bladder", None),
    ("R15.9", "cauda-equina", "fecal-incontinence", None),
    ("K59.2", "cauda-equina", "fecal-incontinence", None),
])
def test_red_flag_groups_and_windows(code, group, kind, window):
    (flag,) = run(conditions=[condition("c1", ICD, code, onset="2026-01-03", recordedDate="2026-01-09")]).red_flags
    assert (flag.group, flag.kind, flag.window_days) == (group, kind, window)
    assert flag.evidence.reference == "Condition/c1" and flag.evidence.code == code
    assert flag.evidence.date == date(2026, 1, 9)  # the latest date it was asserted


def test_long_term_steroid_code_is_also_corticosteroid_exposure():
    inputs = run(conditions=[condition("c1", ICD, "Z79.52")])
    assert [e.reference for e in inputs.corticosteroids] == ["Condition/c1"]


def test_skin_sensation_counts_only_with_a_saddle_site_or_text():
    plain = condition("c1", ICD, "R20.2")
    by_site = condition("c2", ICD, "R20.0", bodySite=[{"coding": [coding(SCT, "38864007")]}])
    by_text = condition("c3", ICD, "R20.1")
    by_text["code"]["text"] = "Saddle numbness"
    inputs = run(conditions=[plain, by_site, by_text])
    assert sorted(f.evidence.reference for f in flags(inputs, "saddle-anaesthesia")) == ["Condition/c2", "Condition/c3"]


def test_spinal_surgery_history_from_z98_1_whatever_its_status():
    inputs = run(conditions=[condition("c1", ICD, "Z98.1", clinical="inactive")])
    assert [e.reference for e in inputs.spinal_surgery] == ["Condition/c1"]


# ---------------------------------------------------------------- laterality and bilateral sciatica

def test_laterality_from_code_body_site_and_text():
    right = condition("c1", ICD, "M54.31")
    left_site = condition("c2", SCT, "23056005", bodySite=[{"coding": [coding(SCT, "7771000")]}])
    text = condition("c3", SCT, "128196005")
    text["code"]["text"] = "Radiculopathy, right L5"
    got = {e.evidence.reference: e.laterality for e in run(conditions=[right, left_site, text]).episode}
    assert got == {"Condition/c1": {"right"}, "Condition/c2": {"left"}, "Condition/c3": {"right"}}


def test_bilateral_sciatica_from_right_and_left_codes_is_a_cauda_equina_sign():
    inputs = run(conditions=[condition("r", ICD, "M54.41"), condition("l", ICD, "M54.42")])
    bilateral = flags(inputs, "bilateral-sciatica")
    assert {f.evidence.reference for f in bilateral} == {"Condition/r", "Condition/l"}
    assert all(f.group == "cauda-equina" for f in bilateral)


def test_bilateral_from_a_bilateral_body_site():
    c = condition("c1", SCT, "23056005", bodySite=[{"coding": [coding(SCT, "51440002")]}])
    (flag,) = flags(run(conditions=[c]), "bilateral-sciatica")
    assert flag.evidence.reference == "Condition/c1"


def test_one_side_only_or_one_side_resolved_is_not_bilateral():
    assert flags(run(conditions=[condition("r", ICD, "M54.31")]), "bilateral-sciatica") == []
    inputs = run(conditions=[condition("r", ICD, "M54.31"), condition("l", ICD, "M54.32", clinical="resolved")])
    assert flags(inputs, "bilateral-sciatica") == []


def test_bilateral_low_back_pain_is_not_bilateral_sciatica():
    c = condition("c1", ICD, "M54.50", bodySite=[{"coding": [coding(SCT, "51440002")]}])
    assert flags(run(conditions=[c]), "bilateral-sciatica") == []


# ---------------------------------------------------------------- observations

@pytest.mark.parametrize("value, unit, fever", [
    (37.9, "Cel", False), (38.0, "Cel", True), (39.2, "Cel", True),
    (100.3, "[degF]", False), (100.4, "[degF]", True), (100.4, "degF", True),
])
def test_fever_threshold_in_celsius_and_fahrenheit(value, unit, fever):
    obs = observation("t1", LOINC, "8310-5", **quantity(value, unit))
    inputs = run(observations=[obs])
    got = flags(inputs, "fever")
    assert bool(got) is fever
    if fever:
        assert got[0].group == "infection" and got[0].window_days == 14
        assert got[0].evidence.reference == "Observation/t1" and got[0].evidence.date == date(2026, 2, 18)
        assert unit.strip("[]") in got[0].evidence.text


def test_vital_signs_outside_every_window_are_not_examined():
    """Years of vital signs are most of a real record: an old temperature (past the 14-day fever
    window) or weight (past the 180-day weight-loss window) is skipped before validation, so
    even a malformed one is neither a fact nor reported; a recent malformed one is reported."""
    broken = {"valueQuantity": {"value": 39.0, "unit": "Cel", "code": "Cel"}, "status": 7}
    old_fever = observation("t-old", LOINC, "8310-5", when="2025-06-01", **broken)
    old_weight = observation("w-old", LOINC, "29463-7", when="2025-01-01", status=7, **quantity(80, "kg"))
    recent = observation("t-new", LOINC, "8310-5", when="2026-02-18", **broken)
    inputs = run(observations=[old_fever, old_weight, recent])
    assert inputs.skipped_resources == ["Observation/t-new"]
    assert inputs.red_flags == [] and inputs.measurements == []
    # Well-formed, the old temperature of 39 C is no fever either: it is out of its window.
    fine_old = observation("t-old2", LOINC, "8310-5", when="2025-06-01", **quantity(39.0, "Cel"))
    assert flags(run(observations=[fine_old]), "fever") == []


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_entered_in_error_and_cancelled_observations_are_ignored(status):
    obs = observation("t1", LOINC, "8310-5", status=status, **quantity(39.5, "Cel"))
    inputs = run(observations=[obs])
    assert inputs.red_flags == [] and inputs.measurements == []


def test_observation_saying_absent_is_evidence_against():
    absent = observation("o1", SCT, "267064002", valueCodeableConcept={"coding": [coding(SCT, "2667000")]})
    negative = observation("o2", SCT, "72042002", interpretation=[{"coding": [coding(SCT, "260385009")]}])
    present = observation("o3", SCT, "236648008")
    got = {f.evidence.reference: f.negated for f in run(observations=[absent, negative, present]).red_flags}
    assert got == {"Observation/o1": True, "Observation/o2": True, "Observation/o3": False}


def test_body_weight_in_kg_and_pounds():
    inputs = run(observations=[observation("w1", LOINC, "29463-7", **quantity(80, "kg")),
                               observation("w2", LOINC, "29463-7", when="2026-02-19", **quantity(176.37, "[lb_av]"))])
    weights = sorted(m.value for m in inputs.measurements if m.kind == "body-weight-kg")
    assert weights[0] == pytest.approx(80.0, abs=0.01) and weights[1] == pytest.approx(80.0, abs=0.01)


def test_weight_loss_of_five_percent_within_180_days():
    obs = [observation("w1", LOINC, "29463-7", when="2025-10-01", **quantity(80, "kg")),
           observation("w2", LOINC, "29463-7", when="2026-02-10", **quantity(76, "kg"))]
    (flag,) = flags(run(observations=obs), "weight-loss-measured")
    assert flag.group == "malignancy" and flag.evidence.reference == "Observation/w2"
    assert "-5.0 %" in flag.evidence.text


def test_same_day_weights_and_loss_measured_against_the_highest_earlier_weight():
    obs = [observation("w1", LOINC, "29463-7", when="2025-12-01", **quantity(80, "kg")),
           observation("w2", LOINC, "29463-7", when="2025-12-01", **quantity(80, "kg")),
           observation("w3", LOINC, "29463-7", when="2026-01-01", **quantity(84, "kg")),
           observation("w4", LOINC, "29463-7", when="2026-02-01", **quantity(79, "kg"))]
    (flag,) = flags(run(observations=obs), "weight-loss-measured")
    assert "84 kg on 2026-01-01" in flag.evidence.text and flag.evidence.reference == "Observation/w4"


def test_weight_loss_below_five_percent_or_outside_the_window_does_not_count():
    small = [observation("w1", LOINC, "29463-7", when="2025-10-01", **quantity(80, "kg")),
             observation("w2", LOINC, "29463-7", when="2026-02-10", **quantity(76.1, "kg"))]
    assert flags(run(observations=small), "weight-loss-measured") == []
    old = [observation("w1", LOINC, "29463-7", when="2025-06-01", **quantity(80, "kg")),
           observation("w2", LOINC, "29463-7", when="2026-02-10", **quantity(70, "kg"))]
    assert flags(run(observations=old), "weight-loss-measured") == []


def test_post_void_residual_above_200_ml_with_a_configured_code():
    settings = {"POST_VOID_RESIDUAL_CODES": ("urn:local|PVR",)}
    high = observation("p1", "urn:local", "PVR", **quantity(250, "mL"))
    low = observation("p2", "urn:local", "PVR", **quantity(200, "mL"))
    inputs = run(observations=[high, low], settings=settings)
    (flag,) = inputs.red_flags
    assert (flag.group, flag.kind, flag.evidence.reference) == ("cauda-equina", "urinary-retention", "Observation/p1")
    assert run(observations=[high]).red_flags == []  # without the setting the code means nothing


# ---------------------------------------------------------------- prior imaging, surgery, steroids

def test_prior_lumbar_mri_and_ct_from_study_report_and_procedure():
    study = {"resourceType": "ImagingStudy", "id": "s1", "status": "available", "subject": {"reference": f"Patient/{PID}"},
             "started": "2025-08-01", "procedureCode": [{"coding": [coding(CPT, "72148")]}]}
    series = {"resourceType": "ImagingStudy", "id": "s2", "status": "available", "subject": {"reference": f"Patient/{PID}"},
              "started": "2025-09-01", "series": [{"uid": "1.2.3", "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"},
                                                   "bodySite": {"system": SCT, "code": "122496007"}}]}
    report = {"resourceType": "DiagnosticReport", "id": "r1", "status": "final", "subject": {"reference": f"Patient/{PID}"},
              "code": {"coding": [coding(LOINC, "30620-9")]}, "effectiveDateTime": "2025-10-01"}
    proc = {"resourceType": "Procedure", "id": "p1", "status": "completed", "subject": {"reference": f"Patient/{PID}"},
            "code": {"coding": [coding(CPT, "72149")]}, "performedDateTime": "2025-11-01"}
    xr = {"resourceType": "Procedure", "id": "p2", "status": "completed", "subject": {"reference": f"Patient/{PID}"},
          "code": {"coding": [coding(CPT, "72100")]}, "performedDateTime": "2025-11-02"}
    inputs = run(imaging=[study, series], reports=[report], procedures=[proc, xr])
    got = {p.evidence.reference: (p.modality, p.evidence.date) for p in inputs.prior_imaging}
    assert got == {
        "ImagingStudy/s1": ("MRI", date(2025, 8, 1)), "ImagingStudy/s2": ("CT", date(2025, 9, 1)),
        "DiagnosticReport/r1": ("CT", date(2025, 10, 1)), "Procedure/p1": ("MRI", date(2025, 11, 1)),
    }


def test_lumbar_surgery_procedure_is_surgery_history_and_a_recent_spinal_procedure():
    proc = {"resourceType": "Procedure", "id": "p1", "status": "completed", "subject": {"reference": f"Patient/{PID}"},
            "code": {"coding": [coding(CPT, "63030")]}, "performedPeriod": {"start": "2026-01-15"}}
    not_done = dict(proc, id="p2", status="not-done")
    inputs = run(procedures=[proc, not_done])
    assert [e.reference for e in inputs.spinal_surgery] == ["Procedure/p1"]
    (flag,) = inputs.red_flags
    assert (flag.kind, flag.window_days, flag.evidence.date) == ("spinal-procedure", 90, date(2026, 1, 15))


def steroid(mid, start, days, status="completed", route=None, code="8640", resource_type="MedicationRequest"):
    med = {"resourceType": resource_type, "id": mid, "status": status, "subject": {"reference": f"Patient/{PID}"},
           "medicationCodeableConcept": {"coding": [coding("http://www.nlm.nih.gov/research/umls/rxnorm", code)]}}
    if resource_type == "MedicationRequest":
        med.update(intent="order", authoredOn=start,
                   dispenseRequest={"expectedSupplyDuration": {"value": days, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}})
    else:
        med["effectivePeriod"] = {"start": start}
    if route:
        med["dosage" if resource_type == "MedicationStatement" else "dosageInstruction"] = [{"route": {"text": route}}]
    return med


def test_corticosteroid_records_are_evidence_and_90_days_make_a_fracture_flag():
    meds = [steroid("m1", "2025-06-01", 60), steroid("m2", "2025-08-15", 45)]
    inputs = run(medications=meds)
    assert [e.reference for e in inputs.corticosteroids] == ["MedicationRequest/m1", "MedicationRequest/m2"]
    (flag,) = flags(inputs, "prolonged-corticosteroids")
    assert flag.group == "fracture" and flag.evidence.reference == "MedicationRequest/m2"
    assert "105 days" in flag.evidence.text


def test_short_or_old_or_inhaled_steroids_do_not_make_the_flag():
    assert flags(run(medications=[steroid("m1", "2025-12-01", 30)]), "prolonged-corticosteroids") == []
    assert flags(run(medications=[steroid("m1", "2024-01-01", 200)]), "prolonged-corticosteroids") == []
    inhaled = run(medications=[steroid("m1", "2025-06-01", 200, route="Inhalation")])
    assert inhaled.corticosteroids == [] and inhaled.red_flags == []


def test_an_ongoing_statement_runs_to_the_reference_date():
    inputs = run(medications=[steroid("s1", "2025-10-01", 0, status="active", resource_type="MedicationStatement")])
    assert flags(inputs, "prolonged-corticosteroids")


def test_non_steroid_medication_is_ignored():
    assert run(medications=[steroid("m1", "2025-06-01", 200, code="161")]).corticosteroids == []


# ---------------------------------------------------------------- robustness rules

def test_another_patients_resources_are_never_evidence():
    other = "someone-else"
    inputs = run(conditions=[condition("c1", ICD, "G83.4", patient=other), condition("c2", ICD, "M54.5", patient=other)],
                 observations=[dict(observation("t1", LOINC, "8310-5", **quantity(39, "Cel")), subject={"reference": f"Patient/{other}"})])
    assert inputs.episode == [] and inputs.red_flags == [] and inputs.measurements == []


def test_absolute_and_urn_references_to_this_patient_are_accepted():
    c1 = condition("c1", ICD, "M54.5", subject={"reference": f"https://ehr.example/fhir/Patient/{PID}"})
    c2 = condition("c2", ICD, "M54.16", subject={"reference": f"urn:uuid:{PID}"})
    assert len(run(conditions=[c1, c2]).episode) == 2


def test_malformed_selected_resource_is_skipped_and_reported():
    bad = condition("bad", ICD, "G83.4", onset="yesterday")
    bad["clinicalStatus"] = "active"  # a string where a CodeableConcept belongs
    inputs = run(conditions=[bad, condition("good", ICD, "M54.5")])
    assert inputs.skipped_resources == ["Condition/bad"]
    assert [e.evidence.reference for e in inputs.episode] == ["Condition/good"] and inputs.red_flags == []


def test_malformed_irrelevant_resources_are_not_even_looked_at():
    junk = {"resourceType": "Condition", "id": "junk", "code": {"coding": [coding(SCT, "38341003")]}, "onsetDateTime": 12}
    assert run(conditions=[junk]).skipped_resources == []


def test_bundle_with_operation_outcome_entry_without_type_or_single_resource():
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "processing"}]}
    conditions = {"resourceType": "Bundle", "entry": [{"resource": outcome}, {"resource": condition("c1", ICD, "M54.5")}]}
    gathered = GatheredData(data={
        "patient": patient(), "conditions": conditions, "procedures": None,
        "observations": observation("t1", LOINC, "8310-5", **quantity(38.5, "Cel")),  # a bare resource
    })
    inputs = parse_inputs(hook_request([order()]), gathered, load_valuesets(), {}, TODAY)
    assert len(inputs.episode) == 1 and len(flags(inputs, "fever")) == 1


def test_the_same_resource_in_two_keys_counts_once():
    c = condition("c1", ICD, "G83.4")
    inputs = run(conditions=[c], observations=[c])
    assert len(inputs.red_flags) == 1


def test_unavailable_and_truncated_data_is_listed():
    inputs = run(unavailable={"medications": "timeout"}, truncated=["observations"])
    assert inputs.unavailable_data[0] == "medications"
    assert any(item.startswith("observations") for item in inputs.unavailable_data)


def test_parse_does_not_read_the_clock():
    # Same input, different `today`, no authoredOn: the reference date follows `today` only.
    request = hook_request([order(authored=None)])
    assert run(request=request, today=date(2020, 1, 1)).reference_date == date(2020, 1, 1)
    assert run(request=request, today=date(2030, 1, 1)).reference_date == date(2030, 1, 1)


def test_a_malformed_element_the_pathway_never_reads_does_not_discard_the_resource():
    """Only what the pathway reads is validated: a broken name or narrative does not hide the
    patient's age, while a broken birth date still does (test above)."""
    broken_name = {"resourceType": "Patient", "id": PID, "birthDate": "1970-06-15",
                   "name": "not a list of HumanName", "text": {"status": 42}}
    inputs = run(patient_resource=broken_name)
    assert inputs.patient.birth_date == date(1970, 6, 15)
    assert inputs.skipped_resources == []
