"""Numbered error messages and their JSON rendering.

Role in the data flow: every stage raises `CdsError` for bad input or data it cannot have; the
controller turns it into a JSON body that is a FHIR OperationOutcome (a SHOULD of CDS Hooks 3.0:
`issue[].severity/code`, the LCDS code in `issue[].details.coding` and its message in
`details.text`, the field path in `expression`) and keeps, beside it, the project's own
`{"error": {"code", "status", "message", "field"?}}` that the README and existing clients read
(README "CDS Hooks 2.0 and 3.0"). Codes are stable (as HAPI FHIR numbers its messages) so integration engineers can search them in the
README. No error body or log line ever carries PHI, a token or a stack trace.
"""

from __future__ import annotations

from dataclasses import dataclass

# The reasons of LCDS-1412 a caller may read. Any other reason (a fetch's "could not connect",
# "HTTP 404", "answer is not JSON", ...) would let a caller map the network behind fhirServer: the
# answer says only PUBLIC_FETCH_FAILURE, and the reason goes to the log (web.errors.handle_cds_error).
PUBLIC_1412_REASONS = frozenset({"no fhirServer to fetch it from", "the context lacks a value its query needs"})
PUBLIC_FETCH_FAILURE = "the EHR's FHIR server did not answer usably"

# code -> (HTTP status, message template). Templates name fields, never values from the request.
MESSAGES: dict[str, tuple[int, str]] = {
    "LCDS-1001": (400, "The request body is not valid JSON."),
    "LCDS-1002": (400, "The request body must be a JSON object."),
    "LCDS-1003": (400, "Required field '{field}' is missing."),
    "LCDS-1004": (400, "Field '{field}' has the wrong type: expected {expected}."),
    "LCDS-1005": (400, "Field 'hook' is '{value}' but service '{service}' answers '{expected}'."),
    "LCDS-1006": (400, "Field '{field}' is invalid: {reason}."),
    "LCDS-1007": (400, "The request body nests deeper than {limit} levels."),
    "LCDS-1008": (400, "'fhirAuthorization' is given without 'fhirServer'."),
    "LCDS-1009": (400, "Field '{field}' is not an allowed FHIR server: {reason}."),
    "LCDS-1010": (400, "Feedback item {index} is invalid: {reason}."),
    "LCDS-1011": (400, "Too many orders: '{field}' holds {count}; at most {limit} orders are judged in one call."),
    "LCDS-1401": (401, "Authentication required."),
    "LCDS-1403": (403, "Forbidden."),
    "LCDS-1404": (404, "No CDS service with id '{service}'."),
    "LCDS-1405": (405, "Method {method} is not allowed here."),
    "LCDS-1408": (408, "The request body did not arrive within {limit} seconds."),
    "LCDS-1413": (413, "The request body is larger than {limit} bytes."),
    "LCDS-1414": (413, "'{field}' has more than {limit} entries."),
    "LCDS-1415": (415, "The request body must be JSON (Content-Type: application/json)."),
    "LCDS-1412": (412, "Required data '{key}' could not be read from prefetch or fetched from fhirServer: {public_reason}."),
    "LCDS-1429": (429, "Too many requests."),
    "LCDS-1500": (500, "Internal error; the request was not processed. Reference: {reference}."),
    "LCDS-1503": (503, "The governance store is unavailable; nothing was stored. Retry later."),
    "LCDS-1404P": (404, "Not found."),
}


# The code system of the LCDS codes in OperationOutcome.issue.details (the project's own URN, as
# its card-topic and override-reason systems).
ERROR_CODE_SYSTEM = "urn:lumbar-imaging-cds:error-code"

# HTTP status -> FHIR issue-type (http://hl7.org/fhir/issue-type) of the error.
ISSUE_TYPES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
               408: "timeout", 412: "incomplete", 413: "too-costly", 415: "not-supported", 429: "throttled",
               500: "exception", 503: "transient"}
# Finer issue-types of some 400s.
_CODE_ISSUE_TYPES = {"LCDS-1001": "structure", "LCDS-1002": "structure", "LCDS-1003": "required",
                     "LCDS-1007": "structure"}


def operation_outcome(code: str, status: int, message: str, field: str | None = None) -> dict:
    """The error body: a FHIR R4 OperationOutcome with the project's `error` object beside it."""
    issue: dict = {
        "severity": "fatal" if status >= 500 else "error",
        "code": _CODE_ISSUE_TYPES.get(code) or ISSUE_TYPES.get(status, "processing"),
        "details": {"coding": [{"system": ERROR_CODE_SYSTEM, "code": code}], "text": message},
    }
    error: dict = {"code": code, "status": status, "message": message}
    if field:
        issue["expression"] = [field]
        error["field"] = field
    return {"resourceType": "OperationOutcome", "issue": [issue], "error": error}


@dataclass
class CdsError(Exception):
    """An error the client can act on. `code` is a key of MESSAGES; `params` fill its template."""

    code: str
    params: dict | None = None
    field: str | None = None

    @property
    def status(self) -> int:
        return MESSAGES[self.code][0]

    @property
    def message(self) -> str:
        template = MESSAGES[self.code][1]
        params = dict(self.params or {})
        if self.code == "LCDS-1412":
            reason = params.get("reason")
            params["public_reason"] = reason if reason in PUBLIC_1412_REASONS else PUBLIC_FETCH_FAILURE
        try:
            return template.format(**params)
        except (KeyError, IndexError):
            return template

    def to_json(self) -> dict:
        return operation_outcome(self.code, self.status, self.message, self.field)

    def __str__(self) -> str:  # used in logs: code and message only
        return f"{self.code}: {self.message}"
