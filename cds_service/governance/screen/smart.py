"""The red-flag screen launched as a SMART app: the EHR launch of SMART App Launch 2.0, with the
card's `appContext` (the screen's handle) handed back in the token response.

Role in the data flow: with CDS_SMART_LAUNCH_URL set, a card that offers the screen also carries
a `smart` link whose `appContext` is the same opaque handle as the absolute link
(docs/clinical-specification.md §12.7). The EHR opens `GET /screen/launch?iss=...&launch=...`;
the service reads the EHR's `.well-known/smart-configuration`, sends the browser to its
authorization endpoint (authorization code with PKCE S256, scope `launch openid fhirUser`,
authlib's OAuth 2 client), and at `/screen/launch/callback` exchanges the code for the token
response, which names the patient in context and carries the `appContext`. The screen opens only
when the patient the EHR has in context is the one the handle is bound to (compared by the same
HMAC key as the governance store), and, when the token response names the user (`fhirUser`),
only for the user the card was shown to. The access token is not kept: the screen needs nothing
from the FHIR server. The launch state travels in a signed, short-lived HttpOnly cookie.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urljoin

import requests
from authlib.integrations.requests_client import OAuth2Session
from flask import Blueprint, current_app, redirect, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from cds_service.governance.screen.page import message_page
from cds_service.governance.screen.service import ScreenService
from cds_service.logs import get_logger, log_event
from cds_service.security.handles import HandleExpired, HandleInvalid
from cds_service.security.outbound import check_fhir_server

smart_bp = Blueprint("screen_smart", __name__)
log = get_logger("screen")
STATE_COOKIE = "lcds_smart_launch"
STATE_SECONDS = 600
SCOPE = "launch openid fhirUser"


def _service() -> ScreenService:
    return current_app.extensions["lumbar_cds_screen"]


def _states() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SCREEN_SECRET"], salt="lumbar-cds.smart-launch")


def _callback_url() -> str:
    base = (current_app.config.get("PUBLIC_BASE_URL") or request.url_root).rstrip("/")
    return f"{base}/screen/launch/callback"


def _client(redirect_uri: str) -> OAuth2Session:
    return OAuth2Session(current_app.config["SMART_CLIENT_ID"], redirect_uri=redirect_uri, scope=SCOPE,
                         code_challenge_method="S256")


@smart_bp.get("/screen/launch")
def launch():
    iss, launch_id = request.args.get("iss", ""), request.args.get("launch", "")
    if not iss or not launch_id:
        return message_page(400, "This launch is incomplete", "The EHR must send iss and launch (SMART EHR launch).")
    settings = current_app.config
    why = check_fhir_server(iss, settings["FHIR_PLAIN_HTTP_HOSTS"], settings["FHIR_ALLOWED_ORIGINS"])
    if why:
        return message_page(400, "This launch names a server the service may not call", f"iss: {why}.")
    try:
        answer = requests.get(urljoin(iss.rstrip("/") + "/", ".well-known/smart-configuration"),
                              timeout=(settings["FHIR_CONNECT_TIMEOUT"], settings["FHIR_READ_TIMEOUT"]),
                              headers={"Accept": "application/json"}, allow_redirects=False)
        answer.raise_for_status()
        configuration = answer.json()
        authorize, token = configuration["authorization_endpoint"], configuration["token_endpoint"]
    except (requests.RequestException, ValueError, KeyError, TypeError) as error:
        log_event(log, "smart configuration unavailable", 30, exception=type(error).__name__)
        return message_page(502, "The EHR's SMART configuration could not be read",
                        "Open the screen with the card's other link.")
    verifier = secrets.token_urlsafe(48)
    client = _client(_callback_url())
    url, state = client.create_authorization_url(authorize, code_verifier=verifier, aud=iss, launch=launch_id)
    response = redirect(url, 302)
    response.set_cookie(STATE_COOKIE, _states().dumps([state, verifier, token]), max_age=STATE_SECONDS,
                        path="/screen/", httponly=True, secure=request.is_secure,
                        samesite="None" if request.is_secure else "Lax")
    response.headers["Cache-Control"] = "no-store"
    return response


@smart_bp.get("/screen/launch/callback")
def callback():
    try:
        state, verifier, token_url = _states().loads(request.cookies.get(STATE_COOKIE, ""), max_age=STATE_SECONDS)
    except BadSignature:
        return message_page(400, "This launch has expired", "Open the screen from the card again.")
    if not hmac.compare_digest(request.args.get("state", ""), state) or not request.args.get("code"):
        return message_page(400, "This launch was not completed", request.args.get("error_description")
                        or "The authorization server did not return this launch's answer.")
    client = _client(_callback_url())
    try:
        token = client.fetch_token(token_url, code=request.args["code"], code_verifier=verifier,
                                   timeout=(current_app.config["FHIR_CONNECT_TIMEOUT"],
                                            current_app.config["FHIR_READ_TIMEOUT"]))
    except Exception as error:  # authlib's OAuth errors, the network: the launch failed
        log_event(log, "smart token request failed", 30, exception=type(error).__name__)
        return message_page(502, "The EHR did not authorize this launch", "Open the screen with the card's other link.")
    service = _service()
    handle = token.get("appContext")
    handle = handle if isinstance(handle, str) else ""
    try:
        session_id = service.signer.open(handle)
    except HandleExpired:
        return message_page(410, "This screen link has expired", "Open the order again for a new link.")
    except HandleInvalid:
        return message_page(400, "This launch carries no screen", "The EHR did not pass the card's appContext.")
    row = service.load(session_id)
    patient = token.get("patient")
    if row is None or not isinstance(patient, str) or not hmac.compare_digest(
            service.patient_key(patient), row.patient_hash):
        return message_page(403, "This screen belongs to another patient",
                        "The patient open in the EHR is not the one this screen was offered for.")
    user = token.get("fhirUser")
    if isinstance(user, str) and row.user_reference and not user.endswith(row.user_reference):
        return message_page(403, "This screen was offered to another user", "Open it from your own card.")
    response = redirect(f"/screen/{handle}", 303)
    response.delete_cookie(STATE_COOKIE, path="/screen/")
    return response
