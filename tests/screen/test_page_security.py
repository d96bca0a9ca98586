"""The screen's page refuses what it must (docs/clinical-specification.md §12.2): an expired or
tampered handle, a replayed submission, a post without the page's form token and cookie (CSRF),
a post from another site; and says why in plain words, never with a stack trace."""

from __future__ import annotations

import time

from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from cds_service.governance.store.screen_table import screen
from tests.screen.support import answer, lbp, open_page, post_hook, request_for, screen_path

ANSWERS = {"onset-weeks": "3", "physical-therapy": "no", "analgesics": "no"}


def _offer(client, pid: str = "pat-sec") -> str:
    return screen_path(post_hook(client, request_for(pid, lbp(pid))))


def _stored(app) -> list:
    engine = app.extensions["lumbar_cds_screen"].engine
    with engine.connect() as connection:
        return connection.execute(select(screen.c.response, screen.c.completed_at)).all()


class _HourOld(TimestampSigner):
    """A signer whose clock is an hour behind: the handle it makes is genuine but an hour old."""

    def get_timestamp(self) -> int:
        return int(time.time()) - 3600


def test_an_expired_handle_is_refused_with_a_clear_message(app, client):
    path = _offer(client)
    session_id = app.extensions["lumbar_cds_screen"].signer.open(path.rsplit("/", 1)[1])
    old = URLSafeTimedSerializer(app.config["SCREEN_SECRET"], salt="lumbar-cds.screen-handle", signer=_HourOld)
    expired = f"/screen/{old.dumps(session_id)}"
    page = client.get(expired)
    assert page.status_code == 410
    assert "This screen link has expired" in page.get_data(as_text=True)
    token = open_page(client, path)  # a valid page's token does not help
    assert client.post(expired, data={"form_token": token, **ANSWERS}).status_code == 410
    assert all(row.completed_at is None for row in _stored(app))


def test_a_tampered_or_foreign_handle_is_not_valid(app, client):
    handle = _offer(client).rsplit("/", 1)[1]
    payload, stamp, signature = handle.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    other_key = URLSafeTimedSerializer("another-deployment", salt="lumbar-cds.screen-handle").dumps("0" * 32)
    for bad in (f"{payload}.{stamp}.{flipped}", f"{payload}.{stamp}", "not-a-handle", other_key):
        page = client.get(f"/screen/{bad}")
        assert page.status_code == 404, bad
        assert "This screen link is not valid" in page.get_data(as_text=True)
        assert "Traceback" not in page.get_data(as_text=True)


def test_a_replayed_submission_is_refused_and_the_first_answers_stand(app, client):
    path = _offer(client)
    token = open_page(client, path)
    assert answer(client, path, ANSWERS, token=token).status_code == 200
    replay = answer(client, path, dict(ANSWERS, **{"onset-weeks": "12"}), token=token)
    assert replay.status_code == 409
    assert "already been submitted" in replay.get_data(as_text=True)
    assert client.get(path).status_code == 409
    [row] = _stored(app)
    onset = row.response["item"][0]["item"][0]["answer"][0]["valueDate"]
    assert (time.time() - time.mktime(time.strptime(onset, "%Y-%m-%d"))) < 4 * 7 * 86400  # 3 weeks, not 12


def test_a_post_without_the_page_s_token_and_cookie_is_refused(app, client):
    path = _offer(client)
    token = open_page(client, path)
    assert client.post(path, data=ANSWERS).status_code == 403  # no form token
    assert answer(client, path, ANSWERS, token=token + "x").status_code == 403  # a forged token
    fresh = app.test_client()  # another browser: the token without its cookie
    assert fresh.post(path, data={"form_token": token, **ANSWERS}).status_code == 403
    refused = answer(client, path, ANSWERS, token=token, Origin="https://evil.example")  # another site
    assert refused.status_code == 403
    assert "The answers were not accepted" in refused.get_data(as_text=True)
    assert all(row.completed_at is None for row in _stored(app))
    assert answer(client, path, ANSWERS, token=token).status_code == 200  # the page itself still can


def test_missing_or_wrong_answers_are_named_on_the_page(app, client):
    path = _offer(client)
    page = answer(client, path, {"onset-weeks": "many", "physical-therapy": "maybe"})
    assert page.status_code == 400
    html = page.get_data(as_text=True)
    assert "3 answers to check" in html
    assert "The onset is not a number of weeks" in html and "Answer yes or no." in html
    assert 'aria-invalid="true"' in html and 'href="#q-analgesics"' in html
    future = answer(client, path, dict(ANSWERS, **{"onset-weeks": "", "onset-date": "2999-01-01"}))
    assert future.status_code == 400 and "The onset is after today" in future.get_data(as_text=True)
    assert all(row.completed_at is None for row in _stored(app))


def test_the_page_shows_no_name_and_is_not_cached(client):
    path = _offer(client)
    page = client.get(path)
    html = page.get_data(as_text=True)
    assert "pat-sec" not in html and "Testpatient" not in html
    assert page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"
    assert "script" not in html.lower()  # plain HTML
    for question in ("onset-date", "onset-weeks"):
        assert f'<label for="{question}">' in html  # every input has its label
    assert html.count("<fieldset") == html.count("<legend>")


def test_behind_a_proxy_the_public_origin_is_the_page_s_own(tmp_path):
    from cds_service.app import create_app

    app = create_app({"TESTING": True, "DATABASE_PATH": str(tmp_path / "s.sqlite3"),
                      "PUBLIC_BASE_URL": "https://cds.example.org"})
    try:
        client = app.test_client()
        link = post_hook(client, request_for("pat-proxy", lbp("pat-proxy")))["cards"][0]["links"][-1]["url"]
        assert link.startswith("https://cds.example.org/screen/")
        path = "/screen/" + link.rsplit("/", 1)[1]
        assert answer(client, path, ANSWERS, Origin="https://cds.example.org").status_code == 200
    finally:
        app.extensions["lumbar_cds_shutdown"]()
