"""Salesforce: the client credentials flow of a connected (or external client) app, at your
My Domain; the answer has no ``expires_in``.

Documents:
https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_client_credentials_flow.htm
(the request at ``https://MyDomainName.my.salesforce.com/services/oauth2/token``, the answer
without ``expires_in``, "use your My Domain URL": login.salesforce.com does not serve this
flow) and https://help.salesforce.com/s/articleView?id=sf.admin_sessions.htm (Session
Settings → Timeout Value: two hours by default; the token is such a session).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from oauth_cc_auth._messages import ClientSettings
from oauth_cc_auth.errors import ConfigurationError
from oauth_cc_auth.providers._base import Provider, require_token_path

__all__ = ["provider"]

_SHAPE = "https://{MyDomainName}.my.salesforce.com/services/oauth2/token"
_APP = "Setup → App Manager → your connected app → View → Manage Consumer Details"


def check(provider: Provider, client: ClientSettings) -> None:
    """``/services/oauth2/token`` at a My Domain, not the generic login hosts."""
    require_token_path(provider, client, r"/services/oauth2/token", _SHAPE)
    host = (urlsplit(client.token_url).hostname or "").lower()
    if host in ("login.salesforce.com", "test.salesforce.com"):
        raise ConfigurationError(
            f"salesforce's client credentials flow is served at your My Domain, not {host}: "
            f"{_SHAPE} (Setup → My Domain → Current My Domain URL)"
        )


provider = Provider(
    name="salesforce",
    # The document's request sends client_id and client_secret in the body; a Basic header
    # is accepted too.
    auth_methods=("client_secret_post", "client_secret_basic"),
    # The request has no scope: the app's Selected OAuth Scopes apply.
    scope_supported=False,
    # No expires_in in the answer: the org's session timeout, two hours by default.
    default_lifetime=7200.0,
    description="Salesforce (token_url of your My Domain; no expires_in: 2 h session)",
    field_help={
        "token_url": f"{_SHAPE} (Setup → My Domain → Current My Domain URL)",
        "client_id": f"the Consumer Key ({_APP})",
        "client_secret": f"the Consumer Secret ({_APP})",
    },
    check_settings=check,
)
