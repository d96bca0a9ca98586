"""Benchmark: a large real-EHR record fetched without prefetch (issue "Real EHR data").

A real FHIR server (Medplum's search in node, tests/fhir_server) serves pages of 20 with 20 ms
per request, once as HAPI's JPA starter pages (20 unless `_count` asks for more, up to 200) and
once strictly (20 whatever `_count` says); the patient has 20,000 Observations (a fever 2 days before the order among them),
300 Conditions and 500 MedicationRequests. Measured per hook call: FHIR requests, p50 latency,
and whether the fever was found. Then the size of the prefetch the narrowed discovery
templates ask for against the un-narrowed ones (`Type?patient=<id>`).

    .venv/bin/python -m bench.ehr [--calls 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from cds_service.app import create_app
from cds_service.hooks.registry import PREFETCH_TEMPLATES as UNNARROWED
from tests.support.medplum import MedplumFhirServer

PATIENT_ID = "bench-ehr-1"
TOKEN = "bench-token"
AUTHORED = date(2026, 11, 20)
SUBJECT = {"reference": f"Patient/{PATIENT_ID}"}


def record() -> list[dict]:
    resources: list[dict] = [{"resourceType": "Patient", "id": PATIENT_ID, "gender": "female", "birthDate": "1961-04-09"}]
    lab_codes = ["2345-7", "2160-0", "718-7", "6690-2", "777-3", "2951-2", "2823-3", "17861-6", "1742-6", "4548-4"]
    for n in range(20_000):  # ten years: labs most days, vital signs every 10th record
        day = AUTHORED - timedelta(days=3 + (n * 3650) // 20_000)
        code = "8310-5" if n % 10 == 0 else ("29463-7" if n % 10 == 5 else lab_codes[n % 10])
        value, unit = {"8310-5": (36.7, "Cel"), "29463-7": (71.0, "kg")}.get(code, (5.0, "mmol/L"))
        resources.append({
            "resourceType": "Observation", "id": f"o{n}", "status": "final", "subject": SUBJECT,
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]}, "effectiveDateTime": day.isoformat(),
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
        })
    resources.append({
        "resourceType": "Observation", "id": "fever", "status": "final", "subject": SUBJECT,
        "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
        "effectiveDateTime": (AUTHORED - timedelta(days=2)).isoformat(),
        "valueQuantity": {"value": 38.7, "unit": "Cel", "system": "http://unitsofmeasure.org", "code": "Cel"},
    })
    for n in range(300):
        code = ("279039007", "Low back pain") if n == 0 else ("38341003", "Hypertension")
        resources.append({
            "resourceType": "Condition", "id": f"c{n}", "subject": SUBJECT,
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": code[0], "display": code[1]}]},
            "onsetDateTime": (AUTHORED - timedelta(days=10 if n == 0 else 30 * n)).isoformat(),
        })
    for n in range(500):  # fifteen years of prescriptions
        resources.append({
            "resourceType": "MedicationRequest", "id": f"m{n}", "status": "completed", "intent": "order",
            "subject": SUBJECT, "authoredOn": (AUTHORED - timedelta(days=11 * n)).isoformat(),
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361"}]},
        })
    return resources


def hook_call(base_url: str) -> dict:
    return {
        "hook": "order-sign", "hookInstance": "4d7f0a7e-8a50-4f4e-a1c3-0f7b1c2d3e4f",
        "context": {"userId": "Practitioner/1", "patientId": PATIENT_ID, "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": {
            "resourceType": "ServiceRequest", "id": "mri", "status": "draft", "intent": "plan", "subject": SUBJECT,
            "authoredOn": AUTHORED.isoformat(),
            "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "72148"}]}}}]}},
        "fhirServer": base_url,
        "fhirAuthorization": {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read", "subject": "x"},
    }


def prefetch_bytes(server: MedplumFhirServer, templates: dict[str, str]) -> int:
    """Bytes of every page of every template, as a client would prefetch them."""
    total = 0
    for template in templates.values():
        relative = template.replace("{{context.patientId}}", PATIENT_ID)
        while relative:
            status, body, _ = server.get(relative, record=False)
            total += len(body)
            bundle = json.loads(body)
            nxt = [link["url"] for link in bundle.get("link") or [] if link.get("relation") == "next"]
            relative = None
            if nxt:
                parts = urlsplit(nxt[0])
                relative = parts.path.split("/fhir/", 1)[1] + ("?" + parts.query if parts.query else "")
    return total


# How the server pages. "hapi": HAPI's JPA starter as shipped (20 a page unless `_count` asks
# for more, up to 200), which the service's `_count=200` hint meets. "strict": 20 a page whatever
# `_count` says, the worst case: 300 Conditions that no code search can narrow are 15 pages.
PAGING = {"hapi": {"default_page_size": 20, "max_page_size": 200}, "strict": {"default_page_size": 20, "max_page_size": 20}}


def measure(server: MedplumFhirServer, client, calls: int) -> dict:
    timings, requests, fever_found = [], [], []
    for _ in range(calls):
        before = server.stats()["requests"]
        started = time.perf_counter()
        answer = client.post("/cds-services/lumbar-imaging-order-sign", json=hook_call(server.base_url)).get_json()
        timings.append((time.perf_counter() - started) * 1000)
        requests.append(server.stats()["requests"] - before)
        warned = any(c["source"]["topic"]["code"] == "imaging-before-6-weeks" for c in answer["cards"])
        fever_found.append(not warned)
    return {
        "fhir_requests_per_call": statistics.median(requests),
        "p50_ms": round(statistics.median(timings), 1),
        "p90_ms": round(sorted(timings)[int(len(timings) * 0.9) - 1], 1),
        "fever_found_every_call": all(fever_found),
    }


def run(calls: int = 15) -> dict:
    """Both paging behaviours, then the prefetch sizes; the figures `make bench` and the README show."""
    results: dict = {"calls": calls}
    with MedplumFhirServer(required_token=TOKEN, shuffle=True, epic_observation_rule=True,
                           no_code_search=["Condition", "Procedure"], **PAGING["strict"]) as server:
        server.add(*record())
        with tempfile.TemporaryDirectory() as folder:
            app = create_app({"RECORD_JUDGEMENTS": False, "DATABASE_PATH": str(Path(folder) / "s.sqlite3"),
                              "LOG_LEVEL": "WARNING"})
            client = app.test_client()
            for name, paging in PAGING.items():
                server.behave(latency_ms=0, **paging)
                client.post("/cds-services/lumbar-imaging-order-sign", json=hook_call(server.base_url))  # warm-up
                server.behave(latency_ms=20)
                results[f"paging_{name}"] = measure(server, client, calls)
            templates = app.extensions["lumbar_cds"].registry.get("lumbar-imaging-order-sign").prefetch
            app.extensions["lumbar_cds_shutdown"]()
        server.behave(latency_ms=0, max_page_size=1000, default_page_size=1000, epic_observation_rule=False)
        results["prefetch_bytes_narrowed"] = prefetch_bytes(server, templates)
        results["prefetch_bytes_unnarrowed"] = prefetch_bytes(server, UNNARROWED)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=15)
    args = parser.parse_args()
    print(json.dumps(run(args.calls), indent=2))


if __name__ == "__main__":
    main()
