"""Authentication of CDS clients: a signed JWT on every CDS Hooks call (when AUTH_REQUIRED).

Role in the data flow: the first check of a request to discovery (`GET /cds-services`), a
service (`POST /cds-services/<id>`) or feedback (`POST /cds-services/<id>/feedback`), before
the body is read. Implements CDS Hooks 2.0 "Trusting CDS Clients": the client sends
`Authorization: Bearer <JWT>`, signed with a key it publishes as a JWKS; the service checks

- the header: `alg` one of ES256/384/512 or RS256/384/512 (never `none`, never HMAC: an HMAC
  "signed" with a public key proves nothing), a `kid`, and a `jku` only if that issuer
  allowlisted it;
- the signature, with the issuer's key for that `kid` (shipped file, configured JWKS URL or an
  allowlisted `jku`; see `jwks`);
- the claims: `iss` trusted, `aud` = the URL that was called (on feedback the feedback URL or
  the service URL, as the CDS Hooks sandbox sends the feedback URL), `exp` in the future and
  `iat` not in the future (JWT_LEEWAY_SECONDS of skew), the issuer's `tenant` if it names one,
  and a `jti` never seen before within the token's lifetime (`replay`).

Any failure is `CdsError("LCDS-1401")`: 401 with `WWW-Authenticate: Bearer` and no detail (a
caller probing us learns nothing); the reason goes to the log, never the token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import jwt
from flask import Flask, current_app, g, request

from cds_service import metrics
from cds_service.hooks.errors import CdsError
from cds_service.logs import get_logger, log_event, warn_once
from cds_service.security.issuers import (  # noqa: F401 -- TrustConfigError: re-exported for cli.py
    TrustConfigError,
    TrustedIssuer,
    trusted_issuers,
)
from cds_service.security.jwks import RemoteKeySets
from cds_service.security.replay import (
    ReplayStoreError,
    ReplayUnknown,
    create_replay_store,
    request_fingerprint,
)

log = get_logger("auth")

# Asymmetric algorithms only. The key type and curve each demands (RFC 7518 section 3.4).
ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
}
MIN_RSA_BITS = 2048
MAX_TOKEN_CHARS = 16_384
MAX_ID_CHARS = 512  # kid, jti, iss, tenant: longer values are refused, not stored
# A client JWT authenticates one call (the sandbox's live 5 minutes). One expiring later than
# this is refused: a stolen token stays useful only briefly, and the replay store, which must
# remember each jti until its token expires, stays bounded.
MAX_TOKEN_LIFETIME_SECONDS = 3600
REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti"]


class AuthFailure(Exception):
    """Why a token was refused (for the log only). Never contains the token."""

    def __init__(self, reason: str, iss: str | None = None):
        super().__init__(reason)
        self.iss = iss


# --- verification ---------------------------------------------------------------------------

def _normalise_url(url: str) -> str:
    return url.rstrip("/")


class Authenticator:
    def __init__(
        self,
        issuers: dict[str, TrustedIssuer],
        replay_store,
        *,
        leeway: int = 30,
        jwks_timeout: float = 3.0,
    ):
        self.issuers = issuers
        self.replay_store = replay_store
        self.leeway = leeway
        self.remote_keys = RemoteKeySets(jwks_timeout, on_error=self._log_jwks_error)

    @staticmethod
    def _log_jwks_error(issuer: str, url: str, reason: str) -> None:
        log_event(log, "key set fetch failed", logging.WARNING, iss=issuer, url=url, reason=reason)

    def authenticate(self, authorization: str | None, audiences: list[str],
                     fingerprint: Callable[[], str] | None = None) -> dict:
        """Verified claims of the bearer JWT in `authorization`; AuthFailure otherwise.
        `fingerprint` names the request (`replay.request_fingerprint`), read only once the token
        is verified: a resend of the same request may reuse an unanswered jti (`replay`)."""
        token = _bearer_token(authorization)
        header, unverified = _unverified_parts(token)
        alg, kid = _checked_header(header)
        issuer = self._trusted_issuer(unverified, header.get("jku"))
        jwk = self._find_key(issuer, kid, header.get("jku"))
        if jwk is None:
            raise AuthFailure("unknown kid")
        claims = self._verified_claims(token, _verification_key(jwk, alg), alg)
        _check_claims(claims, issuer, audiences)
        self._check_first_use(issuer, claims, fingerprint)
        return claims

    def _trusted_issuer(self, unverified: dict, jku) -> TrustedIssuer:
        """The configured issuer the (not yet verified) `iss` names, if it allows the `jku`."""
        iss = unverified.get("iss")
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise AuthFailure("untrusted issuer", iss if isinstance(iss, str) else None)
        if jku is not None and jku not in issuer.jku_allowlist:
            raise AuthFailure("jku is not on the issuer's allowlist")
        return issuer

    def _verified_claims(self, token: str, key, alg: str) -> dict:
        """The signature, `exp`, `iat` (with leeway) and the required claims, by PyJWT."""
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                leeway=self.leeway,
                options={"require": REQUIRED_CLAIMS, "verify_aud": False, "verify_iss": False},
            )
        except jwt.ExpiredSignatureError:
            raise AuthFailure("token expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthFailure("token issued in the future (iat or nbf)") from None
        except jwt.InvalidSignatureError:
            raise AuthFailure("bad signature") from None
        except jwt.MissingRequiredClaimError as error:
            raise AuthFailure(f"missing claim {error.claim}") from None
        except jwt.InvalidTokenError as error:
            raise AuthFailure(f"invalid token ({type(error).__name__})") from None

    def _check_first_use(self, issuer: TrustedIssuer, claims: dict,
                         fingerprint: Callable[[], str] | None = None) -> None:
        """The token's lifetime is bounded and its `jti` has never been seen (fail closed)."""
        remaining = float(claims["exp"]) - time.time()
        if remaining > MAX_TOKEN_LIFETIME_SECONDS + self.leeway:
            raise AuthFailure("exp is more than an hour away")
        # Remember the jti until the token could no longer be accepted anyway.
        ttl = int(remaining) + self.leeway + 1
        try:  # (PyJWT checked that iat is a number)
            first = self.replay_store.first_use(issuer.iss, claims["jti"], ttl, float(claims["iat"]),
                                                fingerprint() if fingerprint else None)
        except ReplayUnknown as error:
            raise AuthFailure(f"jti cannot be checked: {error}") from None
        except ReplayStoreError as error:
            # Fail closed: without the replay store we cannot tell a replay from a first use.
            raise AuthFailure(f"replay store unavailable ({error})") from None
        if not first:
            raise AuthFailure("jti replayed")

    def _find_key(self, issuer: TrustedIssuer, kid: str, jku: str | None) -> dict | None:
        if kid in issuer.static_keys:
            return issuer.static_keys[kid]
        urls = list(issuer.jwks_urls)
        if jku is not None and jku not in urls:
            urls.append(jku)  # allowlisted above
        return self.remote_keys.find(issuer.iss, kid, urls)


