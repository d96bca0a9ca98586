"""`Judgement.order_recognised_by` is stored in its own column (migration 0002), on both back ends."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from sqlalchemy import select

from cds_service.governance.store.schema import judgement as judgement_table

from .support import hook_request, judgement, result


def test_how_the_order_was_recognised_is_recorded(gov_app):
    recorder = gov_app.extensions["lumbar_cds"].recorder
    recognised = dataclasses.replace(judgement("card-r"), order_recognised_by="code")
    recorder.record(hook_request(), result(recognised, judgement("card-n")), datetime(2026, 3, 16, tzinfo=UTC))
    recorder.flush()
    with recorder.store.engine.connect() as connection:
        stored = dict(connection.execute(
            select(judgement_table.c.card_uuid, judgement_table.c.order_recognised_by)).all())
    assert stored == {"card-r": "code", "card-n": None}
