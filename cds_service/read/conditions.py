"""Conditions: the back-pain episode, its onset and laterality, and the coded red flags.

Role in the data flow: read stage, one Condition at a time; bilateral sciatica is decided once all
Conditions have been read.
"""

from __future__ import annotations

from datetime import date, timedelta

from cds_service.read.context import ReadContext
from cds_service.read.fhir import (
    AGE_UNIT_DAYS,
    concepts_of,
    first_date,
    one_per_valueset,
    parse_date,
    status_code,
)
from cds_service.read.free_text import (
    TextSource,
    affirms_episode,
    apply_findings,
    evidence_of,
    read_source,
    texts_of_notes,
)
from cds_service.read.inputs import EpisodeCondition, Evidence, RedFlagFact

# clinical-specification.md §3: refuted / entered-in-error Conditions are not facts at all.
IGNORED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
# Current signs need one of these clinical statuses (or none given).
ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
MAX_ONSET_AGE_DAYS = 150 * 365.25


def read_condition(ctx: ReadContext, resource: dict, full_url: str | None) -> None:
    matches = ctx.lookup(concepts_of(resource.get("code")))
    if not matches:
        _text_condition(ctx, resource, full_url)
        return
    if status_code(resource.get("verificationStatus")) in IGNORED_VERIFICATION:
        return
    ref = ctx.accept(resource, full_url)
    if ref is None:
        return
    clinical = status_code(resource.get("clinicalStatus"))
    active = clinical is None or clinical in ACTIVE_CLINICAL
    onset = onset_of(ctx, resource)
    recorded = parse_date(resource.get("recordedDate"))
    known = [d for d in (onset, recorded) if d]
    # The latest date someone asserted the condition: what look-back windows are measured from.
    when = max(known) if known else None
    episode_entries = [e for e in matches if e.valueset.purpose == "qualifying-episode"]
    if episode_entries and active:
        sides = ctx.laterality(resource, episode_entries)
        evidence = ctx.evidence(ref, resource, episode_entries[0], onset or recorded)
        ctx.inputs.episode.append(EpisodeCondition(
            evidence=evidence, onset=onset, recorded=recorded, laterality=sides,
        ))
        if sides and any(e.attr("radicular") for e in episode_entries):
            ctx.radicular_sides.append((sides, evidence))
    for entry in one_per_valueset(matches):
        valueset = entry.valueset
        if valueset.purpose == "red-flag":
            if valueset.current_sign and not active:
                continue
            if ctx.lacks_required_site(resource, valueset):
                continue
            ctx.red_flag(entry, ctx.evidence(ref, resource, entry, when))
            if valueset.kind == "long-term-steroids":
                ctx.inputs.corticosteroids.append(ctx.evidence(ref, resource, entry, when))
        elif valueset.purpose == "spinal-surgery":
            ctx.inputs.spinal_surgery.append(ctx.evidence(ref, resource, entry, when))
    notes = texts_of_notes(resource)
    if notes:
        source = TextSource(ref, "Condition", when, "note on the condition", current=active,
                            episode_record=bool(episode_entries))
        apply_findings(ctx, source, read_source(ctx, source, notes))


def _dates(ctx: ReadContext, resource: dict) -> tuple[date | None, date | None, date | None]:
    onset = onset_of(ctx, resource)
    recorded = parse_date(resource.get("recordedDate"))
    known = [d for d in (onset, recorded) if d]
    return onset, recorded, max(known) if known else None


def _text_condition(ctx: ReadContext, resource: dict, full_url: str | None) -> None:
    """clinical-specification.md §9.1: a Condition no coding of which matched is read by its
    code.text (and notes): "Low back pain with bilateral sciatica" qualifies the episode (when
    the Condition is active) and carries the sign."""
    code = resource.get("code")
    texts = [code["text"]] if isinstance(code, dict) and isinstance(code.get("text"), str) else []
    notes = texts_of_notes(resource)
    if ctx.text_reader is None or not (texts or notes):
        return
    if status_code(resource.get("verificationStatus")) in IGNORED_VERIFICATION:
        return
    clinical = status_code(resource.get("clinicalStatus"))
    active = clinical is None or clinical in ACTIVE_CLINICAL
    onset, recorded, when = _dates(ctx, resource)
    # The text first (prefiltered, cached): a Condition whose text says nothing is not validated.
    found = read_source(ctx, TextSource("", "Condition", when, "condition text"), texts)
    noted = read_source(ctx, TextSource("", "Condition", when, "note on the condition"), notes)
    if not (found or noted):
        return
    ref = ctx.accept(resource, full_url)
    if ref is None:
        return
    episode = affirms_episode(found)
    if episode is not None and active:
        ctx.inputs.episode.append(EpisodeCondition(
            evidence=evidence_of(TextSource(ref, "Condition", onset or recorded, "condition text"),
                                 "Back pain episode", episode.snippet),
            onset=onset, recorded=recorded, laterality=ctx.laterality(resource, ()),
        ))
    is_episode = episode is not None and active
    apply_findings(ctx, TextSource(ref, "Condition", when, "condition text", current=active,
                                   episode_record=is_episode), found)
    apply_findings(ctx, TextSource(ref, "Condition", when, "note on the condition", current=active,
                                   episode_record=is_episode), noted)


def onset_of(ctx: ReadContext, resource: dict) -> date | None:
    onset = first_date(resource, "onsetDateTime", "onsetPeriod.start")
    if onset:
        return onset
    age = resource.get("onsetAge")
    birth = ctx.inputs.patient.birth_date
    if isinstance(age, dict) and birth and isinstance(age.get("value"), (int, float)) \
            and not isinstance(age.get("value"), bool):
        unit = str(age.get("code") or age.get("unit") or "a").lower()
        days = AGE_UNIT_DAYS.get(unit)
        # An age at onset outside 0-150 years (1e308, -5) is not an age: not read.
        if days is not None and 0 <= age["value"] * days <= MAX_ONSET_AGE_DAYS:
            if days == 365.25 and float(age["value"]).is_integer():
                try:  # whole years: the birthday itself, not an approximation
                    return birth.replace(year=birth.year + int(age["value"]))
                except ValueError:  # 29 February
                    return birth.replace(year=birth.year + int(age["value"]), day=28)
            return birth + timedelta(days=round(age["value"] * days))
    return None


def bilateral_sciatica(ctx: ReadContext) -> None:
    """clinical-specification.md §5: right and left sciatica/radiculopathy both active -> cauda equina."""
    sides = set().union(*(s for s, _ in ctx.radicular_sides)) if ctx.radicular_sides else set()
    if {"left", "right"} <= sides:
        valueset = ctx.vs["cauda-equina-bilateral-sciatica"]
        for side, evidence in ctx.radicular_sides:
            ctx.inputs.red_flags.append(RedFlagFact(
                group=valueset.group, kind=valueset.kind, label=valueset.label,
                evidence=Evidence(**{**evidence.__dict__, "text": f"{'/'.join(sorted(side))} side"}),
                window_days=valueset.window_days,
            ))
