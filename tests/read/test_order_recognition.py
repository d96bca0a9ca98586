"""Imaging orders as EHRs code them (clinical-specification.md §2.2): by a shipped code, by a site's
local code (LOCAL_CODES_FILE) or, when no code matched, by the order's name; and the local codes
file itself (conditions and observations too: a post-void residual > 200 mL is urinary retention)."""

from __future__ import annotations

import json
from datetime import UTC, date

import pytest

from cds_service.gather.prefetch import GatheredData
from cds_service.read.inputs import (
    CT,
    CT_MYELOGRAPHY,
    MRI,
    UNSPECIFIED,
    WITH,
    WITHOUT,
    WITHOUT_WITH,
    XR,
)
from cds_service.read.local_codes import LocalCodesError, load_local_codes
from cds_service.read.order_names import (
    RULES_FILE,
    OrderNameRulesError,
    load_order_name_rules,
    order_name_rules,
    recognise_order_name,
)
from cds_service.read.parser import parse_inputs
from cds_service.read.valuesets import VALUESET_DIR, load_valuesets

from .builders import (
    CPT,
    ICD,
    PID,
    TODAY,
    bundle,
    condition,
    hook_request,
    observation,
    patient,
    quantity,
)

EPIC = "urn:oid:1.2.840.114350.1.13.999.7.2.696580"
LOCAL = "urn:oid:1.2.840.114350.1.13.999.2.7.2.768282"


def named_order(oid: str = "o1", text: str | None = None, codings: list[dict] | None = None) -> dict:
    code: dict = {"coding": codings or []}
    if text is not None:
        code["text"] = text
    return {"resourceType": "ServiceRequest", "id": oid, "status": "draft", "intent": "original-order",
            "subject": {"reference": f"Patient/{PID}"}, "authoredOn": "2026-02-20", "code": code}


def read(orders: list[dict], valuesets=None, conditions=(), observations=(), settings=None):
    gathered = GatheredData(data={
        "patient": patient(), "conditions": bundle(*conditions), "observations": bundle(*observations),
        "procedures": bundle(), "medications": bundle(), "imagingStudies": bundle(), "diagnosticReports": bundle(),
    })
    return parse_inputs(hook_request(orders), gathered, valuesets or load_valuesets(), settings or {}, TODAY)


# ------------------------------------------------------------------------------ names -> studies

