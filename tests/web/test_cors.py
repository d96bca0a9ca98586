"""CORS for browser clients such as the CDS Hooks sandbox (clinical-specification.md §7.6)."""

import pytest

from cds_service.app import create_app


@pytest.mark.parametrize(
    "path",
    ["/cds-services", "/cds-services/lumbar-imaging-order-select", "/cds-services/lumbar-imaging-order-sign/feedback"],
)
def test_preflight_allows_authorization_and_content_type(client, path):
    response = client.options(
        path,
        headers={
            "Origin": "http://localhost:8080",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "http://localhost:8080")
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


def test_allowed_origins_are_configurable(app_config):
    app = create_app({**app_config, "CORS_ORIGINS": "https://ehr.example.org"})
    client = app.test_client()
    ok = client.get("/cds-services", headers={"Origin": "https://ehr.example.org"})
    assert ok.headers.get("Access-Control-Allow-Origin") == "https://ehr.example.org"
    other = client.get("/cds-services", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in other.headers
