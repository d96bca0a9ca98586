"""Authentication of CDS clients (placeholder until the Security issue lands)."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the JWT check on discovery, services and feedback (when AUTH_REQUIRED)."""
