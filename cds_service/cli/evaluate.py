"""`lumbar-cds evaluate`: one hook request (or a scenario file's) through the service entry point.

Role in the data flow: an edge. The request goes to `service.CdsService`, the same entry point
the HTTP view calls (same contract, gathering and pathway), without a server or a test client;
the response, or the numbered error the endpoint would send, is printed as JSON on stdout. A
file that is no request is one line on stderr naming what is wrong (exit 2). Judgements are
recorded only with --record.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from cds_service.cli.common import EXIT_ANSWERED_ERROR, EXIT_OK, fail, first_line


class _Refused(Exception):
    """What stops `evaluate` before the service answers: one line, exit code 2."""


def evaluate(args: argparse.Namespace) -> int:
    """One request (or the request of a scenario file) through `service.CdsService`, as the
    HTTP view calls it; the answer (or the numbered error) printed as JSON on stdout."""
    source = "standard input" if args.file == "-" else args.file
    try:
        body, scenario = _request_in(_read(args.file), source)
        service_id = args.service or _service_for(body, source)
        service = _start_service(record=args.record)
    except _Refused as refused:
        return fail("evaluate", str(refused))
    try:
        if scenario:
            body = service.with_planned_keys(body)  # a scenario file (tests/scenarios/*.json): its request
        response, code = _answer(service, service_id, body)
    finally:
        service.close()  # with --record: the judgements written before the command ends
    import orjson

    sys.stdout.write(orjson.dumps(response, option=orjson.OPT_INDENT_2 if args.pretty else 0).decode() + "\n")
    return code


def _read(file: str) -> bytes:
    try:
        if file == "-":
            return sys.stdin.buffer.read()
        with open(file, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise _Refused(f"cannot read {file} ({error.strerror or type(error).__name__}); give a hook request "
                       "or scenario JSON file, or - for standard input") from None


_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true or false",
               type(None): "null"}


def _request_in(raw: bytes, source: str) -> tuple[dict, bool]:
    """The hook request in the file, and whether the file was a scenario ({"request": ...})."""
    import orjson

    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise _Refused(f"{source} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}; "
                       "give a CDS Hooks request or scenario JSON file") from None
    if not isinstance(body, dict):
        raise _Refused(f"the request must be a JSON object, and {source} holds {_JSON_TYPES.get(type(body), 'no object')}; "
                       "give a CDS Hooks request or scenario JSON file")
    if "hook" not in body and isinstance(body.get("request"), dict):
        return body["request"], True
    return body, False


def _service_for(body: dict, source: str) -> str:
    """The id of the service that answers the request's hook."""
    from cds_service.hooks.registry import SERVICES

    hook = body.get("hook")
    for service in SERVICES:
        if service.hook == hook:
            return service.id
    served = ", ".join(f"{service.id} ({service.hook})" for service in SERVICES)
    if not isinstance(hook, str):
        raise _Refused(f"the request in {source} names no hook; the services here are {served}: give a request "
                       "for one of their hooks, or --service")
    raise _Refused(f"no service here answers the hook '{hook[:64]}' of {source}; the services here are {served}: "
                   "give a request for one of their hooks, or --service")


def _start_service(record: bool):
    """The service as `serve` builds it, recording only when asked (--record)."""
    from cds_service.config import SettingsError, load_settings
    from cds_service.logs import ONCE_ENV, configure_logging

    before = os.environ.get(ONCE_ENV)
    os.environ[ONCE_ENV] = before or "-"  # deployment warnings are for `serve`, not a developer's try
    try:
        settings = load_settings(None if record else {"RECORD_JUDGEMENTS": False})
        configure_logging(settings["LOG_LEVEL"], bool(settings.get("LOG_THIRD_PARTY", False)))
        from cds_service.service import CdsService

        return CdsService.start(settings)
    except SettingsError as error:
        raise _Refused(f"{error}") from None
    except Exception as error:
        raise _Refused(f"the service cannot start ({first_line(error)}); check the CDS_* settings") from None
    finally:
        if before is None:
            os.environ.pop(ONCE_ENV, None)


def _answer(service, service_id: str, body: dict) -> tuple[dict, int]:
    """The service's answer, or its error body as the HTTP endpoint would send it."""
    from cds_service.hooks.errors import CdsError
    from cds_service.web.limits import check_depth

    try:
        check_depth(body, int(service.settings["MAX_JSON_DEPTH"]))  # the limit a served call has
        return service.call(service_id, body).response, EXIT_OK
    except CdsError as error:
        return error.to_json(), EXIT_ANSWERED_ERROR
    except Exception as error:  # as the app's LCDS-1500: a reference, the type, never the message
        import uuid

        from cds_service.logs import get_logger, log_event

        reference = uuid.uuid4().hex[:12]
        log_event(get_logger(), "unhandled error", logging.ERROR, reference=reference, exception=type(error).__name__)
        return CdsError("LCDS-1500", {"reference": reference}).to_json(), EXIT_ANSWERED_ERROR
