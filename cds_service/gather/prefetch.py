"""Gather the patient data a service needs: prefetch first, the FHIR server for what is missing.

Role in the data flow: after envelope validation, before `read`. The prefetch component with
explicit failure modes (as HAPI FHIR's CDS Hooks module has one), following CDS Hooks 2.0
"Prefetch" and clinical-specification.md §8:
- a key with a value is used as given; a searchset that is only a first page (it has a `next`
  link, as the CDS Hooks sandbox sends it) is read to its end on fhirServer;
- a key whose value is `null` means the client knows there is no data: known empty;
- a key that is absent, whose value is an OperationOutcome (the client's fetch failed), or whose
  value is not the shape FHIR says (not a Bundle of entries with resources of the key's type) is
  fetched from `fhirServer` with the `fhirAuthorization` bearer token (the query plan's narrowed
  searches, `gather.planner`), all keys in parallel on a pool of this call's own, pages of a key
  in sequence, everything within one deadline (`GATHER_BUDGET_MS`);
- every key ends complete, known empty, or incomplete with a reason (`GatheredData.incomplete`):
  not-fetched, page-cap, entry-cap, budget, refused, error or unreadable. A rating that rests on
  an incomplete key is not given (the decide stage);
- the url attachments of the gathered clinical notes are fetched last (`gather.attachments`),
  under the same rules and deadline; a failed one makes `clinicalNotes` incomplete;
- so are the Medications that medication records reference and no gathered Bundle holds
  (`gather.medications`); one that cannot be read makes its key incomplete;
- a required key (`patient`, `conditions`) that cannot be had at all -> CdsError 412.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import quote

from cds_service import metrics
from cds_service.gather.attachments import gather_attachments
from cds_service.gather.fhir_client import FetchResult, FhirClient, FhirFetchError, next_link
from cds_service.gather.medications import gather_medications
from cds_service.gather.planner import KeyPlan, QueryPlan
from cds_service.hooks.envelope import HookRequest
from cds_service.hooks.errors import CdsError
from cds_service.hooks.registry import REQUIRED_PREFETCH_KEYS, ServiceDefinition

_TEMPLATE_TOKEN = re.compile(r"\{\{\s*context\.(\w+)\s*\}\}")
# Years a clinical date can have (FHIR allows 0001-9999): outside them a date is taken as not
# given (here and by the read stage), so no window or duration arithmetic runs on a typo such as
# 0001-01-01 or 9999-12-31 (clinical-specification.md §3.3).
PLAUSIBLE_YEARS = (1800, 2200)
_AUTHORED = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
# Resources a search of one type may return beside its matches: `_include`d ones (the Medication
# of a MedicationRequest or MedicationStatement, clinical-specification.md §3.7).
INCLUDED_TYPES = {"MedicationRequest": ("Medication",), "MedicationStatement": ("Medication",)}


@dataclass
class GatheredData:
    data: dict[str, Any] = field(default_factory=dict)  # key -> FHIR JSON, or None (known empty)
    fetched: list[str] = field(default_factory=list)  # keys read (at least in part) from fhirServer
    unavailable: dict[str, str] = field(default_factory=dict)  # optional key not had at all -> why
    truncated: list[str] = field(default_factory=list)  # keys cut short (page cap, entry cap, budget)
    incomplete: dict[str, str] = field(default_factory=dict)  # key -> not-fetched|page-cap|...|unreadable
    requests: int = 0  # requests sent to fhirServer
    # Clinical-note attachments held by url, fetched from fhirServer (gather.attachments): url -> bytes.
    attachments: dict[str, Any] = field(default_factory=dict)
    # Medications by 'Medication/<id>' and fullUrl: those in the gathered Bundles and those read
    # from fhirServer for a medicationReference (gather.medications).
    medications: dict[str, dict] = field(default_factory=dict)

    def mark_incomplete(self, key: str, kind: str) -> None:
        self.incomplete.setdefault(key, kind)


def render_template(template: str, context: dict) -> str | None:
    """Fill `{{context.x}}` tokens; None when the context lacks a value the template needs."""
    missing = False

    def substitute(match: re.Match) -> str:
        nonlocal missing
        value = context.get(match.group(1))
        if not isinstance(value, str) or not value:
            missing = True
            return ""
        return quote(value, safe="")

    rendered = _TEMPLATE_TOKEN.sub(substitute, template)
    return None if missing else rendered


def _is_operation_outcome(value: Any) -> bool:
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"


def shape_problem(value: Any, resource_type: str | None) -> str | None:
    """Why a prefetch value is not the shape FHIR says, or None. A search key is a Bundle whose
    `entry` is a list of objects, each with a `resource` of the key's type (an OperationOutcome
    entry is allowed); `patient` is a Patient (or a Bundle holding one)."""
    if not isinstance(value, dict):
        return "not a FHIR resource"
    kind = value.get("resourceType")
    if kind == resource_type and resource_type == "Patient":
        return None
    if kind != "Bundle":
        return "not a Bundle" if kind else "no resourceType"
    entries = value.get("entry", [])
    if not isinstance(entries, list):
        return "entry is not a list"
    links = value.get("link", [])
    if not isinstance(links, list):
        return "link is not a list"
    allowed = {resource_type, "OperationOutcome", "Bundle", *INCLUDED_TYPES.get(resource_type or "", ())}
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        if not isinstance(kind, str):
            return "an entry holds no resource"
        if resource_type and kind not in allowed:
            return f"an entry is a {kind[:40]}, not a {resource_type}"
    if resource_type == "Patient" and not any(
        isinstance(e, dict) and isinstance(e.get("resource"), dict) and e["resource"].get("resourceType") == "Patient"
        for e in entries
    ):
        return "a Bundle without the Patient"
    return None


def reference_date_floor(request: HookRequest, today: date) -> date:
    """The earliest reference date any judged order can have (its authoredOn, else today): the
    date floors of the service's own queries count back from it, so narrowing loses nothing."""
    dates = []
    orders = request.draft_orders if isinstance(request.draft_orders, dict) else {}
    for entry in orders.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        authored = resource.get("authoredOn") if isinstance(resource, dict) else None
        match = _AUTHORED.match(authored) if isinstance(authored, str) else None
        try:
            day = date(*map(int, match.groups())) if match else today
        except ValueError:
            day = today
        dates.append(day if PLAUSIBLE_YEARS[0] <= day.year <= PLAUSIBLE_YEARS[1] else today)
    return min(dates) if dates else today


