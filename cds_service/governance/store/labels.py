"""Readable labels of override reason codes, from the card content files (cards/*.yaml).

Role in the data flow: report and dashboard edge. The CDS Hooks sandbox (and many EHRs) send
back only the `code` and `system` of the override reason the clinician picked; the labels the
card offered live in the card content files, so the report shows those (pure `report` takes them
as an input). Keyed by (topic, system, code): one code may read differently per topic.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from cds_service import cards_dir


def load_reason_labels(configured_dir: str | None = None) -> dict[tuple[str, str, str], str]:
    directory = Path(cards_dir(configured_dir))
    try:
        common = yaml.safe_load((directory / "common.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    system = common.get("override_reason_system") or ""
    labels: dict[tuple[str, str, str], str] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        topic = data.get("topic") if isinstance(data, dict) else None
        for reason in (data.get("override_reasons") or []) if topic else []:
            if isinstance(reason, dict) and reason.get("code") and reason.get("display"):
                labels[(topic, system, str(reason["code"]))] = str(reason["display"])
    return labels
