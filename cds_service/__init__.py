"""lumbar-imaging-cds: a FHIR CDS Hooks service for appropriate lumbar spine imaging."""

from __future__ import annotations

import sys
from pathlib import Path

__version__ = "0.1.0"

DISTRIBUTION = "lumbar-imaging-cds"
_CARDS_DATA = "share/lumbar-imaging-cds/cards"  # where the wheel installs cards/ (setup.cfg data_files)


def cards_dir(configured: str | None = None) -> Path:
    """Where the card content files are: the setting; the source tree's cards/ (a checkout or an
    editable install); else the installed distribution's own copy, found through the files its
    RECORD lists, wherever the install scheme put them (a venv, `pip install --user`, `--prefix`);
    else under sys.prefix."""
    if configured:
        return Path(configured)
    source_tree = Path(__file__).resolve().parent.parent / "cards"
    if source_tree.is_dir():
        return source_tree
    return _installed_cards() or Path(sys.prefix) / _CARDS_DATA


def _installed_cards() -> Path | None:
    from importlib import metadata

    here = Path(__file__).resolve().parent
    # The distribution installed beside this package first (another copy may be on sys.path too).
    candidates: list = [metadata.PathDistribution(p) for p in sorted(here.parent.glob("lumbar_imaging_cds-*.dist-info"))]
    try:
        candidates.append(metadata.distribution(DISTRIBUTION))
    except metadata.PackageNotFoundError:
        pass
    for dist in candidates:
        for file in dist.files or ():
            if str(file).replace("\\", "/").endswith(f"{_CARDS_DATA}/common.yaml"):
                folder = Path(str(dist.locate_file(file))).resolve().parent
                if folder.is_dir():
                    return folder
    return None
