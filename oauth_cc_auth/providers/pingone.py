"""PingOne: an environment's token endpoint in its region, and a Worker (or other) app.

Documents: https://apidocs.pingidentity.com/pingone/platform/v1/api/#post-token-client_credentials
(the request; the app's Token Endpoint Authentication Method, ``CLIENT_SECRET_BASIC`` by
default), https://apidocs.pingidentity.com/pingone/platform/v1/api/#top (the regional hosts
``auth.pingone.com``, ``.eu``, ``.asia``, ``.ca``) and
https://apidocs.pingidentity.com/pingone/platform/v1/api/#errors (the platform's ``code`` /
``message`` error shape of answers that are not OAuth errors, e.g. an unknown environment).
"""

from __future__ import annotations

from oauth_cc_auth.providers._base import Provider, oauth_error_or, token_path_check

__all__ = ["provider"]

_APP = "PingOne admin console → your environment → Applications → Applications → your app"


provider = Provider(
    name="pingone",
    # CLIENT_SECRET_BASIC, CLIENT_SECRET_POST, CLIENT_SECRET_JWT, PRIVATE_KEY_JWT.
    # Mutual TLS (RFC 8705): tls_client_auth and self_signed_tls_client_auth.
    auth_methods=("client_secret_basic", "client_secret_post", "client_secret_jwt",
                  "private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth"),
    description="PingOne (token_url of your environment and region; Basic)",
    field_help={
        "token_url": "https://auth.pingone.{com|eu|asia|ca}/{environmentId}/as/token "
        f"({_APP} → Overview → Token Endpoint)",
        "client_id": f"the Client ID ({_APP} → Overview)",
        "client_secret": f"the Client Secret ({_APP} → Overview)",
    },
    # /{environmentId}/as/token, or /as/token at a custom domain.
    check_settings=token_path_check(
        r"(/[^/]+)?/as/token", "https://auth.pingone.{com|eu|asia|ca}/{environmentId}/as/token"
    ),
    decode_error=oauth_error_or("code", "message"),
)
