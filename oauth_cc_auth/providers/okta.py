"""Okta: a custom authorization server (``/oauth2/{authServerId}/v1/token``, ``default``
included) for your APIs' scopes; the org authorization server (``/oauth2/v1/token``) only for
Okta's own ``okta.*`` scopes.

Documents: https://developer.okta.com/docs/guides/implement-grant-type/clientcreds/main/
(the request, Basic), https://developer.okta.com/docs/concepts/auth-servers/ (which server
issues which scopes: "You can't use custom scopes with the org authorization server"), and
https://developer.okta.com/docs/reference/error-codes/ (the ``errorCode`` / ``errorSummary``
shape of answers that are not OAuth errors, e.g. an unknown authorization server).
"""

from __future__ import annotations

from oauth_cc_auth._messages import ClientSettings
from oauth_cc_auth.errors import ConfigurationError
from oauth_cc_auth.providers._base import Provider, oauth_error_or, require_token_path

__all__ = ["provider"]

_APP = "Okta Admin Console → Applications → Applications → your app → General"
_SERVER = (
    "https://{yourOktaDomain}/oauth2/{authServerId}/v1/token, e.g. .../oauth2/default/v1/token "
    "(Admin Console → Security → API → Authorization Servers → your server's Issuer URI + "
    "/v1/token)"
)


def check(provider: Provider, client: ClientSettings) -> None:
    """A custom server's token URL, or the org server's with ``okta.*`` scopes only."""
    found = require_token_path(provider, client, r"/oauth2(/[^/]+)?/v1/token",
                               "https://{yourOktaDomain}/oauth2/{authServerId}/v1/token")
    if found.group(1) is not None:
        return
    custom = [s for s in (client.scope or "").split() if not s.startswith("okta.")]
    if custom:
        raise ConfigurationError(
            f"okta's org authorization server (/oauth2/v1/token) refuses custom scopes such as "
            f"{custom[0]!r}: it issues tokens for Okta's own APIs (okta.* scopes); for your API "
            f"use a custom authorization server: {_SERVER}"
        )


provider = Provider(
    name="okta",
    # The document's request is "authorization: Basic ${Base64(<client_id>:<client_secret>)}";
    # Okta apps may also use client_secret_post, client_secret_jwt or private_key_jwt.
    # Mutual TLS (RFC 8705): tls_client_auth and self_signed_tls_client_auth.
    auth_methods=("client_secret_basic", "client_secret_post", "client_secret_jwt",
                  "private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth"),
    description="Okta (token_url of an authorization server; Basic; scope of your API)",
    field_help={
        "token_url": _SERVER,
        "client_id": f"the Client ID ({_APP} → Client Credentials)",
        "client_secret": f"the Client secret ({_APP} → Client Credentials)",
        "scope": "a custom scope of the server (Admin Console → Security → API → "
        "Authorization Servers → your server → Scopes)",
    },
    check_settings=check,
    decode_error=oauth_error_or("errorCode", "errorSummary"),
)
