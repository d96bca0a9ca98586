"""What a free-text finding means (read/free_text.py, read/documents.py; clinical-specification.md §9).

Through `parse_inputs`, as the service reads a call: notes, order reasons, text-only Conditions
and Observation text -> red flags, negative findings, episode onsets, management evidence.
"""

from __future__ import annotations

import base64
from datetime import date

from cds_service.decide.facts import active_red_flags
from cds_service.read.text import default_reader
from tests.read.builders import PID, bundle, condition, order, run

ICD = "http://hl7.org/fhir/sid/icd-10-cm"


def note(nid: str, text: str, when: str = "2026-02-19", ctype: str = "text/plain", **extra) -> dict:
    return {"resourceType": "DocumentReference", "id": nid, "status": "current", "date": f"{when}T09:00:00Z",
            "subject": {"reference": f"Patient/{PID}"},
            "content": [{"attachment": {"contentType": ctype, "data": base64.b64encode(text.encode()).decode()}}],
            **extra}


def lbp(**extra) -> dict:
    return condition("c1", ICD, "M54.50", **extra)


def flags(inputs) -> list[tuple[str, bool, str]]:
    return sorted((f.kind, f.negated, f.evidence.reference) for f in inputs.red_flags)


def with_notes(*notes: dict, **kwargs):
    return run(conditions=kwargs.pop("conditions", [lbp()]), clinicalNotes=bundle(*notes), **kwargs)


def test_an_affirmed_sign_in_a_note_is_a_red_flag_citing_the_note_and_its_snippet():
    inputs = with_notes(note("n1", "Reports numbness in the saddle area since yesterday."))
    (fact,) = inputs.red_flags
    assert (fact.kind, fact.negated, fact.evidence.reference) == ("saddle-anaesthesia", False, "DocumentReference/n1")
    assert fact.evidence.text == "Reports numbness in the saddle area since yesterday."
    assert fact.evidence.date == date(2026, 2, 19) and "free text" in fact.evidence.display


def test_negation_scope_and_assertions():
    inputs = with_notes(note("n1", "Denies fever but reports new urinary retention. Mother had breast cancer. "
                                   "Return if you develop leg weakness."))
    assert flags(inputs) == [("fever", True, "DocumentReference/n1"),
                             ("urinary-retention", False, "DocumentReference/n1")]


def test_historical_mentions_count_for_history_flags_only():
    inputs = with_notes(note("n1", "History of breast cancer in 2015. She had a fever last month, resolved."))
    assert flags(inputs) == [("history-of-cancer", False, "DocumentReference/n1")]


def test_a_negated_sign_in_a_later_note_cancels_the_coded_sign():
    retention = condition("c2", ICD, "R33.9", onset="2026-02-10")
    inputs = with_notes(note("n1", "No urinary retention; voiding normally."), conditions=[lbp(), retention])
    active, cancelled = active_red_flags(inputs.red_flags, inputs.reference_date)
    assert active == [] and [f.evidence.reference for f in cancelled] == ["Condition/c2"]


def test_within_one_note_the_affirmed_sign_outweighs_the_templated_negative():
    inputs = with_notes(note("n1", "HPI: new urinary retention since yesterday.\n\nROS:\nGU: negative for urinary retention."))
    assert flags(inputs) == [("urinary-retention", False, "DocumentReference/n1")]


def test_order_reason_rule_out_cauda_equina_is_suspected_cauda_equina_of_that_order():
    inputs = run([order(reasonCode=[{"text": "r/o cauda equina"}])])
    (fact,) = inputs.red_flags
    assert fact.kind == "cauda-equina-syndrome" and fact.label == "Suspected cauda equina syndrome"
    assert fact.evidence.reference == "ServiceRequest/o1"


def test_a_text_only_condition_qualifies_the_episode_and_carries_its_sign():
    text_only = {**lbp(), "code": {"text": "Low back pain with bilateral sciatica"}}
    inputs = run(conditions=[text_only])
    assert [e.evidence.reference for e in inputs.episode] == ["Condition/c1"]
    assert flags(inputs) == [("bilateral-sciatica", False, "Condition/c1")]


def test_a_duration_dates_the_episode_from_the_note_and_only_near_an_episode_mention():
    undated = lbp(onset=None)
    inputs = with_notes(note("n1", "Low back pain x 3 days. Knee pain for 3 years."), conditions=[undated])
    onsets = [(e.onset, e.evidence.reference) for e in inputs.episode if e.onset]
    assert onsets == [(date(2026, 2, 16), "DocumentReference/n1")]
    # No episode at all: a duration alone makes none.
    assert run(clinicalNotes=bundle(note("n1", "Low back pain x 3 days."))).episode == []


def test_conservative_care_in_text_is_management_evidence_but_not_when_negated():
    inputs = with_notes(note("n1", "Completed 6 weeks of PT without relief."), note("n2", "Has not tried any treatment."))
    assert [(m.reference, m.text) for m in inputs.management] == [
        ("DocumentReference/n1", "Completed 6 weeks of PT without relief.")]


def test_notes_not_read_entered_in_error_other_patient_and_unreadable_formats():
    text = "New saddle numbness."
    inputs = with_notes(
        note("n1", text, docStatus="entered-in-error"), note("n2", text, status="superseded"),
        note("n3", text, subject={"reference": "Patient/someone-else"}),
        note("n4", "%PDF-1.4", ctype="application/pdf"),
    )
    assert inputs.red_flags == []
    assert inputs.incomplete_data == {"clinicalNotes": "unsupported-format"}


def test_html_and_rtf_notes_are_read():
    html = note("n1", "<p>New <b>saddle anaesthesia</b>.</p><script>urinary retention</script>", ctype="text/html")
    rtf = note("n2", r"{\rtf1\ansi\pard New faecal incontinence.\par}", ctype="text/rtf")
    assert flags(with_notes(html, rtf)) == [("fecal-incontinence", False, "DocumentReference/n2"),
                                            ("saddle-anaesthesia", False, "DocumentReference/n1")]


def test_observation_text_and_no_reader_means_no_text(monkeypatch):
    obs = {"resourceType": "Observation", "id": "ob1", "status": "final", "subject": {"reference": f"Patient/{PID}"},
           "code": {"text": "Nursing note"}, "effectiveDateTime": "2026-02-19",
           "valueString": "Patient febrile overnight, 39.1"}
    assert flags(run(conditions=[lbp()], observations=[obs])) == [("fever", False, "Observation/ob1")]
    monkeypatch.setattr("cds_service.read.parser.default_reader", lambda: None)
    assert run(conditions=[lbp()], observations=[obs]).red_flags == []


def test_a_repeated_read_of_the_same_note_is_a_cache_hit(monkeypatch):
    reader = default_reader()
    calls = []
    original = reader._read
    monkeypatch.setattr(reader, "_read", lambda *a: calls.append(1) or original(*a))
    text = "Unique sentence 7f2: new urinary retention since the weekend."
    for _ in range(3):
        with_notes(note("n1", text))
    assert len(calls) == 1
