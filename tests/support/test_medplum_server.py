"""The Medplum FHIR test server (tests/fhir_server) answers with Medplum's search semantics and
the configured EHR behaviour. Real node process, real HTTP; nothing mocked."""

from __future__ import annotations

import base64
import json
import threading
import time

import pytest

from tests.support import medplum
from tests.support.medplum import MedplumFhirServer

# The fixtures live in tests/support/medplum.py (for tests/conftest.py to import); here, until
# then, they are bound by name in this module.
medplum_server = medplum.medplum_server
fhir_server_medplum = medplum.fhir_server_medplum

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def patient(pid: str) -> dict:
    return {"resourceType": "Patient", "id": pid, "name": [{"family": "Test", "given": [pid]}]}


def observation(oid: str, pid: str, code: str, when: str, *, category: str = "vital-signs", system: str = LOINC) -> dict:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
    }


def condition(cid: str, pid: str, code: str) -> dict:
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"coding": [{"system": SNOMED, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
    }


def ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry") or []]


def next_link(bundle: dict) -> str | None:
    return next((link["url"] for link in bundle.get("link") or [] if link["relation"] == "next"), None)


def all_pages(server: MedplumFhirServer, relative: str) -> tuple[list[str], int]:
    bundle = server.get_json(relative)
    found, pages = ids(bundle), 1
    while (url := next_link(bundle)) is not None:
        assert url.startswith(server.base_url + "/")  # absolute, back at this server
        bundle = server.get_json(url)
        found += ids(bundle)
        pages += 1
    return found, pages


@pytest.fixture
def fhir(fhir_server_medplum):
    fhir_server_medplum.load([
        patient("p1"),
        patient("p2"),
        observation("o-temp", "p1", "8310-5", "2024-03-01T10:00:00Z"),
        observation("o-hr", "p1", "8867-4", "2023-01-01T10:00:00Z"),
        observation("o-lab", "p1", "2345-7", "2024-05-01", category="laboratory"),
        observation("o-other", "p2", "8310-5", "2024-03-01"),
        condition("c-lbp", "p1", "279039007"),
        condition("c-other", "p2", "38341003"),
    ])
    return fhir_server_medplum


def test_read_and_search_by_patient(fhir):
    status, data, headers = fhir.get("Patient/p1")
    assert status == 200
    assert headers["Content-Type"].startswith("application/fhir+json")
    assert json.loads(data)["name"][0]["given"] == ["p1"]
    assert fhir.get("Patient/nobody")[0] == 404

    bundle = fhir.get_json("Observation?patient=p1")
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    assert sorted(ids(bundle)) == ["o-hr", "o-lab", "o-temp"]
    assert bundle["total"] == 3
    assert all(e["fullUrl"] == f"{fhir.base_url}/Observation/{e['resource']['id']}" for e in bundle["entry"])
    assert ids(fhir.get_json("Condition?patient=p2")) == ["c-other"]
    # The other spellings of the same search, as Medplum reads them.
    assert sorted(ids(fhir.get_json("Observation?patient=Patient/p1"))) == ["o-hr", "o-lab", "o-temp"]
    assert sorted(ids(fhir.get_json("Observation?subject:Patient=p1"))) == ["o-hr", "o-lab", "o-temp"]
    assert ids(fhir.get_json("Observation?patient=nobody")) == []


def test_code_search_with_system(fhir):
    assert ids(fhir.get_json(f"Observation?patient=p1&code={LOINC}|8310-5")) == ["o-temp"]
    assert sorted(ids(fhir.get_json(f"Observation?patient=p1&code={LOINC}|8310-5,{LOINC}|8867-4"))) == ["o-hr", "o-temp"]
    assert ids(fhir.get_json(f"Observation?patient=p1&code={SNOMED}|8310-5")) == []  # wrong system
    assert ids(fhir.get_json("Observation?patient=p1&code=2345-7")) == ["o-lab"]  # any system
    assert ids(fhir.get_json(f"Condition?patient=p1&code={SNOMED}|279039007")) == ["c-lbp"]
    assert ids(fhir.get_json("Observation?patient=p1&category=laboratory")) == ["o-lab"]


def test_date_ge(fhir):
    assert sorted(ids(fhir.get_json("Observation?patient=p1&date=ge2024-01-01"))) == ["o-lab", "o-temp"]
    assert ids(fhir.get_json("Observation?patient=p1&date=ge2024-01-01&date=lt2024-04-01")) == ["o-temp"]
    assert fhir.get("Observation?patient=p1&date=ge-not-a-date")[0] == 400


def test_sort_and_summary_count(fhir):
    assert ids(fhir.get_json("Observation?patient=p1&_sort=date")) == ["o-hr", "o-temp", "o-lab"]
    assert ids(fhir.get_json("Observation?patient=p1&_sort=-date")) == ["o-lab", "o-temp", "o-hr"]
    counted = fhir.get_json("Observation?patient=p1&_summary=count")
    assert counted["total"] == 3 and "entry" not in counted and next_link(counted) is None
    assert fhir.get_json("metadata")["resourceType"] == "CapabilityStatement"


def test_paging_45_observations_in_pages_of_20(fhir_server_medplum):
    server = fhir_server_medplum
    expected = [f"obs-{i:03d}" for i in range(45)]
    server.load([patient("pp")] + [observation(oid, "pp", "8310-5", "2024-01-01") for oid in expected])

    first = server.first_page("Observation?patient=pp&_count=100")  # asked 100, max page is 20
    assert len(first["entry"]) == 20 and first["total"] == 45
    assert next_link(first).startswith(server.base_url + "/Observation?")
    assert any(link["relation"] == "self" for link in first["link"])
    assert server.seen() == []  # the prefetch-like read is not in the log

    found, pages = all_pages(server, "Observation?patient=pp")
    assert pages == 3 and len(found) == 45 and sorted(found) == expected
    assert found == expected  # without shuffle: insertion order
    assert [s.path for s in server.seen()] == ["/fhir/Observation"] * 3

    server.behave(shuffle=True)
    shuffled, pages = all_pages(server, "Observation?patient=pp")
    assert pages == 3 and sorted(shuffled) == expected and len(set(shuffled)) == 45
    assert shuffled != expected
    assert all_pages(server, "Observation?patient=pp")[0] == shuffled  # stable order

    server.behave(max_page_size=50)
    assert len(server.get_json("Observation?patient=pp")["entry"]) == 45
    assert len(server.get_json("Observation?patient=pp&_count=7")["entry"]) == 7

    # HAPI's JPA starter: 20 a page unless _count asks for more, up to 200.
    server.behave(default_page_size=20, max_page_size=200)
    assert len(server.get_json("Observation?patient=pp")["entry"]) == 20
    assert len(server.get_json("Observation?patient=pp&_count=40")["entry"]) == 40


def test_epic_observation_rule(fhir):
    fhir.behave(epic_observation_rule=True)
    status, data, _ = fhir.get("Observation?patient=p1")
    assert status == 400
    assert json.loads(data)["resourceType"] == "OperationOutcome"
    assert sorted(ids(fhir.get_json("Observation?patient=p1&category=vital-signs"))) == ["o-hr", "o-temp"]
    assert ids(fhir.get_json(f"Observation?patient=p1&code={LOINC}|2345-7")) == ["o-lab"]
    assert fhir.get("Condition?patient=p1")[0] == 200


def test_no_code_search_types(fhir):
    fhir.behave(no_code_search=["Condition", "Procedure"])
    assert fhir.get(f"Condition?patient=p1&code={SNOMED}|279039007")[0] == 400
    assert ids(fhir.get_json("Condition?patient=p1")) == ["c-lbp"]
    assert fhir.get(f"Observation?patient=p1&code={LOINC}|8310-5")[0] == 200


def test_required_token(fhir):
    fhir.behave(required_token="s3cret")
    assert fhir.get("Patient/p1", token="")[0] == 401
    assert fhir.get("Patient/p1", token="wrong")[0] == 401
    assert fhir.get("Patient/p1", token="s3cret")[0] == 200
    assert [s.authorization for s in fhir.seen()] == [None, "Bearer wrong", "Bearer s3cret"]
    fhir.reset()  # back to the start-up behaviour: no token
    assert fhir.get("Patient/p1", token="")[0] == 404  # and no data


def test_latency_and_in_flight(fhir):
    fhir.behave(latency_ms=400)
    started = time.perf_counter()
    assert fhir.get("Patient/p1")[0] == 200
    assert time.perf_counter() - started >= 0.4

    fhir.clear_seen()
    threads = [threading.Thread(target=fhir.get, args=("Patient/p1",)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fhir.seen()) == 3
    assert fhir.max_in_flight == 3


def test_fail_status(fhir):
    fhir.behave(fail_status={"Observation": 500})
    assert fhir.get("Observation?patient=p1")[0] == 500
    assert fhir.get("Condition?patient=p1")[0] == 200


def test_binary_raw_and_json(fhir_server_medplum):
    content = b"Lumbar spine: no red flags.\n"
    fhir_server_medplum.add({
        "resourceType": "Binary", "id": "note-1", "contentType": "text/plain",
        "data": base64.b64encode(content).decode(),
    })
    status, data, headers = fhir_server_medplum.get("Binary/note-1", accept="text/plain")
    assert status == 200 and data == content
    assert headers["Content-Type"] == "text/plain"
    as_json = fhir_server_medplum.get_json("Binary/note-1")
    assert as_json["resourceType"] == "Binary" and base64.b64decode(as_json["data"]) == content
    assert fhir_server_medplum.get("Binary/none", accept="*/*")[0] == 404


def test_seen_records_requests(fhir):
    fhir.get("Condition?patient=p1&_count=5", accept="application/fhir+json")
    (seen,) = fhir.seen()
    assert seen == {
        "method": "GET", "path": "/fhir/Condition", "query": {"patient": "p1", "_count": "5"},
        "query_string": "patient=p1&_count=5", "authorization": None, "accept": "application/fhir+json",
    }
    assert seen.path == "/fhir/Condition" and seen.query["patient"] == "p1"
    fhir.clear_seen()
    assert fhir.seen() == []


def test_20000_observations_load_and_code_search(fhir_server_medplum):
    server = fhir_server_medplum
    bulk = [
        observation(f"bulk-{i:05d}", "big", "8867-4", f"20{10 + i % 14:02d}-01-01T00:00:00Z")
        for i in range(19_999)
    ]
    fever = observation("fever", "big", "8310-5", "2024-06-01T08:00:00Z")
    fever["valueQuantity"] = {"value": 39.2, "unit": "Cel", "system": "http://unitsofmeasure.org", "code": "Cel"}
    records = [patient("big")] + bulk[:12_345] + [fever] + bulk[12_345:]

    started = time.perf_counter()
    loaded = server.load(records)
    load_seconds = time.perf_counter() - started
    assert len(loaded) == 20_001

    started = time.perf_counter()
    bundle = server.get_json(f"Observation?patient=big&code={LOINC}|8310-5")
    search_seconds = time.perf_counter() - started
    assert ids(bundle) == ["fever"] and bundle["total"] == 1

    started = time.perf_counter()
    page = server.get_json("Observation?patient=big")
    page_seconds = time.perf_counter() - started
    assert page["total"] == 20_000 and len(page["entry"]) == 20

    print(
        f"\nmedplum test server: load of 20,001 resources {load_seconds:.2f} s; "
        f"code search among 20,000 Observations {search_seconds * 1000:.0f} ms; "
        f"first page of patient=big {page_seconds * 1000:.0f} ms"
    )


def test_missing_node_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without node
    with pytest.raises(RuntimeError, match=r"Node\.js .*run `make test`"):
        MedplumFhirServer().start()
