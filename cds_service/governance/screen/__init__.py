"""The red-flag screen beside the hook flow: its store, its page, and its counts.

Role in the data flow: `init_screen(app, settings)` is one step of `create_app`: it builds the
`ScreenService` on the governance store's database (the recorder's engine), registers the page's blueprint, and puts the service in
`app.extensions["lumbar_cds_screen"]`, where the hook controller finds it
(docs/clinical-specification.md §12). With CDS_SCREEN_ENABLED=false, or with recording off
(CDS_RECORD_JUDGEMENTS=false: there is no store to keep the screens in), nothing is registered
and the cards carry no link.
"""

from __future__ import annotations

from flask import Flask

from cds_service.logs import get_logger, warn_once
from cds_service.security.handles import DEV_SECRET

log = get_logger("screen")


def init_screen(app: Flask, settings: dict) -> None:
    if not settings.get("SCREEN_ENABLED", True):
        return
    from cds_service.governance.screen.page import screen_bp
    from cds_service.governance.screen.service import ScreenService

    state = app.extensions["lumbar_cds"]
    store = getattr(state.recorder, "store", None)
    if store is None:
        return
    if settings.get("SCREEN_SECRET") == DEV_SECRET:
        warn_once(log, "screen-secret", "CDS_SCREEN_SECRET is the shipped development default: set a secret "
                  "shared by every worker in production, or anyone can mint screen links")
    app.extensions["lumbar_cds_screen"] = state.screen = ScreenService(store.engine, settings)
    app.register_blueprint(screen_bp)
    if settings.get("SMART_LAUNCH_URL"):  # the SMART EHR launch of the same screen (§12.7)
        from cds_service.governance.screen.smart import smart_bp

        app.register_blueprint(smart_bp)
