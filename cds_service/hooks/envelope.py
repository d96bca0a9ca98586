"""Validate the CDS Hooks 2.0 request envelope and turn it into a `HookRequest`.

Role in the data flow: first stage after the HTTP body is parsed. Checks the fields of the CDS
Hooks 2.0 "HTTP Request" section and of the order-select / order-sign hook definitions, names the
first bad field in a `CdsError` (400), and tolerates what the CDS Hooks sandbox really sends
(clinical-specification.md §7.6): empty codings, Bundles without `type`, no `encounterId`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from cds_service.hooks.errors import CdsError
from cds_service.hooks.registry import ServiceDefinition

# CDS Hooks 2.0, "fhirAuthorization": every one of these is required when the object is sent.
FHIR_AUTHORIZATION_FIELDS = {
    "access_token": str,
    "token_type": str,
    "expires_in": int,
    "scope": str,
    "subject": str,
}


@dataclass
class HookRequest:
    """A validated hook call. `context` and `prefetch` keep the client's raw JSON."""

    service_id: str
    hook: str
    hook_instance: str
    user_id: str
    patient_id: str
    encounter_id: str | None
    selections: list[str]
    draft_orders: dict
    context: dict
    prefetch: dict
    fhir_server: str | None = None
    fhir_authorization: dict | None = field(default=None, repr=False)

    @property
    def access_token(self) -> str | None:
        if self.fhir_authorization:
            return self.fhir_authorization.get("access_token")
        return None


def _require(obj: dict, key: str, expected: type | tuple, path: str, expected_name: str) -> Any:
    if key not in obj or obj[key] is None:
        raise CdsError("LCDS-1003", {"field": path}, field=path)
    value = obj[key]
    # bool is an int in Python; JSON true is never a valid number or string here.
    if not isinstance(value, expected) or isinstance(value, bool) and expected is not bool:
        raise CdsError("LCDS-1004", {"field": path, "expected": expected_name}, field=path)
    return value


def _optional(obj: dict, key: str, expected: type | tuple, path: str, expected_name: str) -> Any:
    if obj.get(key) is None:
        return None
    return _require(obj, key, expected, path, expected_name)


def _non_empty(value: str, path: str) -> str:
    if not value.strip():
        raise CdsError("LCDS-1006", {"field": path, "reason": "must not be empty"}, field=path)
    return _no_nul(value, path)


# PostgreSQL refuses NUL (U+0000) in text, and no CDS Hooks identifier needs one: a request whose
# ids (which the governance store keeps) hold one is refused here, with a 400 naming the field.
# (Lone surrogates, the other strings a database cannot store, never get past the JSON parser.)
NUL_REASON = "must not contain the NUL character (U+0000)"


def _no_nul(value: str | None, path: str) -> str | None:
    if value is not None and "\x00" in value:
        raise CdsError("LCDS-1006", {"field": path, "reason": NUL_REASON}, field=path)
    return value


