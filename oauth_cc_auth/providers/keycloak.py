"""Keycloak: a realm's OpenID Connect token endpoint, a service-account client, Basic.

Documents: https://www.keycloak.org/docs/latest/securing_apps/#_client_credentials_grant
(the request: ``Authorization: Basic`` and ``grant_type=client_credentials``) and
https://www.keycloak.org/docs/latest/server_admin/#_timeouts ("Access Token Lifespan", five
minutes by default: with the default ``leeway`` of 60 s a token is renewed after four; a
leeway of more than half the lifetime is capped at half of it).
"""

from __future__ import annotations

from oauth_cc_auth.providers._base import Provider, token_path_check

__all__ = ["provider"]

_CLIENT = "Keycloak admin console → your realm → Clients → your client"


provider = Provider(
    name="keycloak",
    # Client authenticator "Client Id and Secret" takes Basic (the document's example) or
    # the body; "Signed JWT" is private_key_jwt, "Signed JWT with Client Secret"
    # client_secret_jwt.
    # "X509 Certificate" is tls_client_auth; self-signed certificates registered as the
    # client's keys are self_signed_tls_client_auth (RFC 8705).
    auth_methods=("client_secret_basic", "client_secret_post", "client_secret_jwt",
                  "private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth"),
    # Answers carry expires_in (300 by default): no lifetime to assume.
    description="Keycloak (token_url of your realm; Basic; 5-minute tokens by default)",
    field_help={
        "token_url": "https://{host}/realms/{realm}/protocol/openid-connect/token "
        "(Realm settings → General → Endpoints → OpenID Endpoint Configuration → "
        "token_endpoint)",
        "client_id": f"the Client ID ({_CLIENT} → Settings; Client authentication on, "
        "Service accounts roles checked)",
        "client_secret": f"the Client Secret ({_CLIENT} → Credentials)",
    },
    # Under a relative path if any: /auth before Keycloak 17, or the server's
    # http-relative-path.
    check_settings=token_path_check(
        r"(/.+)?/realms/[^/]+/protocol/openid-connect/token",
        "https://{host}/realms/{realm}/protocol/openid-connect/token",
    ),
)
