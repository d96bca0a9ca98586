"""Validate a CDS Hooks 2.0 request against the contract and turn it into a `HookRequest`.

Role in the data flow: first stage after the HTTP body is parsed. The body is validated against
the model of the service's hook (`hooks.request`: the CDS Hooks 2.0 "HTTP Request" section and
the order-select / order-sign definitions); the first problem becomes a numbered `CdsError`
(400) naming its field. The `HookRequest` is what the later stages read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from cds_service.hooks.errors import CdsError
from cds_service.hooks.registry import ServiceDefinition
from cds_service.hooks.request import EXPECTED_AT, REQUEST_MODELS
from cds_service.hooks.validation import Problem, first_problem, numbered_error


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


def parse_hook_request(body: Any, service: ServiceDefinition) -> HookRequest:
    """Validate `body` against the contract of `service`'s hook (`hooks.request`); raise the
    CdsError of the first problem, naming its field."""
    if not isinstance(body, dict):
        raise CdsError("LCDS-1002")
    try:
        call = REQUEST_MODELS[service.hook].model_validate(body)
    except ValidationError as error:
        raise request_error(first_problem(error, EXPECTED_AT), service) from None
    context = call.context
    return HookRequest(
        service_id=service.id,
        hook=call.hook,
        hook_instance=call.hookInstance,
        user_id=context.userId,
        patient_id=context.patientId,
        encounter_id=context.encounterId,
        selections=list(getattr(context, "selections", ())),
        # The stages read the client's own JSON: context and draftOrders as sent.
        draft_orders=body["context"]["draftOrders"],
        context=body["context"],
        prefetch=body.get("prefetch") or {},
        fhir_server=call.fhirServer.rstrip("/") if call.fhirServer else None,
        fhir_authorization=body.get("fhirAuthorization") if call.fhirAuthorization else None,
    )


def request_error(problem: Problem, service: ServiceDefinition) -> CdsError:
    """The numbered error of a request's first problem (hooks/errors.py, MESSAGES)."""
    if problem.kind == "hook_mismatch":
        params = {"value": problem.context["value"], "service": service.id, "expected": problem.context["expected"]}
        return CdsError("LCDS-1005", params, field="hook")
    if problem.kind == "authorization_without_server":
        return CdsError("LCDS-1008", field="fhirServer")
    return numbered_error(problem)
