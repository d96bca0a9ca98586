"""Serves the OpenAPI 3 description of the service at GET /openapi.yaml.

Role in the data flow: none in the clinical path. The document (`openapi.yaml`, shipped as
package data) describes discovery, the services, feedback, /healthz and itself, with the
request/response schemas and the error body; integration engineers read it, and the test suite
runs schemathesis against the app with it. Read once, at first use, and served as is; it never
needs a token.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from flask import Blueprint, Response

OPENAPI_PATH = Path(__file__).parent / "openapi.yaml"

openapi_bp = Blueprint("openapi", __name__)


@lru_cache(maxsize=1)
def openapi_text() -> str:
    return OPENAPI_PATH.read_text(encoding="utf-8")


@openapi_bp.get("/openapi.yaml")
def openapi_yaml() -> Response:
    return Response(openapi_text(), mimetype="application/yaml")
