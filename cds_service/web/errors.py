"""Every failure of a request as a JSON error body: numbered `CdsError`s, Werkzeug's HTTP errors
and anything unexpected (LCDS-1500 with a reference, never a stack trace).

Role in the data flow: the HTTP edge's last step when a stage raised. `init_error_handlers(app)`
registers the handlers once, at start-up (app.create_app).
"""

from __future__ import annotations

import uuid

from flask import Flask, current_app, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from cds_service.hooks.errors import CdsError, operation_outcome
from cds_service.logs import get_logger, log_event
from cds_service.web.api import json_response

# Werkzeug's HTTP errors mapped onto our numbered messages.
_HTTP_TO_CODE = {404: "LCDS-1404P", 405: "LCDS-1405", 413: "LCDS-1413", 415: "LCDS-1415", 429: "LCDS-1429"}


def handle_cds_error(error: CdsError):
    g.error_code = error.code
    if error.code == "LCDS-1412":
        # The answer names the key only; why the fetch failed ("could not connect", "HTTP
        # 404": the network behind fhirServer) is for the operator. Never PHI: see FhirFetchError.
        params = error.params or {}
        log_event(get_logger(), "required data unavailable", 30, key=params.get("key"),
                  reason=params.get("reason"), hookInstance=(g.get("hook_instance") or "")[:64])
    response = json_response(error.to_json(), error.status)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def handle_http_error(error: HTTPException):
    code = _HTTP_TO_CODE.get(error.code or 0)
    if code is None:
        body = operation_outcome(f"LCDS-HTTP-{error.code}", error.code or 500, error.name)
        g.error_code = body["error"]["code"]
        return json_response(body, error.code or 500)
    params = {"method": request.method, "limit": current_app.config["MAX_BODY_BYTES"]}
    response = handle_cds_error(CdsError(code, params))
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        response.headers["Allow"] = ", ".join(sorted(error.valid_methods))  # RFC 9110 15.5.6
    return response


def handle_unexpected(error: Exception):
    reference = uuid.uuid4().hex[:12]
    logger = get_logger()
    log_event(logger, "unhandled error", 40, reference=reference, path=request.path,
              exception=type(error).__name__)
    logger.debug("unhandled error traceback", exc_info=error)
    return handle_cds_error(CdsError("LCDS-1500", {"reference": reference}))


def init_error_handlers(app: Flask) -> None:
    app.register_error_handler(CdsError, handle_cds_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
