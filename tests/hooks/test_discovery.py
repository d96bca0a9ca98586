"""Discovery (CDS Hooks 2.0 'Discovery'): the two services of clinical-specification.md §7."""

from tests.support.hook_requests import PREFETCH_TEMPLATES


def test_discovery_lists_both_services_with_hooks_and_prefetch(client):
    response = client.get("/cds-services")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    services = {s["id"]: s for s in response.get_json()["services"]}
    assert set(services) == {"lumbar-imaging-order-select", "lumbar-imaging-order-sign"}
    assert services["lumbar-imaging-order-select"]["hook"] == "order-select"
    assert services["lumbar-imaging-order-sign"]["hook"] == "order-sign"
    for service in services.values():
        assert service["title"] and service["description"]
        assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"
        assert service["prefetch"]["conditions"] == "Condition?patient={{context.patientId}}"
        # Narrowed by code (Epic refuses an Observation search without code or category).
        assert service["prefetch"]["observations"].startswith("Observation?patient={{context.patientId}}&code=http://loinc.org|")
        assert service["prefetch"] == PREFETCH_TEMPLATES


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
