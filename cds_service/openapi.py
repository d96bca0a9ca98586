"""Serves the OpenAPI description (placeholder until the Security issue lands)."""

from __future__ import annotations

from flask import Blueprint

openapi_bp = Blueprint("openapi", __name__)
