"""The draft imaging orders (context.draftOrders): which are lumbar spine imaging, which are judged,
and what their reasons say.

Role in the data flow: read stage. On order-select only the selected orders are judged; on
order-sign all of them. The order's own reasonCode qualifies the episode and can carry a red flag.
"""

from __future__ import annotations

from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_service.read.context import ReadContext
from cds_service.read.fhir import concepts_of, iter_resources, parse_date, ref_of
from cds_service.read.inputs import EpisodeCondition, ImagingOrder


def read_orders(ctx: ReadContext) -> tuple[list[ImagingOrder], list[tuple[str, dict]], list[str]]:
    judged: list[ImagingOrder] = []
    lumbar: list[tuple[str, dict]] = []
    selections = set(ctx.request.selections)
    skipped: list[str] = []
    for resource, full_url in iter_resources(ctx.request.draft_orders):
        if resource.get("resourceType") != "ServiceRequest":
            continue
        matches = ctx.lookup(concepts_of(resource.get("code")), frozenset({"imaging-order"}))
        if not matches:
            continue  # the sandbox's empty {"coding": [{}]}: simply not a lumbar order
        ref = ref_of(resource, full_url)
        if ctx.is_other_patient(resource):
            continue
        try:
            ServiceRequest.model_validate(resource)
        except Exception:
            skipped.append(ref)
            continue
        lumbar.append((ref, resource))
        if ctx.request.hook == "order-select" and not ({ref, full_url} & selections):
            continue
        entry = matches[0]
        authored = parse_date(resource.get("authoredOn"))
        priority = resource.get("priority") if isinstance(resource.get("priority"), str) else None
        judged.append(ImagingOrder(
            reference=ref, modality=entry.attr("modality"), contrast=entry.attr("contrast"),
            code=ctx.evidence(ref, resource, entry, authored), priority=priority,
            authored_on=authored, resource=resource,
        ))
    return judged, lumbar, skipped


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