def gather(request: HookRequest, service: ServiceDefinition, settings: dict, plan: QueryPlan | None,
           today: date) -> GatheredData:
    deadline = time.monotonic() + settings.get("GATHER_BUDGET_MS", 3000) / 1000
    gathered = _gather_keys(request, service, settings, plan, today, deadline)
    # Then the url attachments of the clinical notes and the referenced Medications, within what
    # is left of the same budget.
    make_client = (lambda: _client(request, settings, deadline)) if request.fhir_server else None
    gather_attachments(gathered, make_client, deadline)
    gather_medications(gathered, make_client, deadline)
    return gathered


def _client(request: HookRequest, settings: dict, deadline: float) -> FhirClient:
    return FhirClient(
        request.fhir_server, request.access_token,
        connect_timeout=settings["FHIR_CONNECT_TIMEOUT"], read_timeout=settings["FHIR_READ_TIMEOUT"],
        max_pages=settings["FHIR_MAX_PAGES"], max_bytes=settings.get("FHIR_MAX_BYTES_PER_KEY", 20_000_000),
        max_entries=settings.get("FHIR_MAX_ENTRIES_PER_KEY", 50_000), deadline=deadline,
    )


def _gather_keys(request: HookRequest, service: ServiceDefinition, settings: dict, plan: QueryPlan | None,
                 today: date, deadline: float) -> GatheredData:
    gathered = GatheredData()
    jobs = _take_prefetch(request, service, plan or QueryPlan(), gathered)
    if not jobs:
        return gathered
    if not request.fhir_server:
        _nowhere_to_fetch(gathered, jobs)
        return gathered
    fetcher = _KeyFetcher(request, settings, deadline, reference_date_floor(request, today))
    _fetch_in_parallel(fetcher, jobs, gathered, deadline)
    gathered.requests = fetcher.requests
    return gathered


def _take_prefetch(request: HookRequest, service: ServiceDefinition, plan: QueryPlan,
                   gathered: GatheredData) -> dict[str, tuple[str, Any]]:
    """Keep each usable prefetch value in `gathered`; return what is left to do per key:
    ("follow", first page) for a searchset with a `next` link, ("fetch", KeyPlan | template)
    for a key absent, failed (OperationOutcome) or not shaped as FHIR says."""
    jobs: dict[str, tuple[str, Any]] = {}
    for key, template in service.prefetch.items():
        key_plan = plan.keys.get(key)
        expected = key_plan.resource_type if key_plan else template.split("?")[0].split("/")[0]
        if key in request.prefetch and not _is_operation_outcome(request.prefetch[key]):
            value = request.prefetch[key]
            if value is None:
                gathered.data[key] = None  # known empty
                continue
            if shape_problem(value, expected) is None:
                gathered.data[key] = value
                if isinstance(value, dict) and value.get("resourceType") == "Bundle" and next_link(value):
                    jobs[key] = ("follow", value)  # a first page only: read the rest
                continue
            # Present but unusable: never "no data". Fetched instead; incomplete if it cannot be.
            gathered.mark_incomplete(key, "unreadable")
        jobs[key] = ("fetch", key_plan or template)
    return jobs