@pytest.mark.parametrize(("name", "modality", "contrast"), [
    ("MRI LUMBAR SPINE WO CONTRAST", MRI, WITHOUT),
    ("MR L-SPINE W/WO", MRI, WITHOUT_WITH),
    ("XR LUMBAR SPINE 2-3 VIEWS", XR, WITHOUT),
    ("CT LUMBAR SPINE W/O CONTRAST", CT, WITHOUT),
    ("CT MYELOGRAM LUMBAR", CT_MYELOGRAPHY, WITH),
    ("LUMBOSACRAL SPINE XRAY", XR, WITHOUT),
    ("MRI LUMBAR SPINE W CONTRAST", MRI, WITH),
    ("MRI LUMBAR SPINE W/ CONTRAST", MRI, WITH),
    ("mri lumbar spine w contrast", MRI, WITH),
    ("MRI LUMBAR SPINE WITH CONTRAST", MRI, WITH),
    ("MR L-SPINE W", MRI, WITH),
    ("MRI L SPINE WO", MRI, WITHOUT),
    ("MRI LUMBAR SPINE WITHOUT CONTRAST", MRI, WITHOUT),
    ("CT LUMBAR SPINE NON-CONTRAST", CT, WITHOUT),
    ("MRI LUMBAR SPINE W WO", MRI, WITHOUT_WITH),
    ("MRI LUMBAR SPINE WO W", MRI, WITHOUT_WITH),
    ("MRI LUMBAR SPINE W+WO", MRI, WITHOUT_WITH),
    ("MRI LUMBAR SPINE W AND W/O", MRI, WITHOUT_WITH),
    ("MRI LUMBAR SPINE WITH AND WITHOUT CONTRAST", MRI, WITHOUT_WITH),
    ("MRI LUMBAR SPINE WITHOUT AND WITH CONTRAST", MRI, WITHOUT_WITH),
    ("MRI LUMBAR SPINE WITH OR WITHOUT CONTRAST", MRI, UNSPECIFIED),
    ("MRI LUMBAR SPINE", MRI, UNSPECIFIED),
    ("MRI LUMBAR SPINE WITH SEDATION", MRI, UNSPECIFIED),  # 'with' another word: not contrast
    ("MRI LUMBAR SPINE WITHOUT SEDATION", MRI, UNSPECIFIED),
    ("Magnetic resonance imaging of the lumbar spine", MRI, UNSPECIFIED),
    ("CT SPINE LUMBAR", CT, UNSPECIFIED),
    ("Computed tomography, lumbar spine; without contrast material", CT, WITHOUT),
    ("CAT SCAN LUMBOSACRAL SPINE", CT, UNSPECIFIED),
    ("CT L/S SPINE W/O", CT, WITHOUT),
    ("CT LS SPINE", CT, UNSPECIFIED),
    ("CT MYELO LUMBAR", CT_MYELOGRAPHY, WITH),
    ("CT LUMBAR SPINE POST MYELOGRAM", CT_MYELOGRAPHY, WITH),
    ("X-RAY LUMBAR SPINE AP AND LATERAL", XR, WITHOUT),
    ("XR LSPINE FLEXION AND EXTENSION W VIEWS", XR, WITHOUT),  # contrast is never read for X-ray
    ("DX LUMBAR SPINE 4+ VIEWS", XR, WITHOUT),
    ("PLAIN FILM L-SPINE", XR, WITHOUT),
    ("LUMBAR SPINE 2 VIEWS", XR, WITHOUT),  # views: a radiograph when no modality is named
    ("XR THORACOLUMBAR SPINE", XR, WITHOUT),  # thoracolumbar counts as lumbar
    ("MRI THORACIC AND LUMBAR SPINE WO", MRI, WITHOUT),
    ("MRI LUMBAR SPINE, Dx: low back pain", MRI, UNSPECIFIED),  # 'Dx:' is not the DX modality
])
def test_a_lumbar_name_gives_its_modality_and_contrast(name, modality, contrast):
    found = recognise_order_name([name])
    assert found is not None, name
    assert (found.modality, found.contrast, found.name) == (modality, contrast, name)


@pytest.mark.parametrize("name", [
    "CT CERVICAL SPINE WO",
    "MRI C-SPINE W/WO",
    "MRI CERVICAL AND LUMBAR SPINE WO",  # more than the lumbar spine: not judged
    "XR THORACIC SPINE 2 VIEWS",
    "MRI BRAIN WO CONTRAST",
    "CT HEAD WO",
    "XR CHEST 2 VIEWS",
    "CT ABDOMEN PELVIS W CONTRAST",
    "XR LUMBAR SPINE AND PELVIS",
    "XR HIP 2 VIEWS",
    "MRI KNEE WO",
    "XR SACROILIAC JOINTS",
    "MRI SI JOINTS WO",
    "MRI LUMBAR PLEXUS",
    "FL LUMBAR PUNCTURE",
    "CT GUIDED LUMBAR BIOPSY",
    "XR LUMBAR EPIDURAL STEROID INJECTION",
    "DXA LUMBAR SPINE",
    "MRA LUMBAR SPINE",
    "XR AND MRI LUMBAR SPINE",  # two modalities: ambiguous
    "LUMBAR SPINE",  # no modality
    "MRI SPINE",  # no region
    "MRI WO CONTRAST",
    "CT MYELO",
    "PHYSICAL THERAPY REFERRAL, DX LUMBAR STRAIN",  # DX names a radiograph only opening the name
    "",
])
def test_other_names_are_not_lumbar_imaging(name):
    assert recognise_order_name([name]) is None


def test_every_shipped_code_display_reads_as_its_own_study():
    shipped = json.loads((VALUESET_DIR / "lumbar-imaging-orders.json").read_text(encoding="utf-8"))
    for entry in shipped["entries"]:
        found = recognise_order_name([entry["display"]])
        assert found is not None and (found.modality, found.contrast) == (entry["modality"], entry["contrast"]), entry


def test_every_rule_matches_its_own_examples_and_has_a_description():
    rules = order_name_rules().rules
    assert rules and all(r.description and r.examples for r in rules)
    for rule in rules:
        for example in rule.examples:
            assert rule.matches(example.lower()), (rule.section, rule.description, example)