def _unverified_parts(token: str) -> tuple[dict, dict]:
    """The header and the claims as sent, before any check: only to find the issuer and key."""
    try:
        return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise AuthFailure("malformed token") from None


def _checked_header(header: dict) -> tuple[str, str]:
    """The header's allowed `alg` and its `kid`."""
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise AuthFailure(f"algorithm not allowed: {str(alg)[:20]}")
    if "crit" in header:
        raise AuthFailure("critical header extensions are not supported")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > MAX_ID_CHARS:
        raise AuthFailure("no kid in the header")
    return alg, kid


def _check_claims(claims: dict, issuer: TrustedIssuer, audiences: list[str]) -> None:
    """The signed `iss`, `aud`, `tenant` and `jti` say what this call needs."""
    if claims.get("iss") != issuer.iss:  # the signed payload must say what we looked up
        raise AuthFailure("untrusted issuer")
    aud = claims["aud"]
    aud_values = aud if isinstance(aud, list) else [aud]
    wanted = {_normalise_url(a) for a in audiences}
    if not any(isinstance(a, str) and _normalise_url(a) in wanted for a in aud_values):
        raise AuthFailure("aud is not the URL that was called")
    if issuer.tenants is not None and claims.get("tenant") not in issuer.tenants:
        raise AuthFailure("tenant not trusted for this issuer")
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti or len(jti) > MAX_ID_CHARS:
        raise AuthFailure("jti must be a non-empty string")


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthFailure("no Authorization header")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    # (Reasons are worded so the log's token redaction, which blanks what follows "Bearer ",
    # leaves them readable.)
    if scheme.lower() != "bearer":
        raise AuthFailure("Authorization scheme is not bearer")
    if not token or " " in token:
        raise AuthFailure("Authorization has no single token")
    if len(token) > MAX_TOKEN_CHARS:
        raise AuthFailure("token too long")
    return token


