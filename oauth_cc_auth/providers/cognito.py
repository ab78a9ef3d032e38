"""Amazon Cognito: a user pool domain's ``/oauth2/token``, an app client with a secret, and
custom scopes named ``resource-server-identifier/scope``.

Documents: https://docs.aws.amazon.com/cognito/latest/developerguide/token-endpoint.html (the
request, ``Authorization: Basic``, the client secret as the only client authentication) and
https://docs.aws.amazon.com/cognito/latest/developerguide/cognito-user-pools-define-resource-servers.html
("The client credentials grant ... can request only custom scopes", named
``resourceServerIdentifier/scopeName``).
"""

from __future__ import annotations

from oauth_cc_auth._messages import ClientSettings
from oauth_cc_auth.errors import ConfigurationError
from oauth_cc_auth.providers._base import Provider, require_token_path

__all__ = ["provider"]

_POOL = "Amazon Cognito console → User pools → your user pool"
_SCOPE = (
    "resource-server-identifier/scope-name, a custom scope of a resource server "
    f"({_POOL} → Branding → Domain → Resource servers, or App integration → Resource servers)"
)


def check(provider: Provider, client: ClientSettings) -> None:
    """``/oauth2/token``; every scope a custom scope, ``resource-server-identifier/scope``."""
    require_token_path(provider, client, r"/oauth2/token",
                       "https://{domain}.auth.{region}.amazoncognito.com/oauth2/token")
    plain = [s for s in (client.scope or "").split() if "/" not in s.strip("/")]
    if plain:
        raise ConfigurationError(
            f"cognito client credentials take custom scopes only, not {plain[0]!r}: {_SCOPE}"
        )


provider = Provider(
    name="cognito",
    # The client secret in a Basic header (the document's example), or client_id and
    # client_secret in the body; Cognito takes no JWT client authentication.
    auth_methods=("client_secret_basic", "client_secret_post"),
    description="Amazon Cognito (token_url of your user pool domain; Basic; custom scopes)",
    field_help={
        "token_url": "https://{domain}.auth.{region}.amazoncognito.com/oauth2/token or "
        f"https://{{custom domain}}/oauth2/token ({_POOL} → Branding → Domain)",
        "client_id": f"the Client ID ({_POOL} → App clients → your app client)",
        "client_secret": f"the Client secret ({_POOL} → App clients → your app client; "
        "a confidential client)",
        "scope": _SCOPE,
    },
    check_settings=check,
)