def test_a_name_that_names_another_region_vetoes_the_order():
    assert recognise_order_name(["MRI LUMBAR SPINE WO", "MRI CERVICAL SPINE WO"]) is None
    first = recognise_order_name(["Imaging", "MRI LUMBAR SPINE WO", "MR L-SPINE W/WO"])
    assert first is not None and first.name == "MRI LUMBAR SPINE WO"


def test_a_broken_rules_file_names_the_rule(tmp_path):
    raw = json.loads(RULES_FILE.read_text(encoding="utf-8"))
    raw["contrast"][1]["pattern"] = "(unclosed"
    path = tmp_path / "order_names.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(OrderNameRulesError, match="contrast rule 2: 'pattern' is not a regular expression"):
        load_order_name_rules(path)
    raw["contrast"][1]["pattern"] = "wo"
    raw["modality"][0]["modality"] = "PET"
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(OrderNameRulesError, match="modality rule 1"):
        load_order_name_rules(path)


# ------------------------------------------------------------------------------ the read path

def test_an_order_with_only_a_site_code_is_recognised_by_its_display_and_cites_that_code():
    sr = named_order(codings=[{"system": EPIC, "code": "87654", "display": "MRI LUMBAR SPINE WO CONTRAST"}])
    (judged,) = read([sr]).orders
    assert (judged.modality, judged.contrast, judged.recognised_by) == (MRI, WITHOUT, "name")
    assert (judged.code.system, judged.code.code, judged.code.display) == (EPIC, "87654", "MRI LUMBAR SPINE WO CONTRAST")
    assert judged.code.reference == "ServiceRequest/o1" and judged.code.date == date(2026, 2, 20)


def test_an_order_with_only_a_text_is_recognised_by_it():
    (judged,) = read([named_order(text="CT L-SPINE W/O")]).orders
    assert (judged.modality, judged.contrast, judged.recognised_by) == (CT, WITHOUT, "name")
    assert (judged.code.code, judged.code.display) == (None, "CT L-SPINE W/O")


def test_a_shipped_code_wins_over_the_name_and_other_orders_stay_unjudged():
    coded = named_order("o1", text="MRI LUMBAR SPINE W/WO", codings=[{"system": CPT, "code": "72148"}])
    brain = named_order("o2", codings=[{"system": CPT, "code": "70551", "display": "MRI brain without contrast"}])
    cervical = named_order("o3", codings=[{"system": EPIC, "code": "555", "display": "CT CERVICAL SPINE WO"}])
    empty = named_order("o4", codings=[{}])
    inputs = read([coded, brain, cervical, empty])
    assert [(o.reference, o.contrast, o.recognised_by) for o in inputs.orders] == [("ServiceRequest/o1", WITHOUT, "code")]


# ------------------------------------------------------------------------------ local codes file

LOCAL_CODES = f"""
# the same file maps local codes of orders, conditions and observations
orders:
  - {{system: "{EPIC}", code: "12345", modality: MRI, contrast: without, display: "MRI LUMBAR SPINE WO CONTRAST"}}
  - {{system: "{EPIC}", code: "12346", modality: XR}}
conditions:            # a local code counts as the codes of a value set
  - {{system: "{LOCAL}", code: "LBP1", valueset: qualifying-episode}}
observations:
  - {{system: "{LOCAL}", code: "PVR", measure: post-void-residual}}   # mL; > 200 mL is retention
  - {{system: "{LOCAL}", code: "RET", valueset: cauda-equina-urinary-retention}}
"""


@pytest.fixture
def local_valuesets(tmp_path):
    path = tmp_path / "local-codes.yaml"
    path.write_text(LOCAL_CODES, encoding="utf-8")
    return load_valuesets(local_codes=load_local_codes(path))


def test_local_codes_join_the_value_sets_with_their_attributes(local_valuesets):
    (mri,) = local_valuesets.lookup(EPIC, "12345")
    assert (mri.valueset.id, mri.attr("modality"), mri.attr("contrast"), mri.local) == ("lumbar-imaging-orders", MRI, WITHOUT, True)
    (xr,) = local_valuesets.lookup(EPIC, "12346")
    assert (xr.attr("modality"), xr.attr("contrast"), xr.display) == (XR, WITHOUT, "12346")
    assert [e.valueset.id for e in local_valuesets.lookup(LOCAL, "LBP1")] == ["qualifying-episode"]
    (pvr,) = local_valuesets.lookup(LOCAL, "PVR")
    assert (pvr.valueset.id, pvr.attr("measure")) == ("observation-codes", "post-void-residual")
    # the shipped value sets are untouched: the local ones are a new lookup
    assert load_valuesets().lookup(EPIC, "12345") == ()
    assert len(local_valuesets.lookup(CPT, "72148")) == 1


