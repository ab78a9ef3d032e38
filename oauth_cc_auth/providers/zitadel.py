"""ZITADEL: a service user's client credentials at ``https://{instance}/oauth/v2/token``, the
API asked for as the reserved audience scope.

Documents: https://zitadel.com/docs/guides/integrate/service-users/client-credentials (the
request, ``Authorization: Basic``) and https://zitadel.com/docs/apis/openidoauth/scopes
(``urn:zitadel:iam:org:project:id:{projectId}:aud`` puts the project in the token's
audience; ``zitadel`` as the project id names ZITADEL's own APIs).
"""

from __future__ import annotations

import re

from oauth_cc_auth._messages import ClientSettings
from oauth_cc_auth.errors import ConfigurationError
from oauth_cc_auth.providers._base import Provider, require_token_path

__all__ = ["provider"]

_AUDIENCE = re.compile(r"urn:zitadel:iam:org:project:id:[^:\s]+:aud")
_SCOPE = (
    "urn:zitadel:iam:org:project:id:{projectId}:aud with your API's project Resource Id "
    "(ZITADEL Console → Projects → your project → Resource Id; 'zitadel' for ZITADEL's APIs)"
)
_USER = "ZITADEL Console → Users → Service Users → your user → Actions → Generate Client Secret"


def check(provider: Provider, client: ClientSettings) -> None:
    """``/oauth/v2/token``; the scope asks for an audience."""
    require_token_path(provider, client, r"/oauth/v2/token", "https://{instance}/oauth/v2/token")
    if not any(_AUDIENCE.fullmatch(s) for s in (client.scope or "").split()):
        raise ConfigurationError(f"zitadel takes the audience as a scope: add {_SCOPE}")


provider = Provider(
    name="zitadel",
    # The document's request: "Authorization: Basic ${BASIC_AUTH}"; client_secret_post is
    # accepted too.
    auth_methods=("client_secret_basic", "client_secret_post"),
    required_fields=("scope",),
    description="ZITADEL (token_url of your instance; Basic; audience as a scope)",
    field_help={
        "token_url": "https://{instance}/oauth/v2/token (your instance's domain: ZITADEL "
        "Console → Default settings → Domains, or the Cloud console's instance)",
        "client_id": f"the ClientId ({_USER})",
        "client_secret": f"the ClientSecret ({_USER}; shown once)",
        "scope": _SCOPE,
    },
    check_settings=check,
)
