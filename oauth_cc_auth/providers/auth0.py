"""Auth0: ``https://{your domain}/oauth/token`` and the API as a required ``audience``.

Document: https://auth0.com/docs/get-started/authentication-and-authorization-flow/
client-credentials-flow/call-your-api-using-the-client-credentials-flow
(and https://auth0.com/docs/api/authentication#client-credentials-flow).
"""

from __future__ import annotations

from oauth_cc_auth.providers._base import Provider, token_path_check

__all__ = ["provider"]

_APP = "Auth0 Dashboard → Applications → Applications → your application → Settings"


provider = Provider(
    name="auth0",
    # The document's example sends client_id and client_secret in the form body; Auth0 also
    # takes Basic and (Enterprise) Private Key JWT, but no client_secret_jwt.
    # Mutual TLS (RFC 8705; Auth0's Highly Regulated Identity): both methods.
    auth_methods=("client_secret_post", "client_secret_basic", "private_key_jwt",
                  "tls_client_auth", "self_signed_tls_client_auth"),
    # "audience: The audience for the token, which is your API."
    required_fields=("audience",),
    description="Auth0 (token_url https://{domain}/oauth/token; audience required)",
    field_help={
        "token_url": f"https://{{your domain}}/oauth/token, the Domain ({_APP} → Domain)",
        "client_id": f"the Client ID ({_APP})",
        "client_secret": f"the Client Secret ({_APP})",
        "audience": "the API Identifier (Auth0 Dashboard → Applications → APIs → your API → "
        "Settings → Identifier)",
    },
    # The token endpoint of the tenant's domain or of a custom domain.
    check_settings=token_path_check(r"/oauth/token",
                                    "https://{your Auth0 domain or custom domain}/oauth/token"),
)
