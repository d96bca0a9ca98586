"""The logged `ms` of a request runs from its first byte to its answer, the client JWT check
included (issue 14: discovery logged 0.06 ms while 2.7 ms went on authentication)."""

from __future__ import annotations

import logging
import time

from cds_service import app as app_module
from cds_service.security.auth import AuthFailure
from cds_service.web import serving


def request_lines(caplog) -> list[dict]:
    return [r.fields for r in caplog.records if r.getMessage() == "request" and hasattr(r, "fields")]


def test_the_jwt_check_is_inside_the_logged_time(tmp_path, caplog):
    app = app_module.create_app({"TESTING": True, "DATABASE_PATH": str(tmp_path / "s.sqlite3"),
                                 "AUTH_REQUIRED": True})
    try:
        authenticator = app.extensions["lumbar_cds_auth"]

        def slow_refusal(*_args, **_kwargs):
            time.sleep(0.05)  # a slow key-set lookup, say
            raise AuthFailure("unknown kid")

        authenticator.authenticate = slow_refusal
        caplog.set_level(logging.INFO, logger="lumbar_cds")
        assert app.test_client().get("/cds-services").status_code == 401
        (line,) = request_lines(caplog)
        assert line["path"] == "/cds-services" and line["status"] == 401
        assert line["ms"] >= 50
    finally:
        app.extensions["lumbar_cds_shutdown"]()


def test_the_clock_starts_when_the_serving_layer_received_the_request(client, caplog):
    """Under `serve`, BufferedWsgi hands the app the time the request arrived (before its body
    was read): that is where `ms` starts."""
    assert app_module.RECEIVED_AT == serving.RECEIVED_AT
    caplog.set_level(logging.INFO, logger="lumbar_cds")
    arrived = time.perf_counter() - 0.2
    assert client.get("/healthz", environ_base={serving.RECEIVED_AT: arrived}).status_code == 200
    (line,) = request_lines(caplog)
    assert line["ms"] >= 200


def test_the_start_timer_runs_before_every_other_hook(app):
    first = app.before_request_funcs[None][0]
    assert first.__name__ == "start_timer"
