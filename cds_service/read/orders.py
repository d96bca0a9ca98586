"""The draft imaging orders (context.draftOrders): which are lumbar spine imaging, which are judged,
and what their reasons say.

Role in the data flow: read stage. On order-select only the selected orders are judged; on
order-sign all of them. The order's own reasonCode qualifies the episode and can carry a red flag.

An order is lumbar spine imaging by one of its codes (the shipped value set, or a site's local
code from LOCAL_CODES_FILE) or, when no code matched, by its name (`read/order_names.py`);
docs/clinical-specification.md §2.2. `ImagingOrder.recognised_by` keeps which ("code",
"local-code", "name"); every way is judged alike, and the card cites the order's own coding.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_service.read.context import ReadContext
from cds_service.read.fhir import codings, concepts_of, iter_resources, parse_date, ref_of, validate
from cds_service.read.free_text import (
    TextSource,
    affirms_episode,
    apply_findings,
    evidence_of,
    read_source,
    texts_of_notes,
)
from cds_service.read.inputs import EpisodeCondition, Evidence, ImagingOrder
from cds_service.read.order_names import NameMatch, recognise_order_name
from cds_service.vocabulary import RecognisedBy


def read_orders(ctx: ReadContext) -> tuple[list[ImagingOrder], list[tuple[str, dict]], list[str]]:
    judged: list[ImagingOrder] = []
    lumbar: list[tuple[str, dict]] = []
    selections = set(ctx.request.selections)
    skipped: list[str] = []
    for resource, full_url in iter_resources(ctx.request.draft_orders):
        if resource.get("resourceType") != "ServiceRequest":
            continue
        matches = ctx.lookup(concepts_of(resource.get("code")), frozenset({"imaging-order"}))
        named = None if matches else recognise_order_name(order_names(resource.get("code")))
        if not matches and named is None:
            continue  # the sandbox's empty {"coding": [{}]}: simply not a lumbar order
        ref = ref_of(resource, full_url)
        if ctx.is_other_patient(resource):
            continue
        try:
            validate(ServiceRequest, resource, whole=True)
        except Exception:
            skipped.append(ref)
            continue
        lumbar.append((ref, resource))
        if ctx.request.hook == "order-select" and not ({ref, full_url} & selections):
            continue
        authored = parse_date(resource.get("authoredOn"))
        priority = resource.get("priority") if isinstance(resource.get("priority"), str) else None
        if matches:
            entry = matches[0]
            modality, contrast = entry.attr("modality"), entry.attr("contrast")
            code = ctx.evidence(ref, resource, entry, authored)
            recognised_by = RecognisedBy.LOCAL_CODE if entry.entry.local else RecognisedBy.CODE
        else:
            modality, contrast = named.modality, named.contrast
            code = name_evidence(ref, resource, named, authored)
            recognised_by = RecognisedBy.NAME
        judged.append(ImagingOrder(
            reference=ref, modality=modality, contrast=contrast, code=code, priority=priority,
            authored_on=authored, resource=resource, recognised_by=recognised_by,
        ))
    return judged, lumbar, skipped


def order_names(code: Any) -> list[Any]:
    """The order's names, as read by `order_names.py`: code.text first, then each coding.display."""
    names = [code.get("text")] if isinstance(code, dict) else []
    return names + [coding.get("display") for coding in codings(code)]


def name_evidence(ref: str, resource: dict, named: NameMatch, authored: date | None) -> Evidence:
    """Cite the order's own coding (a site code such as an Epic procedure id) when it has one: the
    coding whose display was read, else the first coding with a code; else the name alone."""
    coded = [c for c in codings(resource.get("code")) if isinstance(c.get("code"), str) and c["code"].strip()]
    coding = next((c for c in coded if c.get("display") == named.name), coded[0] if coded else {})
    display = coding.get("display")
    return Evidence(
        reference=ref, resource_type="ServiceRequest",
        code=coding["code"].strip() if coding else None,
        system=coding.get("system") if isinstance(coding.get("system"), str) else None,
        display=display if isinstance(display, str) and display.strip() else named.name,
        date=authored, text=f"recognised by its name: {named.name}",
    )


def read_order_reasons(ctx: ReadContext, ref: str, resource: dict) -> None:
    """clinical-specification.md §7.6: the order's reasonCode qualifies the episode and can carry a red flag."""
    authored = parse_date(resource.get("authoredOn")) or ctx.inputs.reference_date
    for entry in ctx.lookup(concepts_of(resource.get("reasonCode"))):
        evidence = ctx.evidence(ref, resource, entry, authored, text="reason for the order")
        purpose = entry.valueset.purpose
        if purpose == "qualifying-episode":
            side = entry.attr("laterality")
            ctx.inputs.episode.append(EpisodeCondition(
                evidence=evidence, onset=None, recorded=None,
                laterality=frozenset({side}) if side else frozenset(), from_order_reason=True,
            ))
        elif purpose == "red-flag" and not entry.valueset.extra.get("requires_site"):
            ctx.red_flag(entry, evidence)
    _order_text(ctx, ref, resource, authored)


def _order_text(ctx: ReadContext, ref: str, resource: dict, authored: date | None) -> None:
    """clinical-specification.md §9.1: the reasonCode texts (with or without a coding) and the
    order's notes. "r/o cauda equina" as the reason is suspected cauda equina: the order's own
    reason, so it stands for the episode (§5.2); a text reason of back pain qualifies the episode."""
    reasons = [c["text"] for c in concepts_of(resource.get("reasonCode")) if isinstance(c.get("text"), str)]
    source = TextSource(ref, "ServiceRequest", authored, "reason for the order", episode_record=True)
    found = read_source(ctx, source, reasons)
    episode = affirms_episode(found)
    if episode is not None:
        ctx.inputs.episode.append(EpisodeCondition(
            evidence=evidence_of(source, "Reason for the order", episode.snippet), onset=None, recorded=None,
            from_order_reason=True,
        ))
    apply_findings(ctx, source, found)
    notes = TextSource(ref, "ServiceRequest", authored, "order note")
    apply_findings(ctx, notes, read_source(ctx, notes, texts_of_notes(resource)))
