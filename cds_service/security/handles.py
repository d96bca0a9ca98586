"""Opaque, signed, short-lived handles for the red-flag screen's links, and its form tokens.

Role in the data flow: beside the web edge (docs/clinical-specification.md §12.2). A handle is
an itsdangerous timestamped signature over a random session id: no patient id, name or date is
in the URL; what the session is bound to (patient key, user, order) stays server-side, keyed by
that id. The key is the configured CDS_SCREEN_SECRET, shared by every worker, so a link minted by
one worker opens on another. A form token binds a page's POST to its handle and to the nonce in
the page's cookie (double submit), so another site cannot post answers (CSRF).
"""

from __future__ import annotations

import hmac
import secrets

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

DEV_SECRET = "dev-screen-secret-change-me"


class HandleExpired(Exception):
    """The handle was genuine but is older than its lifetime."""


class HandleInvalid(Exception):
    """The handle was not minted by this service (tampered, truncated or another key)."""


class HandleSigner:
    def __init__(self, secret: str, lifetime_seconds: int):
        self.lifetime = lifetime_seconds
        self._handles = URLSafeTimedSerializer(secret, salt="lumbar-cds.screen-handle")
        self._forms = URLSafeTimedSerializer(secret, salt="lumbar-cds.screen-form")

    @staticmethod
    def new_session_id() -> str:
        return secrets.token_hex(16)

    def issue(self, session_id: str) -> str:
        return self._handles.dumps(session_id)

    def open(self, handle: str) -> str:
        """The session id of a genuine, unexpired handle."""
        try:
            value = self._handles.loads(handle, max_age=self.lifetime)
        except SignatureExpired:
            raise HandleExpired() from None
        except BadSignature:
            raise HandleInvalid() from None
        if not isinstance(value, str):
            raise HandleInvalid()
        return value

    def form_token(self, session_id: str, nonce: str) -> str:
        return self._forms.dumps([session_id, nonce])

    def check_form_token(self, token: str, session_id: str, nonce: str | None) -> bool:
        if not token or not nonce:
            return False
        try:
            value = self._forms.loads(token, max_age=self.lifetime)
        except BadSignature:  # SignatureExpired is a BadSignature
            return False
        return (isinstance(value, list) and len(value) == 2 and hmac.compare_digest(str(value[0]), session_id)
                and hmac.compare_digest(str(value[1]), nonce))