def _nul_path(value: Any, path: str) -> str | None:
    """The path of the first string (key or value) holding NUL inside `value`, or None."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return where
        elif isinstance(node, dict):
            for key, child in node.items():
                if "\x00" in key:
                    return where
                stack.append((child, f"{where}.{key}"))
        elif isinstance(node, list):
            stack.extend((child, f"{where}[{index}]") for index, child in enumerate(node))
    return None


def _check_no_nul(value: Any, path: str) -> None:
    # orjson writes NUL as the escape \u0000: one C-speed scan; the walk runs only on a hit.
    if b"\\u0000" in orjson.dumps(value):
        where = _nul_path(value, path)
        if where is not None:
            raise CdsError("LCDS-1006", {"field": where, "reason": NUL_REASON}, field=where)


def _validate_bundle(bundle: dict, path: str) -> None:
    # resourceType must say Bundle; the sandbox omits `type`, so it is not required.
    if bundle.get("resourceType") != "Bundle":
        raise CdsError(
            "LCDS-1006", {"field": f"{path}.resourceType", "reason": "must be 'Bundle'"},
            field=f"{path}.resourceType",
        )
    entries = bundle.get("entry", [])
    if entries is None:
        return
    if not isinstance(entries, list):
        raise CdsError("LCDS-1004", {"field": f"{path}.entry", "expected": "array"}, field=f"{path}.entry")
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            where = f"{path}.entry[{index}]"
            raise CdsError("LCDS-1004", {"field": where, "expected": "object"}, field=where)
        resource = entry.get("resource")
        if resource is not None and not (isinstance(resource, dict) and isinstance(resource.get("resourceType"), str)):
            where = f"{path}.entry[{index}].resource"
            raise CdsError(
                "LCDS-1006", {"field": where, "reason": "must be a FHIR resource with resourceType"},
                field=where,
            )


def parse_hook_request(body: Any, service: ServiceDefinition) -> HookRequest:
    """Validate `body` for `service`; raise CdsError naming the first problem."""
    if not isinstance(body, dict):
        raise CdsError("LCDS-1002")

    hook = _require(body, "hook", str, "hook", "string")
    if hook != service.hook:
        raise CdsError(
            "LCDS-1005", {"value": hook[:64], "service": service.id, "expected": service.hook},
            field="hook",
        )
    hook_instance = _non_empty(_require(body, "hookInstance", str, "hookInstance", "string"), "hookInstance")

    fhir_server = _no_nul(_optional(body, "fhirServer", str, "fhirServer", "string (URL)"), "fhirServer")
    fhir_authorization = _optional(body, "fhirAuthorization", dict, "fhirAuthorization", "object")
    if fhir_authorization is not None:
        if not fhir_server:
            raise CdsError("LCDS-1008", field="fhirServer")
        for key, expected in FHIR_AUTHORIZATION_FIELDS.items():
            expected_name = "integer" if expected is int else "string"
            _require(fhir_authorization, key, expected, f"fhirAuthorization.{key}", expected_name)
        if fhir_authorization["token_type"].lower() != "bearer":
            raise CdsError(
                "LCDS-1006",
                {"field": "fhirAuthorization.token_type", "reason": "must be 'Bearer'"},
                field="fhirAuthorization.token_type",
            )

    context = _require(body, "context", dict, "context", "object")
    user_id = _non_empty(_require(context, "userId", str, "context.userId", "string"), "context.userId")
    patient_id = _non_empty(
        _require(context, "patientId", str, "context.patientId", "string"), "context.patientId"
    )
    encounter_id = _no_nul(
        _optional(context, "encounterId", str, "context.encounterId", "string"), "context.encounterId"
    )

    draft_orders = _require(context, "draftOrders", dict, "context.draftOrders", "object (Bundle)")
    _validate_bundle(draft_orders, "context.draftOrders")
    _check_no_nul(draft_orders, "context.draftOrders")  # order ids and codes are stored too

    selections: list[str] = []
    if hook == "order-select":
        raw = _require(context, "selections", list, "context.selections", "array of strings")
        for index, item in enumerate(raw):
            if not isinstance(item, str):
                where = f"context.selections[{index}]"
                raise CdsError("LCDS-1004", {"field": where, "expected": "string"}, field=where)
            _no_nul(item, f"context.selections[{index}]")
        selections = list(raw)

    prefetch = _optional(body, "prefetch", dict, "prefetch", "object") or {}

    return HookRequest(
        service_id=service.id,
        hook=hook,
        hook_instance=hook_instance,
        user_id=user_id,
        patient_id=patient_id,
        encounter_id=encounter_id,
        selections=selections,
        draft_orders=draft_orders,
        context=context,
        prefetch=prefetch,
        fhir_server=fhir_server.rstrip("/") if fhir_server else None,
        fhir_authorization=fhir_authorization,
    )
