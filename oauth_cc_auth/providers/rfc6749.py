"""The generic RFC 6749 §4.4 provider: any token endpoint, given its ``token_url``."""

from __future__ import annotations

from oauth_cc_auth.providers._base import Provider

__all__ = ["provider"]

provider = Provider(
    name="rfc6749",
    auth_methods=(
        "client_secret_post", "client_secret_basic", "client_secret_jwt", "private_key_jwt",
        "tls_client_auth", "self_signed_tls_client_auth",
    ),
    extra_fields=None,
    description="Generic OAuth 2.0 client credentials (RFC 6749 §4.4); needs token_url",
)
