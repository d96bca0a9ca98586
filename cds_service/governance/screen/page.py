"""The red-flag screen's page: `GET /screen/<handle>` shows it, `POST` stores the answers.

Role in the data flow: the clinician's side door into the next hook call
(docs/clinical-specification.md §12). Plain HTML from a Jinja template, no JavaScript, laid out
for a narrow EHR side panel; every question a fieldset with a legend and labelled radios
(keyboard and screen readers). The handle in the URL is opaque and signed; it expires after
CDS_SCREEN_LINK_MINUTES, and a completed screen is not taken twice (a replay is refused). The
POST must carry the form token of the page and the nonce cookie it was served with (CSRF). The
page shows the order and the patient's age and sex, never the name. Nothing here is logged but
the outcome (no answers, no handle).
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, render_template, request
from sqlalchemy.exc import SQLAlchemyError

from cds_service.governance.screen.service import ScreenService
from cds_service.logs import get_logger, log_event
from cds_service.read.screen import CARE_SINCE, ONSET, build_response, when_from
from cds_service.security.handles import HandleExpired, HandleInvalid

screen_bp = Blueprint("screen", __name__, template_folder="templates")
log = get_logger("screen")
NONCE_COOKIE = "lcds_screen_nonce"
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",  # the handle never leaves in a Referer
    "X-Content-Type-Options": "nosniff",
}


def _service() -> ScreenService:
    return current_app.extensions["lumbar_cds_screen"]


def _page(template: str, status: int, **context) -> Response:
    response = Response(render_template(template, **context), status=status, mimetype="text/html")
    response.headers.update(SECURITY_HEADERS)
    return response


def message_page(status: int, title: str, text: str) -> Response:
    log_event(log, "screen page refused", 30 if status >= 400 else 20, status=status, reason=title)
    return _page("screen_message.html", status, title=title, text=text)


@screen_bp.route("/screen/<handle>", methods=["GET", "POST"])
def screen_page(handle: str):
    service = _service()
    opened = _open_session(service, handle)
    if not isinstance(opened, tuple):
        return opened  # the page that says why the link cannot be used
    session_id, row = opened
    questionnaire = current_app.extensions["lumbar_cds"].evaluator.screen_questionnaire
    page = row.page
    if request.method == "GET":
        return _form(questionnaire, page, session_id, {}, {}, 200)

    nonce = request.cookies.get(NONCE_COOKIE)
    origin = request.headers.get("Origin")
    if (origin and origin not in _own_origins()) or not service.signer.check_form_token(
            request.form.get("form_token", ""), session_id, nonce):
        return message_page(403, "The answers were not accepted",
                        "The form did not come from this screen's page (or the page is too old). Open the "
                        "link from the card again.")
    today = datetime.now(UTC).date()
    values, errors, answers, onset, care_since = _read_answers(page, today)
    if errors:
        return _form(questionnaire, page, session_id, values, errors, 400)
    now = datetime.now(UTC)
    response = build_response(questionnaire, str(uuid.uuid4()), answers, onset, care_since, row.patient_hash,
                              row.user_reference, now.isoformat(timespec="seconds"))
    try:
        completed = service.complete(session_id, response, now)
    except SQLAlchemyError as error:
        log_event(log, "screen store unavailable", 40, exception=type(error).__name__)
        return _form(questionnaire, page, session_id, values,
                     {"form": "The answers could not be saved just now: press Save again in a minute."}, 503)
    if not completed:
        return message_page(409, "This screen has already been submitted",
                        "Its answers are kept for the episode. A second submission is not taken.")
    log_event(log, "screen completed", questions=len(answers))
    return _page("screen_message.html", 200, title="Answers saved",
                 text="The answers are kept for this episode. Return to the order: they are used when it is "
                      "checked again (re-select the order or sign it), and the card will say so.",
                 done=True)

def _open_session(service, handle: str):
    """(session id, stored row) for a usable link, else the page that says why it is not."""
    try:
        session_id = service.signer.open(handle)
    except HandleExpired:
        return message_page(410, "This screen link has expired",
                        f"Links last {service.signer.lifetime // 60} minutes. Open the order again: the card "
                        "offers a new link if the record still leaves questions open.")
    except HandleInvalid:
        return message_page(404, "This screen link is not valid",
                        "The link is incomplete or was changed. Open it again from the card.")
    try:
        row = service.load(session_id)
    except SQLAlchemyError as error:
        log_event(log, "screen store unavailable", 40, exception=type(error).__name__)
        return message_page(503, "The screen cannot be opened right now",
                            "Its store cannot be reached. Try the link again in a minute.")
    if row is None:
        return message_page(404, "This screen link is not valid", "No screen belongs to this link.")
    if row.completed_at is not None:
        return message_page(409, "This screen has already been submitted",
                        "Its answers are kept for the episode and used when the order is checked again "
                        "(re-select or sign it). A second submission is not taken.")
    return session_id, row


def _read_answers(page: dict, today):
    """The form's values, the problems found in them, and the answers they give."""
    values, errors, answers = dict(request.form), {}, {}
    for link_id in page["asked"]:
        value = request.form.get(link_id)
        if value not in ("yes", "no"):
            errors[link_id] = "Answer yes or no."
        else:
            answers[link_id] = value == "yes"
    onset, why = when_from(values, ONSET, today)
    if why:
        errors[ONSET] = f"The onset {why}."
    elif page.get("onset") and onset is None:
        errors[ONSET] = "Give the onset date, or about how many weeks ago the pain began."
    care_since, why = when_from(values, CARE_SINCE, today)
    if why:
        errors[CARE_SINCE] = f"The date {why}."
    return values, errors, answers, onset, care_since



def _own_origins() -> set[str]:
    """The origins a genuine POST comes from: this request's host, and CDS_PUBLIC_BASE_URL's
    (behind a reverse proxy the two differ). "null": a browser that hides the origin."""
    origins = {"null", request.host_url.rstrip("/")}
    base = current_app.config.get("PUBLIC_BASE_URL")
    if base:
        parts = urlsplit(base)
        origins.add(f"{parts.scheme}://{parts.netloc}")
    return origins


def _form(questionnaire, page: dict, session_id: str, values: dict, errors: dict, status: int) -> Response:
    service = _service()
    nonce = secrets.token_urlsafe(16)
    asked = page["asked"]
    care_asked = any(q.group == "management" for q in questionnaire.questions if q.link_id in asked)
    response = _page(
        "screen.html", status, page=page, sections=questionnaire.sections(asked), values=values, errors=errors,
        form_token=service.signer.form_token(session_id, nonce), questionnaire=questionnaire,
        care_asked=care_asked, minutes=service.signer.lifetime // 60,
        today=datetime.now(UTC).date().isoformat(),
    )
    response.set_cookie(NONCE_COOKIE, nonce, max_age=service.signer.lifetime, path="/screen/", httponly=True,
                        secure=request.is_secure, samesite="None" if request.is_secure else "Lax")
    return response
