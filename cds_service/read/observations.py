"""Observations: coded signs, body temperature (fever), body weight (weight loss), post-void residual.

Role in the data flow: read stage. Vital signs outside every window they could count in are
skipped before model validation (years of vital signs are most of a real record).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from cds_service.read.context import Hit, ReadContext
from cds_service.read.fhir import (
    CELSIUS_UNITS,
    FAHRENHEIT_UNITS,
    KG_UNITS,
    ML_UNITS,
    codings,
    concepts_of,
    first_date,
    one_per_valueset,
)
from cds_service.read.free_text import (
    TextSource,
    apply_findings,
    might_say,
    read_source,
    texts_of_notes,
)
from cds_service.read.inputs import Evidence, Measurement
from cds_service.read.valuesets import Entry

IGNORED_OBSERVATION_STATUS = frozenset({"entered-in-error", "cancelled"})


def read_observation(ctx: ReadContext, resource: dict, full_url: str | None) -> None:
    code = resource.get("code")
    matches = ctx.lookup(concepts_of(code))
    pvr = any(hit.attr("measure") == "post-void-residual" for hit in matches) or _is_post_void_residual(ctx, code)
    if not matches and not pvr:
        _text_observation(ctx, resource, full_url)
        return
    if resource.get("status") in IGNORED_OBSERVATION_STATUS:
        return
    when = first_date(resource, "effectiveDateTime", "effectivePeriod.start", "effectiveInstant", "issued")
    if not pvr and when is not None and _vital_sign_out_of_window(ctx, matches, when):
        return
    ref = ctx.accept(resource, full_url)
    if ref is None:
        return
    negated = says_absent(ctx, resource)
    for entry in one_per_valueset(matches):
        valueset = entry.valueset
        if valueset.purpose == "red-flag":
            if ctx.lacks_required_site(resource, valueset):
                continue
            ctx.red_flag(entry, ctx.evidence(ref, resource, entry, when), negated=negated)
        elif valueset.purpose == "observation" and entry.attr("measure") == "body-temperature":
            _temperature(ctx, resource, ref, entry, when)
        elif valueset.purpose == "observation" and entry.attr("measure") == "body-weight":
            _weight(ctx, resource, ref, entry, when)
    if pvr:
        _post_void_residual(ctx, resource, ref, when)
    texts = observation_texts(resource)
    if texts:
        source = TextSource(ref, "Observation", when, "observation text")
        apply_findings(ctx, source, read_source(ctx, source, texts))


def observation_texts(resource: dict, with_code_text: bool = False) -> list[str]:
    """clinical-specification.md §9.1: valueString, valueCodeableConcept.text and the notes. With
    `with_code_text` (an Observation none of whose codes the value sets know), `code.text` too, in
    front of the value it names ("DRE" and "reduced tone" read as "DRE: reduced tone")."""
    values = [resource["valueString"]] if isinstance(resource.get("valueString"), str) else []
    value = resource.get("valueCodeableConcept")
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        values.append(value["text"])
    code = resource.get("code")
    name = code.get("text") if with_code_text and isinstance(code, dict) else None
    if isinstance(name, str) and name.strip():
        name = name.strip().rstrip(":")
        values = [f"{name}: {v}" for v in values] if values else [name]
    return values + texts_of_notes(resource)


def _text_observation(ctx: ReadContext, resource: dict, full_url: str | None) -> None:
    """An Observation none of whose codes the value sets know, read by its text alone."""
    if ctx.text_reader is None or resource.get("status") in IGNORED_OBSERVATION_STATUS:
        return
    texts = observation_texts(resource, with_code_text=True)
    if not might_say(ctx, texts):  # most Observations: a name ("Heart rate") and a number
        return
    when = first_date(resource, "effectiveDateTime", "effectivePeriod.start", "effectiveInstant", "issued")
    found = read_source(ctx, TextSource("", "Observation", when, "observation text"), texts)
    if not found:
        return
    ref = ctx.accept(resource, full_url)
    if ref is not None:
        apply_findings(ctx, TextSource(ref, "Observation", when, "observation text"), found)


def _vital_sign_out_of_window(ctx: ReadContext, matches: tuple[Hit, ...], when: date) -> bool:
    """A temperature older than the fever window, or a weight older than the weight-loss
    window, can count for nothing: skip it before paying for its validation (years of
    vital signs are most of a real record's Observations)."""
    if any(hit.valueset.purpose != "observation" for hit in matches):
        return False  # a coded sign (e.g. urinary retention) has windows of its own
    windows = ctx.vital_sign_windows
    days_before = (ctx.inputs.reference_date - when).days
    return all(
        windows.get(hit.attr("measure")) is not None and days_before > windows[hit.attr("measure")]
        for hit in matches
    )


def says_absent(ctx: ReadContext, resource: dict) -> bool:
    if resource.get("valueBoolean") is False:
        return True
    concepts = concepts_of(resource.get("valueCodeableConcept")) + concepts_of(resource.get("interpretation"))
    return bool(ctx.lookup(concepts, frozenset({"negative-finding"})))


def quantity_of(resource: dict) -> tuple[float, str] | None:
    quantity = resource.get("valueQuantity")
    if not isinstance(quantity, dict) or isinstance(quantity.get("value"), bool):
        return None
    value = quantity.get("value")
    if not isinstance(value, (int, float)):
        return None
    unit = quantity.get("code") or quantity.get("unit") or ""
    return float(value), str(unit).strip().lower()


def _temperature(ctx: ReadContext, resource: dict, ref: str, entry: Entry, when: date | None) -> None:
    quantity = quantity_of(resource)
    if quantity is None:
        return
    value, unit = quantity
    if unit in CELSIUS_UNITS:
        celsius, shown = value, f"{value:g} Cel"
    elif unit in FAHRENHEIT_UNITS:
        # Round the conversion: 100.4 [degF] is exactly 38.0 Cel, not 37.99999...
        celsius, shown = round((value - 32) * 5 / 9, 3), f"{value:g} [degF]"
    else:
        return  # an unknown unit is not guessed at
    evidence = ctx.evidence(ref, resource, entry, when, text=f"Body temperature {shown}")
    ctx.inputs.measurements.append(Measurement("body-temperature-cel", celsius, evidence))
    threshold = ctx.vs["observation-codes"].extra.get("fever_threshold_cel", 38.0)
    if celsius >= threshold:
        fever = ctx.vs.entries_by_id["infection-fever"][0]
        ctx.red_flag(fever, evidence)


def _weight(ctx: ReadContext, resource: dict, ref: str, entry: Entry, when: date | None) -> None:
    quantity = quantity_of(resource)
    if quantity is None or quantity[1] not in KG_UNITS:
        return
    kg = round(quantity[0] * KG_UNITS[quantity[1]], 3)
    evidence = ctx.evidence(ref, resource, entry, when, text=f"Body weight {kg:g} kg")
    ctx.inputs.measurements.append(Measurement("body-weight-kg", kg, evidence))
    if when:
        ctx.weights.append((when, kg, evidence))


def _is_post_void_residual(ctx: ReadContext, code: Any) -> bool:
    """The deprecated POST_VOID_RESIDUAL_CODES setting (`system|code`), still read when set; a site now
    lists its post-void residual codes in LOCAL_CODES_FILE (`measure: post-void-residual`)."""
    configured = ctx.settings.get("POST_VOID_RESIDUAL_CODES") or ()
    if not configured:
        return False
    for coding in codings(code):
        if f"{coding.get('system')}|{coding.get('code')}" in configured:
            return True
    return False


def _post_void_residual(ctx: ReadContext, resource: dict, ref: str, when: date | None) -> None:
    quantity = quantity_of(resource)
    if quantity is None or quantity[1] not in ML_UNITS:
        return
    ml = quantity[0] * ML_UNITS[quantity[1]]
    config = ctx.vs["observation-codes"].extra.get("post_void_residual", {})
    if ml > config.get("threshold_ml", 200):
        retention = ctx.vs.entries_by_id["cauda-equina-urinary-retention"][0]
        coding = next(iter(codings(resource.get("code"))), {})
        evidence = Evidence(
            reference=ref, resource_type="Observation", code=coding.get("code"),
            system=coding.get("system"), display=coding.get("display"), date=when,
            text=f"Post-void residual {ml:g} mL",
        )
        ctx.red_flag(retention, evidence, window_days=ctx.vs.measure_windows()["post-void-residual"])


def weight_loss(ctx: ReadContext) -> None:
    """>= 5 % body weight lost within 180 days (clinical-specification.md §5, malignancy)."""
    config = ctx.vs["observation-codes"].extra
    window = ctx.vs.measure_windows()["body-weight"]
    start = ctx.inputs.reference_date - timedelta(days=window)
    weights = sorted((w for w in ctx.weights if start <= w[0] <= ctx.inputs.reference_date),
                     key=lambda w: w[0])
    if len(weights) < 2:
        return
    last_day, last_kg, last_evidence = weights[-1]
    earlier = [w for w in weights if w[0] < last_day]
    if not earlier:
        return
    top_day, top_kg, _ = max(earlier, key=lambda w: w[1])
    loss = (top_kg - last_kg) / top_kg if top_kg > 0 else 0
    if loss >= config.get("weight_loss_fraction", 0.05):
        entry = ctx.vs.entries_by_id["malignancy-weight-loss"][0]
        text = (f"Body weight {top_kg:g} kg on {top_day.isoformat()}, {last_kg:g} kg on "
                f"{last_day.isoformat()} (-{loss * 100:.1f} %)")
        evidence = Evidence(**{**last_evidence.__dict__, "text": text})
        ctx.red_flag(entry, evidence, kind="weight-loss-measured",
                       label="Weight loss >= 5 % in 180 days", window_days=window)
