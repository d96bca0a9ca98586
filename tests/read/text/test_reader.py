"""TextReader API and behaviour: assertions on the brief's examples, snippets, offsets, the prefilter,
the cache, sections, thread safety and sentences (the engine's parts: test_engine.py)."""

from __future__ import annotations

import dataclasses
import threading
import time
import warnings
from datetime import date

import pytest

from cds_service.read.text import TextFinding, TextReader, default_reader
from cds_service.read.text.reader import snippet

ON = date(2024, 6, 15)


@pytest.fixture(scope="module")
def reader() -> TextReader:
    return default_reader()


def pairs(findings):
    return {(f.group, f.assertion) for f in findings}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("No improvement with ibuprofen; now saddle numbness.",
         {("cauda-equina-saddle-anaesthesia", "affirmed"), ("conservative-care", "affirmed")}),
        ("Denies fever but reports new urinary retention.",
         {("infection-fever", "negated"), ("cauda-equina-urinary-retention", "affirmed")}),
        ("GU: negative for urinary retention, incontinence.",
         {("cauda-equina-urinary-retention", "negated"), ("cauda-equina-urinary-incontinence", "negated")}),
        ("Neuro: strength 5/5 in both legs, sensation intact.", set()),
        ("Thigh numbness on the left.", set()),
        ("Perineal numbness.", {("cauda-equina-saddle-anaesthesia", "affirmed")}),
        ("Has not tried any treatment.", {("conservative-care", "negated")}),
        ("No PT yet.", {("conservative-care", "negated")}),
        ("MRI L-spine: r/o cauda equina.", {("cauda-equina-syndrome", "uncertain")}),
        ("Return if you develop urinary retention or numbness in the saddle area.",
         {("cauda-equina-urinary-retention", "hypothetical"), ("cauda-equina-saddle-anaesthesia", "hypothetical")}),
        ("Mother had breast cancer.", {("malignancy-history", "other-person")}),
        ("History of L4-5 laminectomy in 2015.", {("spinal-surgery", "historical")}),
        ("Should she develop bowel incontinence she will call 911.", {("cauda-equina-fecal-incontinence", "hypothetical")}),
        ("Concern for cauda equina syndrome.", {("cauda-equina-syndrome", "uncertain")}),
        ("Failed conservative management.", {("conservative-care", "affirmed")}),
    ],
)
def test_brief_examples(reader, text, expected):
    found = {p for p in pairs(reader.read(text, ON)) if p[0] not in ("qualifying-episode", "duration")}
    assert found == expected


def test_finding_shape_and_offsets(reader):
    text = "58M with LBP x 3 days.\nNow reports urinary retention since this morning and perianal numbness."
    findings = reader.read(text, ON)
    assert all(isinstance(f, TextFinding) for f in findings)
    by_group = {f.group: f for f in findings}
    retention = by_group["cauda-equina-urinary-retention"]
    assert text[retention.start:retention.end] == "urinary retention"
    assert retention.assertion == "affirmed" and retention.onset is None
    assert "urinary retention" in retention.snippet and "\n" not in retention.snippet
    duration = by_group["duration"]
    assert text[duration.start:duration.end] == "x 3 days" and duration.onset == date(2024, 6, 12)
    assert [f.start for f in findings] == sorted(f.start for f in findings)
    with pytest.raises(dataclasses.FrozenInstanceError):
        retention.group = "x"


def test_no_note_date_gives_no_onset(reader):
    (duration,) = [f for f in reader.read("Back pain for 2 weeks.", None) if f.group == "duration"]
    assert duration.onset is None


def test_hypothetical_duration_has_no_onset(reader):
    (duration,) = [f for f in reader.read("Return if back pain lasts more than 6 weeks.", ON) if f.group == "duration"]
    assert duration.assertion == "hypothetical" and duration.onset is None


def test_care_duration_is_not_the_episode(reader):
    findings = reader.read("Back pain for 3 weeks. Took ibuprofen for 2 weeks without relief.", ON)
    assert [f.onset for f in findings if f.group == "duration"] == [date(2024, 5, 25)]


def test_snippet_limits():
    text = ("Patient is a 58 year old man seen today in clinic for evaluation of a long list of complaints including "
            "worsening low back pain and new urinary retention which began yesterday evening after lifting heavy boxes "
            "at work and has not improved with rest or ibuprofen at home.")
    start = text.index("urinary retention")
    cut = snippet(text, start, start + len("urinary retention"), 0, len(text))
    assert len(cut) <= 120 and "urinary retention" in cut
    assert cut.startswith("…") and cut.endswith("…")
    inner = cut.strip("…")
    assert text.find(inner) >= 0  # whole words: the kept text is a contiguous part of the sentence
    assert text[text.find(inner) - 1] == " " and text[text.find(inner) + len(inner)] == " "
    short = "Urinary retention."
    assert snippet(short, 0, 17, 0, len(short)) == short
    long_match = "x" * 300
    assert len(snippet(long_match, 0, 300, 0, 300)) <= 120


def test_snippets_in_corpus_are_short(reader):
    text = " ".join(["Denies fever, chills, weight loss, saddle numbness, bowel or bladder incontinence."] * 3)
    for finding in reader.read(text, ON):
        assert len(finding.snippet) <= 120


