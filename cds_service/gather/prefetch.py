"""Gather the patient data a service needs: prefetch first, the FHIR server for what is missing.

Role in the data flow: after envelope validation, before `read`. The prefetch component with
explicit failure modes (as HAPI FHIR's CDS Hooks module has one), following CDS Hooks 2.0
"Prefetch" and clinical-specification.md §7:
- a key with a value is used as given;
- a key whose value is `null` means the client knows there is no data: not fetched;
- a key that is absent, or whose value is an OperationOutcome (the client's fetch failed), is
  fetched from `fhirServer` with the `fhirAuthorization` bearer token, all such keys in parallel;
- a required key (`patient`, `conditions`) that cannot be had -> CdsError 412;
- an optional key that cannot be had -> listed in `unavailable`, so cards can say what was not seen.
"""

from __future__ import annotations

import re
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from cds_service.gather.fhir_client import FhirClient, FhirFetchError
from cds_service.hooks.envelope import HookRequest
from cds_service.hooks.errors import CdsError
from cds_service.hooks.registry import REQUIRED_PREFETCH_KEYS, ServiceDefinition

_TEMPLATE_TOKEN = re.compile(r"\{\{\s*context\.(\w+)\s*\}\}")


@dataclass
class GatheredData:
    data: dict[str, Any] = field(default_factory=dict)  # key -> FHIR JSON, or None (known empty)
    fetched: list[str] = field(default_factory=list)  # keys read from fhirServer
    unavailable: dict[str, str] = field(default_factory=dict)  # optional key -> why not seen
    truncated: list[str] = field(default_factory=list)  # keys cut short by the page cap


def render_template(template: str, context: dict) -> str | None:
    """Fill `{{context.x}}` tokens; None when the context lacks a value the template needs."""
    missing = False

    def substitute(match: re.Match) -> str:
        nonlocal missing
        value = context.get(match.group(1))
        if not isinstance(value, str) or not value:
            missing = True
            return ""
        return quote(value, safe="")

    rendered = _TEMPLATE_TOKEN.sub(substitute, template)
    return None if missing else rendered


def _is_operation_outcome(value: Any) -> bool:
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"


def gather(
    request: HookRequest,
    service: ServiceDefinition,
    settings: dict,
    executor: Executor,
) -> GatheredData:
    gathered = GatheredData()
    to_fetch: dict[str, str] = {}
    for key, template in service.prefetch.items():
        if key in request.prefetch and not _is_operation_outcome(request.prefetch[key]):
            gathered.data[key] = request.prefetch[key]  # may be None: known empty
            continue
        if not request.fhir_server:
            _unavailable(gathered, key, "no fhirServer to fetch it from")
            continue
        relative = render_template(template, request.context)
        if relative is None:
            _unavailable(gathered, key, "the context lacks a value its query needs")
            continue
        to_fetch[key] = relative

    if to_fetch:
        client = FhirClient(
            request.fhir_server,
            request.access_token,
            connect_timeout=settings["FHIR_CONNECT_TIMEOUT"],
            read_timeout=settings["FHIR_READ_TIMEOUT"],
            max_pages=settings["FHIR_MAX_PAGES"],
        )
        futures = {key: executor.submit(client.read, relative) for key, relative in to_fetch.items()}
        for key, future in futures.items():
            try:
                result = future.result()
            except FhirFetchError as error:
                _unavailable(gathered, key, error.reason)
                continue
            gathered.data[key] = result.body
            gathered.fetched.append(key)
            if result.truncated:
                gathered.truncated.append(key)
    return gathered


def _unavailable(gathered: GatheredData, key: str, reason: str) -> None:
    if key in REQUIRED_PREFETCH_KEYS:
        raise CdsError("LCDS-1412", {"key": key, "reason": reason}, field=f"prefetch.{key}")
    gathered.unavailable[key] = reason