def _verification_key(jwk: dict, alg: str):
    """The public key of `jwk`, if it fits `alg` (type, curve, size); AuthFailure otherwise."""
    kty, curve = ALGORITHMS[alg]
    if jwk.get("kty") != kty or (curve and jwk.get("crv") != curve):
        raise AuthFailure(f"key {jwk.get('kid')!s:.64} does not fit {alg}")
    if jwk.get("alg") not in (None, alg):
        raise AuthFailure(f"key {jwk.get('kid')!s:.64} is for {str(jwk.get('alg'))[:20]}, not {alg}")
    if "d" in jwk:
        raise AuthFailure("a private key was published as a trusted key")
    try:
        key = jwt.PyJWK(jwk, algorithm=alg).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
        raise AuthFailure("trusted key is unusable") from None
    if kty == "RSA" and key.key_size < MIN_RSA_BITS:
        raise AuthFailure("RSA key shorter than 2048 bits")
    return key


# --- Flask wiring -------------------------------------------------------------------------------

def requires_client_jwt(path: str, method: str) -> bool:
    """Discovery, services and feedback: everything under /cds-services except preflights."""
    if method == "OPTIONS":
        return False
    return path == "/cds-services" or path.startswith("/cds-services/")


def expected_audiences(path: str) -> list[str]:
    """The URL that was called (and, for feedback, the service URL too)."""
    public = current_app.config.get("PUBLIC_BASE_URL")
    called = (public.rstrip("/") + path) if public else request.base_url
    audiences = [called]
    segments = [s for s in path.split("/") if s]
    if len(segments) == 3 and segments[0] == "cds-services" and segments[2] == "feedback":
        audiences.append(called.rstrip("/").removesuffix("/feedback"))
    return audiences


def build_authenticator(settings: dict) -> Authenticator:
    issuers = trusted_issuers(settings)
    if not issuers:  # (a one-time warning: once per `serve` instance, logs.warn_once)
        warn_once(log, "no-issuer", "authentication is required but no issuer is trusted: every call will be refused")
    return Authenticator(
        issuers,
        create_replay_store(settings),
        leeway=int(settings.get("JWT_LEEWAY_SECONDS", 30)),
        jwks_timeout=float(settings.get("JWKS_TIMEOUT", 3.0)),
    )


def init_app(app: Flask) -> None:
    """Register the JWT check on discovery, services and feedback (when AUTH_REQUIRED)."""
    if not app.config.get("AUTH_REQUIRED"):
        return
    app.extensions["lumbar_cds_auth"] = authenticator = build_authenticator(app.config)
    store = authenticator.replay_store
    log_event(log, "client authentication on", issuers=sorted(authenticator.issuers),
              replay_store=type(store).__name__.removesuffix("ReplayStore").lower())
    if not store.shared:
        warn_once(log, "replay-per-process", "the jti replay store is per process: with several workers a "
                  "token can be replayed once per worker; make the instance folder writable or set CDS_REDIS_URL")

    @app.before_request
    def require_client_jwt():
        if not requires_client_jwt(request.path, request.method):
            return None
        try:  # (the request's clock started before this check: app.start_timer)
            claims = authenticator.authenticate(
                request.headers.get("Authorization"), expected_audiences(request.path), _fingerprint
            )
        except AuthFailure as failure:
            # The route, not the raw path: nothing the caller typed reaches the log.
            fields = {"reason": str(failure), "method": request.method,
                      "path": request.url_rule.rule if request.url_rule else "(no route)"}
            if failure.iss:
                fields["iss"] = failure.iss[:200]  # names the client, to help configure trust
            log_event(log, "client authentication failed", logging.WARNING, **fields)
            metrics.jwt_refused(str(failure))  # by a fixed reason label, never the token or iss
            raise CdsError("LCDS-1401") from None
        g.client_iss = claims["iss"]
        g.client_jti = claims["jti"]
        if isinstance(claims.get("tenant"), str):
            g.client_tenant = claims["tenant"][:MAX_ID_CHARS]
        return None

    @app.after_request
    def mark_token_answered(response):
        """Once the answer is handed to the server, the token's call counts as answered: a resend
        of it is then a replay (`replay`), whatever became of the process."""
        if g.get("client_jti") is not None:
            response.call_on_close(lambda iss=g.client_iss, jti=g.client_jti: _complete(authenticator, iss, jti))
        return response


def _fingerprint() -> str:
    """The request as the replay store compares resends (the body is kept for the view)."""
    return request_fingerprint(request.method, request.path, request.get_data(cache=True))


def _complete(authenticator: Authenticator, iss: str, jti: str) -> None:
    try:
        authenticator.replay_store.complete(iss, jti)
    except ReplayStoreError as error:
        # The call stays unanswered in the store: a resend is still refused while its process
        # lives, so this fails closed; it is logged, as the store is unwell.
        log_event(log, "replay store: answer not marked", logging.WARNING, reason=str(error))
