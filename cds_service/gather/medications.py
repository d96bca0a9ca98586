"""The Medications that medication records point to: found in the gathered data or read from fhirServer.

Role in the data flow: gather stage, after the prefetch keys are in (`gather.prefetch.gather`),
beside the notes' attachments. Epic and other EHRs send a MedicationRequest or
MedicationStatement whose medicine is a `medicationReference` to a separate Medication resource
(docs/clinical-specification.md §3.7). The Medication may be
- contained in the record (`#id`): the read stage finds it there;
- in the Bundle of the `medications` or `medicationStatements` key (an
  `_include=MedicationRequest:medication` search returns it beside the records): indexed here by
  `Medication/<id>` and by fullUrl;
- only on the FHIR server: read here (`Medication/<id>`), under the rules of every other fetch
  (`gather.fhir_client`: fhirServer origin only, the bearer token, the call's deadline, the byte
  cap), at most `MAX_MEDICATIONS`, `MAX_PARALLEL` at a time.
A reference that cannot be resolved (no fhirServer, a failed read, past the cap, a reference to
nothing in the Bundle) makes the record's key incomplete with the failure's kind, unless the
reference carries a `display`: then the display names the medicine and the read stage reads it
(a medicine named is not a medicine unseen). Only records the read stage reads are looked at
(not entered-in-error, cancelled, draft or not-taken). Nothing fetched is logged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

from cds_service.gather.fhir_client import FhirClient, FhirFetchError
from cds_service.gather.parallel import fetch_in_parallel

MEDICATION_RECORD_TYPES = frozenset({"MedicationRequest", "MedicationStatement"})
# The keys that hold medication records and their `_include`d Medications (a value of another
# key holding them is not the shape its key says, gather.prefetch.shape_problem): only these are
# looked through, so a record of thousands of Observations costs nothing here.
MEDICATION_KEYS = ("medications", "medicationStatements")
# Statuses of a record the read stage ignores (read/medications.py): no Medication is fetched for them.
IGNORED_RECORD_STATUS = frozenset({"entered-in-error", "cancelled", "draft", "not-taken"})
MAX_MEDICATIONS = 40
MAX_PARALLEL = 4


def _resources(value: Any) -> Iterator[tuple[dict, str | None]]:
    """(resource, fullUrl) of a Bundle's entries (nested Bundles too), or the value itself."""
    if isinstance(value, list):
        for item in value:
            yield from _resources(item)
        return
    if not isinstance(value, dict):
        return
    if value.get("resourceType") != "Bundle":
        if isinstance(value.get("resourceType"), str):
            yield value, None
        return
    entries = value.get("entry")
    for entry in entries if isinstance(entries, list) else []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
            yield from _resources(resource)
        elif isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
            full_url = entry.get("fullUrl")
            yield resource, full_url if isinstance(full_url, str) else None


def reference_key(reference: Any) -> str | None:
    """'Medication/<id>' for a relative or absolute literal reference (its version dropped), the
    reference itself for a urn:uuid / urn:oid; None for a contained ('#id') or missing one."""
    if not isinstance(reference, str) or not reference.strip() or reference.startswith("#"):
        return None
    reference = reference.strip()
    if reference.startswith("urn:"):
        return reference
    parts = urlsplit(reference).path.split("/_history")[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == "Medication" and parts[-1]:
        return f"Medication/{parts[-1]}"
    return None


def index_medications(data: dict) -> dict[str, dict]:
    """Every Medication in the gathered medication values, by 'Medication/<id>' and by its fullUrl."""
    found: dict[str, dict] = {}
    for value in (data.get(key) for key in MEDICATION_KEYS):
        for resource, full_url in _resources(value):
            if resource.get("resourceType") != "Medication":
                continue
            rid = resource.get("id")
            if isinstance(rid, str) and rid:
                found.setdefault(f"Medication/{rid}", resource)
            if full_url:
                found.setdefault(full_url, resource)
                key = reference_key(full_url)
                if key:
                    found.setdefault(key, resource)
    return found


def wanted_references(data: dict, known: dict[str, dict]) -> list[tuple[str, str, bool]]:
    """(prefetch key, reference key, has display) of each medicationReference the gathered
    records make that no gathered Medication answers; contained references are the read stage's."""
    wanted: dict[str, tuple[str, str, bool]] = {}
    for key in MEDICATION_KEYS:
        for resource, _ in _resources(data.get(key)):
            if resource.get("resourceType") not in MEDICATION_RECORD_TYPES:
                continue
            if resource.get("status") in IGNORED_RECORD_STATUS:
                continue
            reference = resource.get("medicationReference")
            if not isinstance(reference, dict):
                continue
            target = reference.get("reference")
            if isinstance(target, str) and target.startswith("#"):
                continue
            display = isinstance(reference.get("display"), str) and bool(reference["display"].strip())
            ref_key = reference_key(target)
            if ref_key is not None and ref_key in known:
                continue
            ref_key = ref_key or f"(unresolvable) {key}"
            previous = wanted.get(ref_key)
            # A reference with a display anywhere names the medicine; without one it must be read.
            wanted[ref_key] = (key, ref_key, display and (previous[2] if previous else True))
    return list(wanted.values())


def gather_medications(gathered, make_client: Callable[[], FhirClient] | None, deadline: float) -> None:
    """Index the gathered Medications into `gathered.medications` and read the referenced ones
    that are only on the FHIR server."""
    gathered.medications.update(index_medications(gathered.data))
    wanted = wanted_references(gathered.data, gathered.medications)
    to_read: list[tuple[str, str, bool]] = []
    for key, ref_key, display in wanted:
        if not ref_key.startswith("Medication/"):
            if not display:
                gathered.mark_incomplete(key, "unreadable")  # a reference to nothing that can be read
        elif make_client is None:
            if not display:
                gathered.mark_incomplete(key, "not-fetched")
        else:
            to_read.append((key, ref_key, display))
    if not to_read:
        return
    for key, _, display in to_read[MAX_MEDICATIONS:]:
        if not display:
            gathered.mark_incomplete(key, "entry-cap")
    to_read = to_read[:MAX_MEDICATIONS]
    results, failures, requests = fetch_in_parallel(to_read, _read_medication, make_client, deadline,
                                                    MAX_PARALLEL, "gather-med")
    for key, ref_key, display in to_read:
        if (key, ref_key, display) in results:
            gathered.medications[ref_key] = results[(key, ref_key, display)]
        elif not display:
            gathered.mark_incomplete(key, failures[(key, ref_key, display)])
    gathered.requests += requests


def _read_medication(client: FhirClient, wanted: tuple[str, str, bool]) -> dict:
    body = client.get_json(client.base_url.rstrip("/") + "/Medication/" + quote(wanted[1].split("/", 1)[1], safe=""))
    if body.get("resourceType") != "Medication":
        raise FhirFetchError("answer is not a Medication", kind="unreadable")
    return body
