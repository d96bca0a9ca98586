"""The value-set files: every one loads, names its source, and no code sits in two sets that
would give it conflicting meanings; lookups by exact code and by ICD-10-CM prefix."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from cds_service.read.valuesets import (
    VALUESET_DIR,
    ValueSetError,
    load_valuesets,
    load_valuesets_from,
    normalise_code,
)

from .builders import CPT, ICD, LOINC, SCT

FILES = sorted(VALUESET_DIR.glob("*.json"))
# Within one purpose, a code in two sets would mean two things (e.g. MRI and CT, or two red-flag
# kinds). Across purposes, sharing is intended (Z79.52 is both a fracture red flag and evidence of
# corticosteroid exposure), so conflicts are checked per purpose.
EXCLUSIVE_PURPOSES = ("imaging-order", "qualifying-episode", "red-flag", "spinal-surgery",
                      "systemic-corticosteroid", "negative-finding", "observation", "laterality")


def test_the_shipped_files_are_found():
    assert len(FILES) >= 20


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_file_loads_and_names_its_source(path: Path, tmp_path: Path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["id"] == path.stem
    assert len(raw["source"].strip()) > 20, "the source must say where the codes come from"
    if raw["purpose"] == "red-flag":
        assert raw["group"] in {"cauda-equina", "neurological-deficit", "infection", "malignancy", "fracture"}
        assert raw["evidence_rule"] in {"current-sign", "history"}
        assert raw["window_days"] is None or raw["window_days"] > 0
        assert raw["label"] and raw["kind"]
    if not raw.get("derived"):
        assert raw["entries"], "a non-derived value set needs codes"
    for entry in raw["entries"]:
        assert entry["system"] and entry["code"] and entry["display"]
        assert entry["match"] in {"exact", "prefix"}
    # The file loads on its own through the same loader as start-up.
    (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    assert path.stem in load_valuesets_from(tmp_path).by_id


def test_no_code_is_in_two_sets_of_the_same_purpose():
    valuesets = load_valuesets()
    for purpose in EXCLUSIVE_PURPOSES:
        owners: dict[tuple[str, str], set[str]] = defaultdict(set)
        for vs in valuesets.of_purpose(purpose):
            for entry in valuesets.entries_by_id[vs.id]:
                if entry.exclude:
                    continue
                # Ask the index, so exact codes inside another set's prefix are caught too.
                for hit in valuesets.lookup(entry.system, entry.code):
                    if hit.valueset.purpose == purpose:
                        owners[(entry.system, entry.code)].add(hit.valueset.id)
        clashes = {code: ids for code, ids in owners.items() if len(ids) > 1}
        assert not clashes, f"{purpose}: {clashes}"


def test_no_duplicate_entry_within_a_file():
    for path in FILES:
        raw = json.loads(path.read_text(encoding="utf-8"))
        keys = [(e["system"], normalise_code(e["system"], e["code"])) for e in raw["entries"]]
        assert len(keys) == len(set(keys)), path.name


def test_episode_codes_are_not_red_flags():
    valuesets = load_valuesets()
    for entry in valuesets.entries_by_id["qualifying-episode"]:
        purposes = {hit.valueset.purpose for hit in valuesets.lookup(entry.system, entry.code)}
        assert "red-flag" not in purposes, entry.code


@pytest.mark.parametrize("code", ["M54.16", "M5416", "m54.16", " M54.16 "])
def test_icd10_codes_match_with_or_without_the_dot(code):
    hits = load_valuesets().lookup(ICD, code)
    assert [h.valueset.id for h in hits] == ["qualifying-episode"]


@pytest.mark.parametrize("code, expected", [
    ("M46.25", "infection-spinal"),          # prefix M46.2
    ("C79.51", "malignancy-history"),        # C00-C96
    ("C50.911", "malignancy-history"),
    ("C96.9", "malignancy-history"),
    ("Z85.3", "malignancy-history"),
    ("M51.360", "qualifying-episode"),       # M51.36*
    ("Z94.0", "infection-immunosuppression"),
])
def test_prefix_matches(code, expected):
    assert expected in {h.valueset.id for h in load_valuesets().lookup(ICD, code)}


@pytest.mark.parametrize("code", ["C44.91", "C44", "C97", "D00.0", "M54.2", "M46.5"])
def test_prefix_exclusions_and_neighbours_do_not_match(code):
    ids = {h.valueset.id for h in load_valuesets().lookup(ICD, code)}
    assert "malignancy-history" not in ids and "infection-spinal" not in ids
    assert "qualifying-episode" not in ids


def test_the_who_icd10_uri_is_read_as_icd10cm():
    hits = load_valuesets().lookup("http://hl7.org/fhir/sid/icd-10", "M54.5")
    assert [h.valueset.id for h in hits] == ["qualifying-episode"]


@pytest.mark.parametrize("system, code, modality, contrast", [
    (CPT, "72100", "XR", "without"), (CPT, "72131", "CT", "without"), (CPT, "72132", "CT", "with"),
    (CPT, "72133", "CT", "without-with"), (CPT, "72265", "CT-myelography", "with"),
    (CPT, "72148", "MRI", "without"), (CPT, "72149", "MRI", "with"), (CPT, "72158", "MRI", "without-with"),
    (LOINC, "36402-6", "CT", "without-with"), (LOINC, "24968-0", "MRI", "unspecified"),
    (SCT, "394451000119106", "MRI", "without"), (SCT, "711224009", "CT", "unspecified"),
])
def test_imaging_codes_carry_modality_and_contrast(system, code, modality, contrast):
    (hit,) = load_valuesets().lookup(system, code)
    assert (hit.attr("modality"), hit.attr("contrast")) == (modality, contrast)


def test_unknown_and_empty_codings_match_nothing():
    valuesets = load_valuesets()
    assert valuesets.lookup(None, None) == ()
    assert valuesets.lookup_coding({}) == ()
    assert valuesets.lookup(CPT, "71045") == ()  # chest X-ray
    assert valuesets.lookup(SCT, "72148") == ()  # right code, wrong system


def test_red_flag_windows_follow_the_pathway():
    by_kind = {vs.kind: vs for vs in load_valuesets().of_purpose("red-flag")}
    assert by_kind["fever"].window_days == 14
    assert by_kind["neurological-deficit"].window_days == 365
    assert by_kind["spinal-infection"].window_days == 365
    assert by_kind["iv-drug-use"].window_days == 365
    assert by_kind["spinal-procedure"].window_days == 90
    assert by_kind["trauma"].window_days == 90
    assert by_kind["weight-loss"].window_days == 180
    for kind in ("immunosuppression", "history-of-cancer", "osteoporosis"):
        assert by_kind[kind].window_days is None and by_kind[kind].evidence_rule == "history"


def test_a_broken_file_stops_start_up_with_its_name(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps(
        {"id": "bad", "title": "t", "purpose": "red-flag", "source": "somewhere specific enough",
         "entries": []}))
    with pytest.raises(ValueSetError, match="bad.json"):
        load_valuesets_from(tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps(
        {"id": "bad", "title": "t", "purpose": "laterality", "source": "", "entries": []}))
    with pytest.raises(ValueSetError, match="source"):
        load_valuesets_from(tmp_path)


def test_loading_is_cached():
    assert load_valuesets() is load_valuesets()


def test_repeated_lookups_give_the_same_answer_within_the_memo_bound(monkeypatch):
    """The memo of raw (system, code) answers: a cached answer equals a fresh one, and the
    memo starts again rather than grow past its bound."""
    valuesets = load_valuesets()
    monkeypatch.setattr(type(valuesets), "_CACHE_MAX", 3)
    codes = ["C50.9", "C44.9", "M54.16", "8310-5", "C50.9", "c509", "C44.9"]
    first = [valuesets.lookup(ICD, c) for c in codes]
    again = [valuesets.lookup(ICD, c) for c in codes]
    fresh = [valuesets._lookup(ICD, c) for c in codes]
    assert first == again == fresh
    assert {h.valueset.id for h in first[0]} == {"malignancy-history"}
    assert first[1] == ()  # C44 (skin, not melanoma) is excluded from the cancer history set
    assert len(valuesets._cache) <= 3
