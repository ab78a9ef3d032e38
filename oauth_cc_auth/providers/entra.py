"""Microsoft Entra ID (the v2.0 endpoint): a tenant's token URL, and one resource per token
named as its ``/.default`` scope.

Documents:
https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow
(the request, the ``/.default`` scope, the error answer) and
https://learn.microsoft.com/en-us/entra/identity-platform/scopes-oidc#the-default-scope.
"""

from __future__ import annotations

from oauth_cc_auth._messages import ClientSettings
from oauth_cc_auth.errors import ConfigurationError
from oauth_cc_auth.providers._base import Provider, require_token_path

__all__ = ["provider"]

_APP = "Microsoft Entra admin center → App registrations → your app"
_API = (
    "the API's Application ID URI followed by /.default, e.g. api://<application id>/.default "
    "or https://graph.microsoft.com/.default (Microsoft Entra admin center → App registrations "
    "→ the API's registration → Expose an API → Application ID URI)"
)
#: Tenants that stand for many: "the client credentials flow needs a tenant: the tenant ID
#: or a domain name" (the document's ``tenant`` parameter).
_NOT_A_TENANT = frozenset({"common", "organizations", "consumers"})


def check(provider: Provider, client: ClientSettings) -> None:
    """A ``/{tenant}/oauth2/v2.0/token`` URL of one tenant; one ``.../.default`` scope."""
    found = require_token_path(
        provider, client, r"/([^/]+)/oauth2/v2\.0/token",
        "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
    )
    if found.group(1).lower() in _NOT_A_TENANT:
        raise ConfigurationError(
            f"entra client credentials need a tenant, not {found.group(1)!r}, in the token URL: "
            f"the Directory (tenant) ID ({_APP} → Overview)"
        )
    scopes = (client.scope or "").split()
    wrong = [s for s in scopes if not s.endswith("/.default")]
    if wrong:
        # "The value passed for the scope parameter in this request should be the resource
        # identifier (application ID URI) of the resource you want, affixed with the .default
        # suffix."
        raise ConfigurationError(
            f"entra client credentials take scopes ending in /.default, not {wrong[0]!r}: {_API}"
        )
    if len(scopes) > 1:
        # A token is for one resource: AADSTS28000 ("contains more than one resource").
        raise ConfigurationError(
            f"entra issues a token for one resource: one /.default scope, not {len(scopes)}"
        )


provider = Provider(
    name="entra",
    # The document's example puts the secret in the body; the server's metadata
    # (/.well-known/openid-configuration) lists client_secret_post, private_key_jwt and
    # client_secret_basic. A certificate credential is private_key_jwt with an x5t#S256
    # header (certificate=); a federated credential is client_assertion=.
    auth_methods=("client_secret_post", "private_key_jwt", "client_secret_basic"),
    required_fields=("scope",),
    # The error answer is RFC 6749 §5.2 (error, error_description: "AADSTS7000215: ...")
    # plus error_codes, timestamp, trace_id and correlation_id: the RFC fields are read, and
    # the description already carries the trace and correlation ids.
    description="Microsoft Entra ID v2.0 (token_url of your tenant; scope .../.default)",
    field_help={
        "token_url": "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token with your "
        f"Directory (tenant) ID ({_APP} → Overview)",
        "client_id": f"the Application (client) ID ({_APP} → Overview)",
        "client_secret": f"a client secret's Value ({_APP} → Certificates & secrets)",
        "scope": _API,
    },
    check_settings=check,
)
