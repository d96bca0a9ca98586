"""A SMART authorization server on loopback, as an EHR runs one, for the screen's SMART launch test.

Role in the test data flow: the EHR side of SMART App Launch 2.0 (EHR launch), built on authlib's
OAuth 2.0 authorization server (authorization code grant, PKCE S256 required, public client):
`<base>/fhir/.well-known/smart-configuration` names the endpoints; `/authorize` stands for the
EHR's signed-in session (the user is already signed in, so it approves at once) and binds the
code to the launch context the test registered (`launches[launch_id] = {patient, appContext,
fhirUser}`); `/token` answers with the access token plus `patient`, `appContext` and `fhirUser`,
as an EHR passes a CDS Hooks card's appContext to the SMART app it launches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, jsonify, request


@dataclass
class Client:
    client_id: str
    redirect_uris: list[str]

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope):
        return " ".join(s for s in (scope or "").split() if s in {"launch", "openid", "fhirUser"})

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret):
        return False  # a public client: no secret

    def check_endpoint_auth_method(self, method, endpoint):
        return method == "none"

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type == "authorization_code"


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: dict
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_auth_time(self):
        return self.auth_time

    def get_nonce(self):
        return None


class SmartEhr:
    """The authorization server app; `launches` is what the EHR put in context per launch id."""

    def __init__(self, client_id: str, redirect_uri: str):
        self.clients = {client_id: Client(client_id, [redirect_uri])}
        self.codes: dict[str, Code] = {}
        self.launches: dict[str, dict] = {}
        self.app = Flask("smart-ehr")
        ehr = self

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["none"]

            def save_authorization_code(self, code, req):
                ehr.codes[code] = Code(code, req.client.client_id, req.payload.redirect_uri, req.scope, req.user,
                                       req.payload.data.get("code_challenge"),
                                       req.payload.data.get("code_challenge_method"))

            def query_authorization_code(self, code, client):
                item = ehr.codes.get(code)
                return item if item and item.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code):
                ehr.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code):
                return authorization_code.user

        def save_token(token, req):
            # The launch context goes with the token response (SMART App Launch, "launch context").
            token.update({k: v for k, v in req.user["context"].items() if v})

        self.server = AuthorizationServer(self.app, query_client=self.clients.get, save_token=save_token)
        self.server.register_grant(CodeGrant, [CodeChallenge(required=True)])

        @self.app.get("/fhir/.well-known/smart-configuration")
        def configuration():
            base = request.url_root.rstrip("/")
            return jsonify({
                "authorization_endpoint": f"{base}/authorize", "token_endpoint": f"{base}/token",
                "capabilities": ["launch-ehr", "client-public", "context-ehr-patient", "sso-openid-connect"],
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": ["launch", "openid", "fhirUser"],
            })

        @self.app.get("/authorize")
        def authorize():
            context = ehr.launches.get(request.args.get("launch", ""))
            if context is None:
                return jsonify({"error": "invalid_request", "error_description": "unknown launch"}), 400
            grant = self.server.get_consent_grant(end_user={"context": context})  # the signed-in user approves
            return self.server.create_authorization_response(grant_user={"context": context}, grant=grant)

        @self.app.post("/token")
        def token():
            return self.server.create_token_response()
