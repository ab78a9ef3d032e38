"""FCC Finance: form-encoded client credentials; JSON bodies are refused by the provider.

Document: "Authentication — Get access token" (servicing API). The token URL table prints the
``.com`` host for both environments; its development examples use ``.dev``, as here.
"""

from __future__ import annotations

from oauth_cc_auth.providers._base import Provider

__all__ = ["provider"]

provider = Provider(
    name="fcc_finance",
    environments={
        "production": "https://api.fccfinance.com/servicing/oauth/token",
        "development": "https://api.fccfinance.dev/servicing/oauth/token",
    },
    default_environment="production",
    body_format="form",
    # The document names client_id, client_secret and grant_type, nothing else.
    extra_fields=frozenset(),
    scope_supported=False,
    # Answers carry expires_in (86400); without it the token is used until a 401.
    default_lifetime=None,
    description="FCC Finance servicing API (form body; tokens for 24 h)",
)
