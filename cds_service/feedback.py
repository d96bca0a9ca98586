"""The CDS Hooks feedback endpoint (placeholder until the Governance issue lands)."""

from __future__ import annotations

from flask import Blueprint

feedback_bp = Blueprint("feedback", __name__)