def test_prefilter_skips_the_pipeline(reader, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("pipeline ran")

    monkeypatch.setattr(reader, "_read", boom)
    assert reader.read("Follow-up visit for hypertension. Lisinopril refilled. BP 128/76.", ON) == ()
    assert reader.read("", ON) == ()


def test_prefilter_remembers_its_verdict_on_short_texts_only(reader):
    reader.clear_cache()
    long_text = "Heart rate " * 40
    for _ in range(2):
        assert not reader.might_match("Body Height") and not reader.might_match(long_text)
        assert reader.might_match("Fever") and pairs(reader.read("Fever", ON)) == {("infection-fever", "affirmed")}
    remembered = reader._short_might_match.cache_info()
    # "Body Height" and "Fever", each scanned once; the long text is scanned each time.
    assert (remembered.currsize, remembered.misses) == (2, 2)
    assert remembered.hits >= 3
    reader.clear_cache()
    assert reader._short_might_match.cache_info().currsize == 0


def test_cache_hit_is_fast_and_keyed_on_date(reader):
    text = "Low back pain x 3 days, now urinary retention. " * 20
    reader.clear_cache()
    first = reader.read(text, ON)
    started = time.perf_counter()
    for _ in range(100):
        again = reader.read(text, ON)
    per_read = (time.perf_counter() - started) / 100
    assert again is first and per_read < 0.001
    other_day = reader.read(text, date(2024, 7, 1))
    assert other_day is not first
    assert {f.onset for f in other_day if f.group == "duration"} == {date(2024, 6, 28)}


def test_sections(reader):
    text = ("HPI: 45F with low back pain.\nFamily History: mother with breast cancer, father with urinary retention.\n"
            "Past Medical History: osteoporosis\n\nReturn precautions: urinary retention, saddle numbness.\n"
            "Plan: start naproxen, continue physical therapy.\nAllergies: ibuprofen (rash)")
    found = pairs(reader.read(text, ON))
    assert ("malignancy-history", "other-person") in found
    assert ("cauda-equina-urinary-retention", "other-person") in found
    assert ("fracture-osteoporosis", "historical") in found
    assert ("cauda-equina-urinary-retention", "hypothetical") in found
    assert ("cauda-equina-saddle-anaesthesia", "hypothetical") in found
    assert ("conservative-care", "hypothetical") in found  # start naproxen
    assert ("conservative-care", "affirmed") in found  # continue physical therapy
    assert ("conservative-care", "negated") in found  # allergy
    assert not any(a == "affirmed" for g, a in found if g.startswith("cauda-equina-"))


def test_section_effect_stops_at_blank_line(reader):
    text = "Family History: noncontributory.\n\nPatient reports new urinary retention."
    assert pairs(reader.read(text, ON)) >= {("cauda-equina-urinary-retention", "affirmed")}


def test_question_and_answer_template(reader):
    assert ("fracture-trauma", "negated") in pairs(reader.read("Recent fall or trauma? Denies.", ON))
    assert ("cauda-equina-urinary-retention", "affirmed") in pairs(reader.read("Urinary retention? Yes.", ON))
    assert ("cauda-equina-urinary-retention", "uncertain") in pairs(reader.read("Urinary retention? Bladder scan.", ON))


def test_terminated_max_scope_modifier(reader):
    # needs the ConText scope fix (context.ScopedModifier; test_engine.py shows medspaCy's own behaviour)
    found = pairs(reader.read("CES screen: urinary retention no, saddle numbness yes, bowel incontinence no.", ON))
    assert ("cauda-equina-saddle-anaesthesia", "affirmed") in found
    assert ("cauda-equina-urinary-retention", "negated") in found


def test_thread_safe_reads(reader):
    texts = [f"Visit {i}: low back pain x {i % 9 + 1} days, denies urinary retention." for i in range(40)]
    expected = {t: reader.read(t, ON) for t in texts}
    reader.clear_cache()
    errors = []

    def work(chunk):
        for t in chunk:
            if reader.read(t, ON) != expected[t]:
                errors.append(t)

    threads = [threading.Thread(target=work, args=(texts[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_warning_filters_untouched():
    before = list(warnings.filters)
    TextReader()
    assert warnings.filters == before
    assert not any(f[0] == "ignore" and f[1] is None and f[2] is Warning for f in warnings.filters)


def test_cache_is_bounded():
    small = TextReader(cache_size=3)
    for i in range(10):
        small.read(f"Low back pain x {i + 1} days.", ON)
    assert len(small._cache) == 3


def test_sentences(reader):
    doc = reader._nlp("Denies fever. Any retention? No.\nGU: negative for retention\n\n?CES today. PVR 450 mL. "
                      "Seen by Dr. Smith today. 5 mg p.o. daily")
    assert [s.text.strip() for s in doc.sents] == [
        "Denies fever.", "Any retention?", "No.", "GU: negative for retention", "?CES today.", "PVR 450 mL.",
        "Seen by Dr. Smith today.", "5 mg p.o. daily"]


def test_building_the_reader_does_not_load_quickumls_or_nltk():
    """medspaCy's unused QuickUMLS import (and the NLTK it pulls in, 19 MB) is kept out of the
    process; the real package stays importable afterwards."""
    import subprocess
    import sys

    script = ("import sys; from cds_service.read.text import TextReader; TextReader(); "
              "print('nltk' in sys.modules, 'quickumls' in sys.modules); import quickumls; print(hasattr(quickumls, '__file__'))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.split() == ["False", "False", "True"]