def _nowhere_to_fetch(gathered: GatheredData, jobs: dict[str, tuple[str, Any]]) -> None:
    """No fhirServer: a first page stays a first page, a missing key stays missing."""
    for key, (job, _) in jobs.items():
        if job == "follow":
            gathered.mark_incomplete(key, "not-fetched")
            gathered.truncated.append(key)
        else:
            _unavailable(gathered, key, "no fhirServer to fetch it from")


class _KeyFetcher:
    """Runs one key's job on a FhirClient of its own, and counts the requests of them all."""

    def __init__(self, request: HookRequest, settings: dict, deadline: float, reference: date):
        self.request, self.settings, self.deadline, self.reference = request, settings, deadline, reference
        self.clients: list[FhirClient] = []

    def client(self) -> FhirClient:
        made = _client(self.request, self.settings, self.deadline)
        self.clients.append(made)
        return made

    def run(self, job: str, what: Any) -> FetchResult:
        if job == "follow":
            return self.client().follow(what)
        if isinstance(what, KeyPlan):
            return _fetch_planned(self.client(), what, self.request, self.reference)
        relative = render_template(what, self.request.context)
        if relative is None:
            raise FhirFetchError("the context lacks a value its query needs", kind="not-fetched")
        return self.client().read(relative)

    @property
    def requests(self) -> int:
        return sum(c.requests for c in self.clients)


def _fetch_in_parallel(fetcher: _KeyFetcher, jobs: dict[str, tuple[str, Any]], gathered: GatheredData,
                       deadline: float) -> None:
    """Every key at once, until the deadline; what has not ended by then is cut short (budget)."""
    # A pool of this call's own: a slow EHR holds only its own calls' threads (never another's).
    pool = ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="gather")  # one per key
    begun = time.monotonic()
    try:
        futures = {key: pool.submit(fetcher.run, job, what) for key, (job, what) in jobs.items()}
        for future in futures.values():  # when each key ended: the fetch latency metric
            future.add_done_callback(lambda done: setattr(done, "ended", time.monotonic()))
        wait(futures.values(), timeout=max(0.0, deadline - time.monotonic()) + 0.05)
        for key, future in futures.items():
            try:
                _collect(gathered, key, jobs[key][0], future)
            finally:  # counted also when a required key fails the call (412)
                metrics.fhir_fetch(key, gathered.incomplete.get(key, "complete"),
                                   getattr(future, "ended", time.monotonic()) - begun)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        metrics.gathering_done(fetcher.requests, "budget" in gathered.incomplete.values())


def _collect(gathered: GatheredData, key: str, job: str, future) -> None:
    if not future.done():
        if job == "follow":
            gathered.mark_incomplete(key, "budget")
            gathered.truncated.append(key)
        else:
            _unavailable(gathered, key, "the gathering budget ran out", "budget")
        return
    try:
        result = future.result()
    except FhirFetchError as error:
        if job == "follow":
            gathered.mark_incomplete(key, error.kind)
            gathered.truncated.append(key)
        else:
            _unavailable(gathered, key, error.reason, error.kind)
        return
    gathered.data[key] = result.body
    gathered.fetched.append(key)
    if result.stopped:
        gathered.truncated.append(key)
        gathered.mark_incomplete(key, result.stopped)
    elif job == "fetch":
        gathered.incomplete.pop(key, None)  # an unreadable prefetch replaced by a complete fetch


def _fetch_planned(client: FhirClient, plan: KeyPlan, request: HookRequest, reference: date) -> FetchResult:
    """The key's narrowed searches, merged; a refused search is asked again with fewer parameters."""
    if not plan.queries:
        relative = render_template(plan.template, request.context)
        if relative is None:
            raise FhirFetchError("the context lacks a value its query needs", kind="not-fetched")
        return client.read(relative)
    merged: dict | None = None
    stopped = None
    seen: set[str] = set()
    for query in plan.queries:
        result = None
        for step in range(query.steps):
            try:
                result = client.read(query.url(request.patient_id, reference, step))
                break
            except FhirFetchError as error:
                if error.kind != "refused" or step == query.steps - 1:
                    raise
        if merged is None:
            merged = {k: v for k, v in result.body.items() if k != "entry"}
            merged["entry"] = []
        # Two searches of one key may return the same resource once each: keep it once.
        for entry in result.body.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            rid = f"{resource.get('resourceType')}/{resource.get('id')}" if isinstance(resource, dict) and resource.get("id") else None
            if rid is None or rid not in seen:
                merged["entry"].append(entry)
                if rid:
                    seen.add(rid)
        stopped = stopped or result.stopped
    return FetchResult(merged or {"resourceType": "Bundle", "entry": []}, 1, stopped, client.requests)


def _unavailable(gathered: GatheredData, key: str, reason: str, kind: str = "not-fetched") -> None:
    gathered.mark_incomplete(key, kind)
    if key in REQUIRED_PREFETCH_KEYS and key not in gathered.data:
        raise CdsError("LCDS-1412", {"key": key, "reason": reason}, field=f"prefetch.{key}")
    gathered.unavailable[key] = reason
