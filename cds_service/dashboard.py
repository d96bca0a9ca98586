"""The governance dashboard (placeholder until the Governance issue lands)."""

from __future__ import annotations

from flask import Blueprint

dashboard_bp = Blueprint("dashboard", __name__)
