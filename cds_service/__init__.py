"""lumbar-imaging-cds: a FHIR CDS Hooks service for appropriate lumbar spine imaging."""

from __future__ import annotations

import sys
from pathlib import Path

__version__ = "0.1.0"


def cards_dir(configured: str | None = None) -> Path:
    """Where the card content files are: the setting, the source tree's cards/, or the install's."""
    if configured:
        return Path(configured)
    source_tree = Path(__file__).resolve().parent.parent / "cards"
    if source_tree.is_dir():
        return source_tree
    return Path(sys.prefix) / "share" / "lumbar-imaging-cds" / "cards"