def test_a_local_order_code_is_judged_like_a_shipped_one(local_valuesets):
    sr = named_order(codings=[{"system": EPIC, "code": "12345", "display": "MRI L SPINE (SITE NAME)"}])
    (judged,) = read([sr], local_valuesets).orders
    assert (judged.modality, judged.contrast, judged.recognised_by) == (MRI, WITHOUT, "local-code")
    assert (judged.code.system, judged.code.code, judged.code.display) == (EPIC, "12345", "MRI L SPINE (SITE NAME)")


def test_a_local_condition_code_qualifies_the_episode(local_valuesets):
    lbp = condition("c1", LOCAL, "LBP1", onset="2026-02-01")
    inputs = read([named_order(codings=[{"system": CPT, "code": "72148"}])], local_valuesets, conditions=[lbp])
    assert [(e.evidence.reference, e.onset) for e in inputs.episode] == [("Condition/c1", date(2026, 2, 1))]
    assert read([named_order(codings=[{"system": CPT, "code": "72148"}])], conditions=[lbp]).episode == []


def test_a_post_void_residual_local_code_over_200_ml_is_urinary_retention(local_valuesets):
    order = named_order(codings=[{"system": CPT, "code": "72148"}])
    high = observation("p1", LOCAL, "PVR", **quantity(250, "mL"))
    low = observation("p2", LOCAL, "PVR", **quantity(200, "mL"))
    (flag,) = read([order], local_valuesets, observations=[high, low]).red_flags
    assert (flag.group, flag.kind, flag.evidence.reference) == ("cauda-equina", "urinary-retention", "Observation/p1")
    assert flag.evidence.text == "Post-void residual 250 mL"
    assert read([order], observations=[high]).red_flags == []  # without the file the code means nothing
    coded = observation("r1", LOCAL, "RET", valueBoolean=True)
    (flag,) = read([order], local_valuesets, observations=[coded]).red_flags
    assert (flag.kind, flag.evidence.reference) == ("urinary-retention", "Observation/r1")


def test_the_deprecated_post_void_residual_setting_is_still_read():
    order = named_order(codings=[{"system": CPT, "code": "72148"}])
    high = observation("p1", "urn:local", "PVR", **quantity(250, "mL"))
    (flag,) = read([order], observations=[high], settings={"POST_VOID_RESIDUAL_CODES": ("urn:local|PVR",)}).red_flags
    assert flag.kind == "urinary-retention"


