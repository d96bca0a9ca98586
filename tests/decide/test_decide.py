"""The decision function over its whole table (clinical-specification.md §5 and §7)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cds_service.decide.outcomes import (
    APPROPRIATE,
    CAUDA_EQUINA_RISK,
    DURATION_UNKNOWN,
    IMAGING_BEFORE_6_WEEKS,
    NO_CRITERIA_APPLY,
    NO_PRIOR_MANAGEMENT,
    NOT_APPROPRIATE,
    PREFER_MRI,
    REASON_NO_EPISODE,
    REASON_UNDER_18,
    REPEAT_IMAGING,
    SUGGEST_DELETE,
    SUGGEST_DELETE_AND_REFER,
    SUGGEST_UPDATE_TO_MRI,
)
from cds_service.decide.rules import decide
from cds_service.read.inputs import (
    CAUDA_EQUINA,
    CT,
    CT_MYELOGRAPHY,
    FRACTURE,
    INFECTION,
    MALIGNANCY,
    MRI,
    NEURO_DEFICIT,
    UNSPECIFIED,
    WITH,
    WITHOUT,
    WITHOUT_WITH,
    XR,
    Evidence,
    PatientFacts,
)

from .builders import REF, ago, episode, flag, inputs, measurement, order, prior

CES = dict(group=CAUDA_EQUINA, kind="cauda-equina-syndrome")
RETENTION = dict(group=CAUDA_EQUINA, kind="urinary-retention")
FEVER = dict(group=INFECTION, kind="fever", window=14)
CANCER = dict(group=MALIGNANCY, kind="history-of-cancer")
OSTEOPOROSIS = dict(group=FRACTURE, kind="osteoporosis")
FOOT_DROP = dict(group=NEURO_DEFICIT, kind="neurological-deficit", window=365)
WEEKS_6 = 42


def only(decisions):
    assert len(decisions) == 1
    return decisions[0]


# (id, inputs, topic, indicator, rating, ACR variant)
TABLE = [
    # --- silence: not adult, no episode -------------------------------------------------------
    ("under-18-even-with-cauda-equina", inputs(age=17, flags=[flag(**CES, days=1)]), None, None, NO_CRITERIA_APPLY, None),
    ("no-episode", inputs(episodes=[]), None, None, NO_CRITERIA_APPLY, None),
    ("no-episode-old-cancer", inputs(episodes=[], flags=[flag(**CANCER, days=900)]), None, None, NO_CRITERIA_APPLY, None),
    ("no-episode-urinary-retention-on-problem-list",
     inputs(episodes=[], flags=[flag(**RETENTION, days=3)]), None, None, NO_CRITERIA_APPLY, None),
    # --- cauda equina (ACR variant 4), whatever the duration -----------------------------------
    ("cauda-equina-mri-without-routine", inputs(flags=[flag(**CES, days=1)]), CAUDA_EQUINA_RISK, "critical", APPROPRIATE, "4"),
    ("cauda-equina-after-12-weeks", inputs(episodes=[episode(onset_days=90)], flags=[flag(**RETENTION, days=2)]),
     CAUDA_EQUINA_RISK, "critical", APPROPRIATE, "4"),
    ("cauda-equina-xray", inputs(orders=[order(XR)], flags=[flag(**CES, days=1)]), CAUDA_EQUINA_RISK, "critical", NOT_APPROPRIATE, "4"),
    ("cauda-equina-ct-without", inputs(orders=[order(CT, WITHOUT)], flags=[flag(**CES, days=1)]),
     CAUDA_EQUINA_RISK, "critical", APPROPRIATE, "4"),
    ("cauda-equina-ct-with", inputs(orders=[order(CT, WITH)], flags=[flag(**CES, days=1)]),
     CAUDA_EQUINA_RISK, "critical", NOT_APPROPRIATE, "4"),
    ("cauda-equina-mri-without-with", inputs(orders=[order(MRI, WITHOUT_WITH)], flags=[flag(**CES, days=1)]),
     CAUDA_EQUINA_RISK, "critical", APPROPRIATE, "4"),
    ("cauda-equina-no-episode-coded-syndrome", inputs(episodes=[], flags=[flag(**CES, days=1)]),
     CAUDA_EQUINA_RISK, "critical", APPROPRIATE, "4"),
    ("cauda-equina-no-episode-order-reason",
     inputs(episodes=[], flags=[flag(**RETENTION, ref="ServiceRequest/o1")]), CAUDA_EQUINA_RISK, "critical", APPROPRIATE, "4"),
    ("cauda-equina-beats-repeat", inputs(flags=[flag(**CES, days=300)], priors=[prior(MRI, 30)]),
     CAUDA_EQUINA_RISK, "critical", APPROPRIATE, "4"),
    # --- no red flag, the 6-week rule (day 41 vs 42) -----------------------------------------
    ("day-0", inputs(episodes=[episode(onset_days=0)]), IMAGING_BEFORE_6_WEEKS, "warning", NOT_APPROPRIATE, "1"),
    ("day-41", inputs(episodes=[episode(onset_days=41)]), IMAGING_BEFORE_6_WEEKS, "warning", NOT_APPROPRIATE, "1"),
    ("day-42-mri-without", inputs(management=[5], episodes=[episode(onset_days=WEEKS_6)]), None, None, APPROPRIATE, "3"),
    ("day-41-xray", inputs(orders=[order(XR)], episodes=[episode(onset_days=41)]), IMAGING_BEFORE_6_WEEKS, "warning",
     NOT_APPROPRIATE, "1"),
    ("day-42-xray", inputs(management=[5], orders=[order(XR)], episodes=[episode(onset_days=42)]), PREFER_MRI, "info", APPROPRIATE, "3"),
    ("day-42-ct-without", inputs(management=[5], orders=[order(CT, WITHOUT)], episodes=[episode(onset_days=42)]), PREFER_MRI, "info", APPROPRIATE, "3"),
    ("day-42-ct-with", inputs(management=[5], orders=[order(CT, WITH)], episodes=[episode(onset_days=42)]), PREFER_MRI, "info", NOT_APPROPRIATE, "3"),
    ("day-42-ct-myelography", inputs(management=[5], orders=[order(CT_MYELOGRAPHY)], episodes=[episode(onset_days=60)]), PREFER_MRI, "info",
     APPROPRIATE, "3"),
    ("day-42-mri-with", inputs(management=[5], orders=[order(MRI, WITH)], episodes=[episode(onset_days=50)]), PREFER_MRI, "info", NOT_APPROPRIATE, "3"),
    ("day-42-mri-without-with", inputs(management=[5], orders=[order(MRI, WITHOUT_WITH)], episodes=[episode(onset_days=50)]), PREFER_MRI, "info",
     APPROPRIATE, "3"),
    ("day-42-mri-contrast-unspecified", inputs(management=[5], orders=[order(MRI, UNSPECIFIED)], episodes=[episode(onset_days=50)]), PREFER_MRI,
     "info", APPROPRIATE, "3"),
    # --- prior lumbar surgery: ACR variant 5 after 6 weeks (contrast ok), 6-week rule before ---
    ("prior-surgery-mri-without-with", inputs(orders=[order(MRI, WITHOUT_WITH)], episodes=[episode(onset_days=50)],
                                              surgery=["lam"]), None, None, APPROPRIATE, "5"),
    ("prior-surgery-xray", inputs(orders=[order(XR)], episodes=[episode(onset_days=50)], surgery=["lam"]), None, None, APPROPRIATE, "5"),
    ("prior-surgery-ct-without", inputs(orders=[order(CT, WITHOUT)], episodes=[episode(onset_days=50)], surgery=["lam"]),
     PREFER_MRI, "info", APPROPRIATE, "5"),
    ("prior-surgery-mri-with-only", inputs(orders=[order(MRI, WITH)], episodes=[episode(onset_days=50)], surgery=["lam"]),
     PREFER_MRI, "info", NOT_APPROPRIATE, "5"),
    ("prior-surgery-before-6-weeks", inputs(orders=[order(MRI, WITHOUT_WITH)], episodes=[episode(onset_days=20)],
                                            surgery=["lam"]), IMAGING_BEFORE_6_WEEKS, "warning", NOT_APPROPRIATE, "1"),
    # --- duration: recordedDate as a lower bound; unknown ------------------------------------
    ("recorded-only-10-days", inputs(episodes=[episode(recorded_days=10)]), IMAGING_BEFORE_6_WEEKS, "warning", NOT_APPROPRIATE, "1"),
    ("recorded-only-60-days", inputs(management=[5], episodes=[episode(recorded_days=60)]), None, None, APPROPRIATE, "3"),
    ("duration-unknown", inputs(episodes=[episode()]), DURATION_UNKNOWN, "info", NO_CRITERIA_APPLY, None),
    ("duration-unknown-xray", inputs(orders=[order(XR)], episodes=[episode()]), DURATION_UNKNOWN, "info", NO_CRITERIA_APPLY, None),
    # --- repeat imaging ---------------------------------------------------------------------
    ("repeat-mri-200-days", inputs(priors=[prior(MRI, 200)]), REPEAT_IMAGING, "warning", NOT_APPROPRIATE, None),
    ("repeat-ct-365-days", inputs(episodes=[episode(onset_days=90)], priors=[prior(CT, 365)]), REPEAT_IMAGING, "warning",
     NOT_APPROPRIATE, None),
    ("no-repeat-mri-366-days", inputs(management=[5], episodes=[episode(onset_days=90)], priors=[prior(MRI, 366)]), None, None, APPROPRIATE, "3"),
    ("no-repeat-after-xray", inputs(management=[5], episodes=[episode(onset_days=90)], priors=[prior(XR, 30)]), None, None, APPROPRIATE, "3"),
    ("repeat-old-cancer-not-new", inputs(priors=[prior(MRI, 100)], flags=[flag(**CANCER, days=900)]), REPEAT_IMAGING, "warning",
     NOT_APPROPRIATE, None),
    ("no-repeat-new-fever", inputs(priors=[prior(MRI, 100)], flags=[flag(**FEVER, days=3)]), None, None, APPROPRIATE, "7"),
    ("no-repeat-undated-red-flag", inputs(priors=[prior(MRI, 100)], flags=[flag(**CANCER)]), None, None, APPROPRIATE, "7"),
    # --- other red flags: the variant decides the study -------------------------------------
    ("fracture-xray", inputs(orders=[order(XR)], flags=[flag(**OSTEOPOROSIS, days=2000)]), None, None, APPROPRIATE, "6"),
    ("fracture-ct-without", inputs(orders=[order(CT, WITHOUT)], flags=[flag(**OSTEOPOROSIS, days=5)]), None, None, APPROPRIATE, "6"),
    ("fracture-mri-without-with", inputs(orders=[order(MRI, WITHOUT_WITH)], flags=[flag(**OSTEOPOROSIS, days=5)]), PREFER_MRI, "info",
     APPROPRIATE, "6"),
    ("fracture-ct-with", inputs(orders=[order(CT, WITH)], flags=[flag(**OSTEOPOROSIS, days=5)]), PREFER_MRI, "info",
     NOT_APPROPRIATE, "6"),
    ("cancer-mri-without-with", inputs(orders=[order(MRI, WITHOUT_WITH)], flags=[flag(**CANCER, days=5)]), None, None, APPROPRIATE, "7"),
    ("cancer-xray", inputs(orders=[order(XR)], flags=[flag(**CANCER, days=5)]), PREFER_MRI, "info", APPROPRIATE, "7"),
    ("infection-ct-with", inputs(orders=[order(CT, WITH)], flags=[flag(**FEVER, days=5)]), PREFER_MRI, "info", APPROPRIATE, "7"),
    ("infection-mri-with-only", inputs(orders=[order(MRI, WITH)], flags=[flag(**FEVER, days=5)]), PREFER_MRI, "info",
     NOT_APPROPRIATE, "7"),
    ("neuro-deficit-mri-without", inputs(flags=[flag(**FOOT_DROP, days=5)]), None, None, APPROPRIATE, "3"),
    ("neuro-deficit-xray", inputs(orders=[order(XR)], flags=[flag(**FOOT_DROP, days=5)]), PREFER_MRI, "info", APPROPRIATE, "3"),
    ("neuro-deficit-ct-with", inputs(orders=[order(CT, WITH)], flags=[flag(**FOOT_DROP, days=5)]), PREFER_MRI, "info",
     NOT_APPROPRIATE, "3"),
    ("fracture-and-cancer-xray-best-variant", inputs(orders=[order(XR)], flags=[flag(**CANCER, days=5), flag(**OSTEOPOROSIS, days=5)]),
     None, None, APPROPRIATE, "6"),
    ("red-flag-without-any-dated-onset", inputs(episodes=[episode()], flags=[flag(**CANCER, days=5)]), None, None, APPROPRIATE, "7"),
]


@pytest.mark.parametrize(
    "case, topic, indicator, rating, variant",
    [pytest.param(case, t, i, r, v, id=name) for name, case, t, i, r, v in TABLE],
)
def test_decision_table(case, topic, indicator, rating, variant):
    decision = only(decide(case))
    assert (decision.topic, decision.indicator, decision.rating, decision.acr_variant) == (topic, indicator, rating, variant)


# Each red-flag group inside and just outside its look-back window: inside, an MRI without
# contrast at 10 days is appropriate (no card); outside, the 6-week rule applies again.
WINDOWS = [
    (INFECTION, "fever", 14, "7"),
    (INFECTION, "spinal-infection", 365, "7"),
    (INFECTION, "iv-drug-use", 365, "7"),
    (INFECTION, "spinal-procedure", 90, "7"),
    (MALIGNANCY, "weight-loss", 180, "7"),
    (FRACTURE, "trauma", 90, "6"),
    (FRACTURE, "prolonged-corticosteroids", 365, "6"),
    (NEURO_DEFICIT, "neurological-deficit", 365, "3"),
]


@pytest.mark.parametrize("group, kind, window, variant", WINDOWS, ids=[w[1] for w in WINDOWS])
def test_red_flag_counts_on_the_last_day_of_its_window(group, kind, window, variant):
    decision = only(decide(inputs(flags=[flag(group, kind, days=window, window=window)])))
    assert (decision.topic, decision.rating, decision.acr_variant) == (None, APPROPRIATE, variant)
    assert [f.kind for f in decision.red_flags] == [kind]


@pytest.mark.parametrize("group, kind, window, variant", WINDOWS, ids=[w[1] for w in WINDOWS])
def test_red_flag_expires_the_day_after_its_window(group, kind, window, variant):
    decision = only(decide(inputs(flags=[flag(group, kind, days=window + 1, window=window)])))
    assert (decision.topic, decision.rating) == (IMAGING_BEFORE_6_WEEKS, NOT_APPROPRIATE)
    assert decision.red_flags == []


@pytest.mark.parametrize("group, kind, variant", [
    (INFECTION, "immunosuppression", "7"), (MALIGNANCY, "history-of-cancer", "7"), (FRACTURE, "osteoporosis", "6"),
])
def test_history_red_flags_count_at_any_age(group, kind, variant):
    decision = only(decide(inputs(flags=[flag(group, kind, days=20 * 365)])))
    assert (decision.topic, decision.rating, decision.acr_variant) == (None, APPROPRIATE, variant)


def test_red_flag_dated_after_the_reference_date_does_not_count():
    decision = only(decide(inputs(flags=[flag(**FEVER, days=-1)])))
    assert decision.topic == IMAGING_BEFORE_6_WEEKS


# --- Negation: the latest finding wins; same day, "absent" wins; undated absent cancels nothing --

@pytest.mark.parametrize("positive_days, negative_days, counts", [
    (5, 8, True),    # absent 8 days ago, fever 5 days ago: the fever is newer
    (5, 5, False),   # same day: the absent finding wins
    (5, 2, False),   # absent after the fever: cancelled
    (5, None, True),  # an undated absent finding cancels nothing
])
def test_negated_finding_cancels_an_earlier_positive_of_the_same_kind(positive_days, negative_days, counts):
    facts = [flag(**FEVER, days=positive_days), flag(**FEVER, days=negative_days, negated=True)]
    decision = only(decide(inputs(flags=facts)))
    assert (decision.topic is None) is counts
    assert bool(decision.red_flags) is counts
    assert bool(decision.documented_absent) is not counts


def test_negation_of_another_kind_cancels_nothing():
    facts = [flag(**RETENTION, days=3), flag(group=CAUDA_EQUINA, kind="saddle-anaesthesia", days=1, negated=True)]
    assert only(decide(inputs(flags=facts))).topic == CAUDA_EQUINA_RISK


# --- Details a card relies on ---------------------------------------------------------------

def test_weeks_since_onset_and_the_date_six_weeks_are_reached():
    decision = only(decide(inputs(episodes=[episode(onset_days=41)])))
    assert decision.days_since_onset == 41
    assert decision.weeks_since_onset == 5
    assert decision.six_weeks_date == REF + timedelta(days=1)
    assert decision.onset_is_lower_bound is False
    assert decision.suggestion == SUGGEST_DELETE_AND_REFER


def test_episode_starts_at_the_earliest_onset_and_a_recorded_date_is_a_lower_bound():
    decision = only(decide(inputs(episodes=[episode(onset_days=20, cid="a"), episode(onset_days=30, cid="b")])))
    assert decision.onset == ago(30) and decision.onset_evidence.reference == "Condition/b"
    decision = only(decide(inputs(episodes=[episode(onset_days=20, cid="a"), episode(recorded_days=35, cid="r")])))
    assert decision.onset == ago(35) and decision.onset_is_lower_bound is True
    assert decision.topic == IMAGING_BEFORE_6_WEEKS


def test_age_boundary_on_the_18th_birthday():
    case = inputs(flags=[flag(**CES, days=1)])
    case.patient = PatientFacts(reference="Patient/pat-1", birth_date=date(REF.year - 18, REF.month, REF.day))
    assert only(decide(case)).topic == CAUDA_EQUINA_RISK
    case.patient = PatientFacts(reference="Patient/pat-1", birth_date=date(REF.year - 18, REF.month, REF.day) + timedelta(days=1))
    decision = only(decide(case))
    assert (decision.topic, decision.reason, decision.rating) == (None, REASON_UNDER_18, NO_CRITERIA_APPLY)


def test_no_episode_reason():
    assert only(decide(inputs(episodes=[]))).reason == REASON_NO_EPISODE


@pytest.mark.parametrize("modality, contrast, priority, expect_suggestion", [
    (XR, UNSPECIFIED, "routine", True),
    (MRI, WITHOUT, "routine", True),   # same study, but stat priority
    (MRI, WITHOUT, "stat", False),     # already the right study at stat: nothing to suggest
])
def test_cauda_equina_suggests_mri_without_contrast_at_stat(modality, contrast, priority, expect_suggestion):
    decision = only(decide(inputs(orders=[order(modality, contrast, priority=priority)], flags=[flag(**CES, days=1)])))
    assert decision.topic == CAUDA_EQUINA_RISK
    if expect_suggestion:
        assert decision.suggestion == SUGGEST_UPDATE_TO_MRI
        assert (decision.alternative.modality, decision.alternative.contrast, decision.alternative.priority,
                decision.alternative.rating) == (MRI, WITHOUT, "stat", APPROPRIATE)
    else:
        assert decision.suggestion is None and decision.alternative is None


def test_prefer_mri_keeps_the_priority_and_rates_the_alternative():
    decision = only(decide(inputs(orders=[order(CT, WITH, priority="urgent")], episodes=[episode(onset_days=60)],
                                  management=[30])))
    assert decision.suggestion == SUGGEST_UPDATE_TO_MRI
    assert (decision.alternative.contrast, decision.alternative.priority, decision.alternative.rating) == (WITHOUT, "urgent", APPROPRIATE)


def test_repeat_imaging_cites_the_latest_prior_study_and_suggests_removing_the_order():
    decision = only(decide(inputs(priors=[prior(MRI, 300, "old"), prior(CT, 40, "new")])))
    assert decision.prior_imaging.evidence.reference == "ImagingStudy/new"
    assert decision.suggestion == SUGGEST_DELETE


def test_several_orders_each_judged():
    case = inputs(orders=[order(MRI, WITHOUT, "a"), order(XR, UNSPECIFIED, "b"), order(CT, WITH, "c")],
                  episodes=[episode(onset_days=60)], management=[20])
    decisions = decide(case)
    assert [(d.order.reference, d.topic, d.rating) for d in decisions] == [
        ("ServiceRequest/a", None, APPROPRIATE),
        ("ServiceRequest/b", PREFER_MRI, APPROPRIATE),
        ("ServiceRequest/c", PREFER_MRI, NOT_APPROPRIATE),
    ]


def test_red_flag_from_one_orders_reason_does_not_judge_another_order():
    case = inputs(orders=[order(oid="a"), order(oid="b")], episodes=[episode(onset_days=10)],
                  flags=[flag(**FEVER, days=0, ref="ServiceRequest/a")])
    first, second = decide(case)
    assert (first.topic, first.rating) == (None, APPROPRIATE)
    assert (second.topic, second.rating) == (IMAGING_BEFORE_6_WEEKS, NOT_APPROPRIATE)


@pytest.mark.parametrize("weights, flagged", [
    ([(80.0, 170), (75.0, 5)], True),    # 6.25 % in 165 days
    ([(80.0, 170), (76.0, 5)], True),    # exactly 5 %
    ([(80.0, 170), (77.0, 5)], False),   # 3.75 %
    ([(80.0, 200), (70.0, 5)], False),   # the heavier weight is outside 180 days
])
def test_measured_weight_loss_is_a_malignancy_red_flag(weights, flagged):
    found = [measurement("body-weight-kg", kg, days, f"w{i}") for i, (kg, days) in enumerate(weights)]
    decision = only(decide(inputs(measurements=found)))
    assert (decision.acr_variant == "7") is flagged
    assert any(f.kind == "weight-loss-measured" for f in decision.red_flags) is flagged


def test_worsening_motor_grade_is_a_neurological_red_flag():
    grades = [measurement("motor-grade", 5, 60, "m1"), measurement("motor-grade", 3, 2, "m2")]
    decision = only(decide(inputs(measurements=grades)))
    assert [f.kind for f in decision.red_flags] == ["motor-grade-worsening"]
    assert decision.acr_variant == "3" and decision.topic is None
    stable = [measurement("motor-grade", 4, 60, "m1"), measurement("motor-grade", 4, 2, "m2")]
    assert only(decide(inputs(measurements=stable))).topic == IMAGING_BEFORE_6_WEEKS


def test_decide_is_pure_same_inputs_same_decisions():
    case = inputs(flags=[flag(**FEVER, days=3)], priors=[prior(MRI, 10)])
    first, second = decide(case), decide(case)
    assert [(d.topic, d.rating, d.reason) for d in first] == [(d.topic, d.rating, d.reason) for d in second]


@pytest.mark.parametrize("age, flagged", [(62, True), (51, True), (50, False), (43, False)])
def test_over_50_measured_weight_loss_is_a_malignancy_red_flag(age, flagged):
    weights = [measurement("body-weight-kg", 82.0, 160, "w1"), measurement("body-weight-kg", 80.0, 2, "w2")]  # 2.4 %
    decision = only(decide(inputs(age=age, measurements=weights)))
    assert any(f.kind == "weight-loss-over-50" for f in decision.red_flags) is flagged
    assert decision.topic == (None if flagged else IMAGING_BEFORE_6_WEEKS)


def test_over_50_scale_variation_below_2_percent_is_not_a_red_flag():
    weights = [measurement("body-weight-kg", 80.0, 160, "w1"), measurement("body-weight-kg", 79.0, 2, "w2")]  # 1.25 %
    decision = only(decide(inputs(age=70, measurements=weights)))
    assert decision.red_flags == []
    assert decision.topic == IMAGING_BEFORE_6_WEEKS


def test_over_50_weight_gain_is_not_a_red_flag():
    weights = [measurement("body-weight-kg", 80.0, 160, "w1"), measurement("body-weight-kg", 82.0, 2, "w2")]
    assert only(decide(inputs(age=70, measurements=weights))).red_flags == []


def test_active_long_term_steroid_code_counts_whenever_it_was_coded_but_old_trauma_does_not():
    steroids = flag(FRACTURE, "long-term-steroids", days=3 * 365, window=365)
    decision = only(decide(inputs(orders=[order(CT, WITHOUT)], flags=[steroids])))
    assert (decision.topic, decision.rating, decision.acr_variant) == (None, APPROPRIATE, "6")
    trauma = flag(FRACTURE, "trauma", days=3 * 365, window=90)
    assert only(decide(inputs(orders=[order(CT, WITHOUT)], flags=[trauma]))).topic == IMAGING_BEFORE_6_WEEKS
    # A medication-derived exposure keeps its window (the parser measures the courses).
    course = flag(FRACTURE, "prolonged-corticosteroids", days=400, window=365, ref="MedicationRequest/m1")
    assert only(decide(inputs(orders=[order(CT, WITHOUT)], flags=[course]))).topic == IMAGING_BEFORE_6_WEEKS


# --- Prior management (ACR variant 2; clinical-specification.md §5.8) ------------------------------
def test_six_weeks_without_management_is_variant_2_not_appropriate_with_a_referral():
    decision = only(decide(inputs(episodes=[episode(onset_days=70)])))
    assert (decision.topic, decision.indicator, decision.rating, decision.acr_variant) == (
        NO_PRIOR_MANAGEMENT, "warning", NOT_APPROPRIATE, "2")
    assert decision.suggestion == SUGGEST_DELETE_AND_REFER and decision.management == []


@pytest.mark.parametrize("days", [69, 1, 0])
def test_management_within_the_episode_gives_variant_3(days):
    decision = only(decide(inputs(episodes=[episode(onset_days=70)], management=[days])))
    assert (decision.topic, decision.rating, decision.acr_variant) == (None, APPROPRIATE, "3")
    assert [e.reference for e in decision.management] == ["Procedure/pt0"]
    assert decision.management[0] in decision.evidence


@pytest.mark.parametrize("management", [[71], [400], [-1]], ids=["day-before-onset", "a-year-before", "after-the-order"])
def test_management_outside_the_episode_does_not_count(management):
    decision = only(decide(inputs(episodes=[episode(onset_days=70)], management=management)))
    assert decision.topic == NO_PRIOR_MANAGEMENT


def test_undated_management_does_not_count():
    undated = Evidence("MedicationRequest/m1", "MedicationRequest", "5640", "http://www.nlm.nih.gov/research/umls/rxnorm",
                       "ibuprofen", None, "analgesic prescription")
    assert only(decide(inputs(episodes=[episode(onset_days=70)], management=[undated]))).topic == NO_PRIOR_MANAGEMENT


def test_text_evidence_of_conservative_care_counts():
    note = Evidence("DocumentReference/n1", "DocumentReference", None, None,
                    "Conservative care (clinical note, free text)", ago(20), "completed 6 weeks of PT")
    decision = only(decide(inputs(episodes=[episode(onset_days=70)], management=[note])))
    assert (decision.topic, decision.acr_variant) == (None, "3")


def test_prior_surgery_keeps_variant_5_without_management():
    decision = only(decide(inputs(episodes=[episode(onset_days=70)], surgery=["fusion"])))
    assert (decision.topic, decision.acr_variant, decision.rating) == (None, "5", APPROPRIATE)


@pytest.mark.parametrize("flags", [[flag(**FEVER, days=3)], [flag(**CES, days=3)], [flag(**FOOT_DROP, days=5)]],
                         ids=["fever", "cauda-equina", "foot-drop"])
def test_red_flags_never_wait_for_management(flags):
    decision = only(decide(inputs(episodes=[episode(onset_days=70)], flags=flags)))
    assert decision.topic != NO_PRIOR_MANAGEMENT and decision.rating == APPROPRIATE


def test_management_that_could_not_be_read_withholds_the_rating():
    data = inputs(episodes=[episode(onset_days=70)])
    data.incomplete_data = {"serviceRequests": "refused"}
    data.unavailable_data = ["serviceRequests"]
    decision = only(decide(data))
    assert decision.topic == NO_PRIOR_MANAGEMENT  # the advice stands ...
    assert decision.rating is None and decision.rating_withheld  # ... but it rests on an absence
