"""Figure's Banking API: form-encoded client credentials, the secret only in the POST body, and
a bare ``{"access_token"}`` answer that lives one hour.

Only the test environment's URL is documented; for production pass ``token_url=``
(credentials are per environment).
"""

from __future__ import annotations

from oauth_cc_auth.providers._base import Provider

__all__ = ["provider"]

provider = Provider(
    name="figure",
    environments={"test": "https://api.pay.test.figure.com/oauth2/token"},
    default_environment="test",
    body_format="form",
    extra_fields=frozenset(),
    scope_supported=False,
    # "Each access_token has an expiration of one hour."
    default_lifetime=3600.0,
    headers={"Accept": "application/json"},
    description="Figure Banking API (form body; bare token, valid 1 h; production: token_url)",
)