def test_an_empty_local_codes_file_adds_nothing(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")
    assert load_valuesets(local_codes=load_local_codes(path)) is load_valuesets()


@pytest.mark.parametrize(("text", "problem"), [
    ("orders: [", "not valid YAML"),
    ("- just a list", "must be a mapping with the sections"),
    ("order:\n  - {system: s, code: '1', modality: MRI}", r"unknown section\(s\) \['order'\]"),
    ("orders: {system: s}", "'orders' must be a list of entries"),
    ("orders:\n  - {system: s, code: '1', modality: MRI}\n  - just text", "orders entry 2: must be a mapping"),
    ("orders:\n  - {code: '1', modality: MRI}", "orders entry 1: 'system' must be a non-empty string"),
    ("orders:\n  - {system: s, code: 12345, modality: MRI}", "orders entry 1: 'code' 12345 must be quoted"),
    ("orders:\n  - {system: s, code: '1', modality: PET}", "orders entry 1: 'modality' must be one of XR, CT, CT-myelography, MRI"),
    ("orders:\n  - {system: s, code: '1', modality: MRI, contrast: WO}", "orders entry 1: 'contrast' must be one of without, with"),
    ("orders:\n  - {system: s, code: '1', modality: XR, contrast: with}", "orders entry 1: XR is always contrast 'without'"),
    ("orders:\n  - {system: s, code: '1', modality: MRI, contras: with}", r"orders entry 1: unknown key\(s\) \['contras'\]"),
    ("orders:\n  - {system: s, code: '1', modality: MRI}\n  - {system: s, code: '1', modality: CT}", "orders entry 2: s|1 repeats orders entry 1"),
    ("conditions:\n  - {system: s, code: LBP}", "conditions entry 1: 'valueset' must name a value set"),
    ("conditions:\n  - {system: s, code: LBP, valueset: qualifying-episode, laterality: both}", "conditions entry 1: 'laterality' must be one of"),
    ("observations:\n  - {system: s, code: PVR}", "observations entry 1: needs 'measure'"),
    ("observations:\n  - {system: s, code: PVR, measure: pvr}", "observations entry 1: 'measure' must be one of post-void-residual"),
    ("observations:\n  - {system: s, code: PVR, measure: post-void-residual, valueset: x}", "observations entry 1: give either 'measure' or 'valueset'"),
])
def test_a_malformed_local_codes_file_names_the_file_the_entry_and_the_problem(tmp_path, text, problem):
    path = tmp_path / "site-codes.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LocalCodesError, match=problem) as error:
        load_local_codes(path)
    assert str(error.value).startswith(str(path))


@pytest.mark.parametrize(("text", "problem"), [
    ("conditions:\n  - {system: s, code: LBP, valueset: low-back-pain}", "conditions entry 1 .s|LBP.: no value set 'low-back-pain'"),
    ("conditions:\n  - {system: s, code: T, valueset: observation-codes}", "conditions entry 1 .s|T.: value set 'observation-codes' .observation. is not one conditions are read for"),
    ("observations:\n  - {system: s, code: X, valueset: lumbar-imaging-orders}", "observations entry 1 .s|X.: value set 'lumbar-imaging-orders'"),
])
def test_a_local_code_must_name_a_value_set_its_records_are_read_for(tmp_path, text, problem):
    path = tmp_path / "site-codes.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LocalCodesError, match=problem):
        load_valuesets(local_codes=load_local_codes(path))


def test_a_missing_local_codes_file_is_named(tmp_path):
    with pytest.raises(LocalCodesError, match=r"nowhere\.yaml: cannot be read"):
        load_local_codes(tmp_path / "nowhere.yaml")


def test_the_app_checks_the_local_codes_file_at_start_up(tmp_path):
    from cds_service.app import create_app

    path = tmp_path / "site-codes.yaml"
    path.write_text("orders:\n  - {system: s, code: '1', modality: PET}\n", encoding="utf-8")
    with pytest.raises(LocalCodesError, match="orders entry 1"):
        create_app({"TESTING": True, "DATABASE_PATH": str(tmp_path / "s.sqlite3"), "LOCAL_CODES_FILE": str(path)})


def test_the_evaluator_records_how_each_order_was_recognised(tmp_path):
    from datetime import datetime

    from cds_service.config import load_settings
    from cds_service.pipeline import Evaluator

    path = tmp_path / "local-codes.yaml"
    path.write_text(LOCAL_CODES, encoding="utf-8")
    evaluator = Evaluator(load_settings({"LOCAL_CODES_FILE": str(path)}))
    orders = [
        named_order("o1", codings=[{"system": CPT, "code": "72148"}]),
        named_order("o2", codings=[{"system": EPIC, "code": "12345"}]),
        named_order("o3", codings=[{"system": EPIC, "code": "87654", "display": "MRI LUMBAR SPINE WO CONTRAST"}]),
    ]
    lbp = condition("c1", ICD, "M54.50", onset="2026-02-10")
    gathered = GatheredData(data={"patient": patient(), "conditions": bundle(lbp), **{
        key: bundle() for key in ("observations", "procedures", "medications", "imagingStudies", "diagnosticReports")}})
    result = evaluator.evaluate(hook_request(orders), gathered, datetime(2026, 3, 1, tzinfo=UTC))
    seen = {j.order_reference: (j.order_recognised_by, j.order_code, j.rating) for j in result.judgements}
    assert seen == {
        "ServiceRequest/o1": ("code", f"{CPT}|72148", "not-appropriate"),
        "ServiceRequest/o2": ("local-code", f"{EPIC}|12345", "not-appropriate"),
        "ServiceRequest/o3": ("name", f"{EPIC}|87654", "not-appropriate"),
    }
