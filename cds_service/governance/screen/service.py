"""The red-flag screen's server side: links minted at card time, answers stored and read back.

Role in the data flow: beside the hook flow, like the governance store it writes to. The
controller asks `attested_for(request, now)` before evaluating (the patient's completed screens
of the episode, read as facts by `decide.screen`), and hands the result to `after_call(...)`,
which stores each offered screen (what its page needs, keyed by a random session id), puts the
link with its signed handle on the card, and marks completed screens as used by this decision.
The page (`page.py`) loads a screen by its handle and completes it once. A store failure never
fails a hook call: the card goes out without the link, and the answers are read next time; after
a failure the store is left alone for PAUSE_SECONDS, so an outage costs one connect timeout per
pause, not one per hook call (docs/clinical-specification.md §12).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, bindparam, insert, select, update

from cds_service.governance.store import naive_utc, patient_hash
from cds_service.governance.store.screen_table import screen
from cds_service.logs import get_logger, log_event
from cds_service.read.screen import AttestedScreen, ScreenDataError, merge, read_response
from cds_service.security.handles import HandleSigner

log = get_logger("screen")
PAUSE_SECONDS = 30.0

# The hook path's statements, built once: each call only binds its values. The patient's
# completed screens are read through the index on (patient_hash, completed_at) (migration 0006).
_c = screen.c
_ATTESTED = (select(_c.response, _c.completed_at)
             .where(_c.patient_hash == bindparam("key"), _c.completed_at >= bindparam("since"))
             .order_by(_c.completed_at))
_PENDING = select(_c.id, _c.order_reference, _c.offered_topic, _c.offered_rating).where(
    _c.patient_hash == bindparam("key"), _c.order_reference.in_(bindparam("orders", expanding=True)),
    _c.completed_at.is_not(None), _c.used_at.is_(None))
_MARK_USED = update(screen).where(_c.id == bindparam("screen_id")).values(
    used_at=bindparam("new_used_at"), used_topic=bindparam("new_topic"), used_rating=bindparam("new_rating"),
    changed=bindparam("new_changed"))
_OFFER = insert(screen)


class ScreenService:
    def __init__(self, engine: Engine, settings: dict):
        self.engine = engine
        self.signer = HandleSigner(settings["SCREEN_SECRET"], int(settings["SCREEN_LINK_MINUTES"]) * 60)
        self.hash_key = settings.get("PATIENT_HASH_KEY") or "change-me-in-production"
        self.keep = timedelta(days=int(settings["SCREEN_KEEP_DAYS"]))
        self.base_url = (settings.get("PUBLIC_BASE_URL") or "").rstrip("/") or None
        self.smart_launch_url = settings.get("SMART_LAUNCH_URL")  # the smart link (§12.7)
        self.silent = settings.get("MODE") == "silent"  # no card is shown: no screen is offered
        self._paused_until = 0.0  # monotonic time until which the hook path leaves the store alone

    def _available(self) -> bool:
        return time.monotonic() >= self._paused_until

    def _failed(self, event: str, error: Exception) -> None:
        self._paused_until = time.monotonic() + PAUSE_SECONDS
        log_event(log, event, 40, exception=type(error).__name__, paused_seconds=PAUSE_SECONDS)

    def patient_key(self, patient_id: str) -> str:
        return patient_hash(self.hash_key, patient_id)

    # --- at hook time ---------------------------------------------------------------------------

    def attested_for(self, request, now: datetime) -> AttestedScreen | None:
        """The patient's screens completed within SCREEN_KEEP_DAYS, merged (the latest answer wins)."""
        if not self._available():
            return None
        values = {"key": self.patient_key(request.patient_id), "since": naive_utc(now - self.keep)}
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(_ATTESTED, values).all()
        except Exception as error:  # the store is down: decide on the record alone
            self._failed("screen answers unavailable", error)
            return None
        screens = []
        for row in rows:
            try:
                screens.append(read_response(row.response, row.completed_at.date()))
            except (ScreenDataError, ValueError, TypeError):
                log_event(log, "stored screen answers unreadable", 30)
        return merge(screens)

    def after_call(self, request, result, now: datetime, url_root: str) -> None:
        """Mark completed screens used by this decision and store each offer, in one transaction;
        once it is committed, link each offer on its card (a link is never shown for a screen the
        store does not hold)."""
        offers = [] if self.silent else result.screen_offers
        if not self._available() or (result.screen_use is None and not offers):
            return
        try:
            key = self.patient_key(request.patient_id)
            rows = [self._offer_row(request, offer, key, now) for offer in offers]
            with self.engine.begin() as connection:
                if result.screen_use is not None:
                    self._mark_used(connection, key, result, now)
                if rows:
                    connection.execute(_OFFER, rows)
            base = self.base_url or url_root.rstrip("/")
            for offer, row in zip(offers, rows, strict=True):
                handle = self.signer.issue(row["id"])
                offer.add_link(f"{base}/screen/{handle}", self.smart_launch_url, handle)
        except Exception as error:  # never fail the hook call for the screen
            self._failed("screen not offered", error)

    def _offer_row(self, request, offer, key: str, now: datetime) -> dict:
        """The stored session of one offer: what its page needs, keyed by a random session id."""
        return {
            "id": self.signer.new_session_id(), "created_at": naive_utc(now),
            "expires_at": naive_utc(now + timedelta(seconds=self.signer.lifetime)),
            "service_id": request.service_id[:64], "patient_hash": key,
            "user_reference": (request.user_id or "")[:256] or None,
            "order_reference": offer.order_reference[:256],
            "offered_topic": offer.topic, "offered_rating": offer.rating, "page": offer.page,
        }

    @staticmethod
    def _mark_used(connection, key: str, result, now: datetime) -> None:
        """The patient's completed, unused screens of the judged orders: used by this decision
        (the first judgement of an order, as the report counts it)."""
        decided: dict[str, object] = {}
        for judgement in result.judgements:
            decided.setdefault(judgement.order_reference[:256], judgement)
        if not decided:
            return
        pending = connection.execute(_PENDING, {"key": key, "orders": list(decided)}).all()
        for row in pending:
            judgement = decided[row.order_reference]
            changed = (row.offered_topic, row.offered_rating) != (judgement.topic, judgement.rating)
            connection.execute(_MARK_USED, {"screen_id": row.id, "new_used_at": naive_utc(now),
                                            "new_topic": judgement.topic, "new_rating": judgement.rating,
                                            "new_changed": changed})

    # --- the page ---------------------------------------------------------------------------------

    def load(self, session_id: str):
        with self.engine.connect() as connection:
            return connection.execute(select(screen).where(screen.c.id == session_id)).first()

    def complete(self, session_id: str, response: dict, now: datetime) -> bool:
        """Store the answers once: False when the screen was already completed (a replay)."""
        c = screen.c
        with self.engine.begin() as connection:
            done = connection.execute(update(screen).where(and_(c.id == session_id, c.completed_at.is_(None)))
                                      .values(completed_at=naive_utc(now), response=response))
            return done.rowcount == 1
