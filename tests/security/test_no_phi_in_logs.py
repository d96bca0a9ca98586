"""No PHI and no token in the logs, over full requests (issue "Security" item 4).

A patient with a distinctive id, name and birth date goes through the service: in prefetch, on
a loopback FHIR server reached with a fhirAuthorization token, with client JWT authentication
on, on the success path and on error paths. Everything logged is captured twice: the raw log
records (before any redaction: the service must not even try to log these), and the text the
service's own JSON-line handler writes to stderr (what an operator's log collector receives).
"""

from __future__ import annotations

import copy
import logging

from cds_service.logs import LOGGER_NAME
from tests.support.fhir_server import FhirServerBehaviour, LoopbackFhirServer

from .jwt_support import BASE, bearer, claims, sign
from .requests_support import CONDITION, PATIENT, PATIENT_ID, SERVICE, full_prefetch, order_select

FHIR_TOKEN = "fhir-token-Vq82mZ0dLr"
SECRETS_OF_THE_PATIENT = [PATIENT_ID, "Quillfeather", "Zephyrine", "1931-02-27"]


def fhir_authorization() -> dict:
    return {"access_token": FHIR_TOKEN, "token_type": "Bearer", "expires_in": 300,
            "scope": "patient/*.read", "subject": "cds-service"}


def test_full_scenario_logs_no_phi_and_no_token(make_app, ehr_issuers_file, ec, caplog, capsys):
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    app = make_app(AUTH_REQUIRED=True, TRUSTED_ISSUERS_FILE=ehr_issuers_file, LOG_LEVEL="DEBUG")
    logging.getLogger(LOGGER_NAME).setLevel(logging.DEBUG)
    client = app.test_client()
    url = f"{BASE}/cds-services/{SERVICE}"
    tokens: list[str] = []

    def call(body, status):
        token = sign(ec, claims(url))
        tokens.append(token)
        response = client.post(f"/cds-services/{SERVICE}", json=body, headers=bearer(token))
        assert response.status_code == status, response.get_data(as_text=True)
        return response

    with LoopbackFhirServer(FhirServerBehaviour(required_token=FHIR_TOKEN)) as fhir:
        fhir.add(PATIENT, CONDITION)
        # 1. Patient in prefetch, the rest fetched from fhirServer with the token.
        prefetch = {"patient": copy.deepcopy(PATIENT)}
        call(order_select(prefetch, fhirServer=fhir.base_url, fhirAuthorization=fhir_authorization()), 200)
        # 2. Everything in prefetch.
        call(order_select(full_prefetch()), 200)
        # 3. The token is refused by the FHIR server: 412 (required data unreadable).
        wrong = dict(fhir_authorization(), access_token=FHIR_TOKEN + "-expired")
        tokens.append(wrong["access_token"])
        call(order_select(None, fhirServer=fhir.base_url, fhirAuthorization=wrong), 412)
        assert any(s.authorization for s in fhir.seen)  # the token really travelled
    # 4. A bad request carrying the patient in a wrong-typed field: 400 names the field only.
    bad = order_select(full_prefetch())
    bad["context"]["selections"] = [{"patient": PATIENT_ID, "name": "Zephyrine Quillfeather"}]
    call(bad, 400)
    # 5. A refused client JWT (wrong audience) and a replayed one.
    refused = sign(ec, claims(f"{BASE}/cds-services"))
    tokens.append(refused)
    assert client.post(f"/cds-services/{SERVICE}", json=order_select(full_prefetch()), headers=bearer(refused)).status_code == 401
    assert client.post(f"/cds-services/{SERVICE}", json=order_select(full_prefetch()), headers=bearer(tokens[0])).status_code == 401
    # 6. Feedback about a card.
    fb_token = sign(ec, claims(f"{url}/feedback"))
    tokens.append(fb_token)
    client.post(
        f"/cds-services/{SERVICE}/feedback", headers=bearer(fb_token),
        json={"feedback": [{"card": "c1", "outcome": "overridden", "outcomeTimestamp": "2026-11-20T10:00:00Z",
                            "overrideReason": {"userComment": f"patient {PATIENT_ID} Zephyrine Quillfeather"}}]},
    )
    app.extensions["lumbar_cds_shutdown"]()  # flush the background writer: its log lines count too

    raw = "\n".join(str(record.__dict__) for record in caplog.records)
    # The service's handler writes JSON lines to the current sys.stderr (captured by capsys).
    written = capsys.readouterr().err
    assert caplog.records and written  # something was logged: the assertions below are not vacuous
    assert "client authentication failed" in written and "request" in written
    for text, where in ((raw, "log records"), (written, "written log")):
        for secret in SECRETS_OF_THE_PATIENT + [FHIR_TOKEN] + tokens:
            assert secret not in text, f"{secret[:16]}... found in the {where}"
