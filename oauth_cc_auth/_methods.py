"""The client-authentication methods by name, and the ``client_secret_basic`` header: what a
provider's encoder needs, without the key and certificate handling of ``_client_auth`` (so
that ``import oauth_cc_auth`` stays light)."""

from __future__ import annotations

import base64
from urllib.parse import quote_plus

__all__ = [
    "ASSERTION_TYPE", "SECRET_METHODS", "TLS_METHODS", "basic_authorization",
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SECRET_METHODS = ("client_secret_post", "client_secret_basic", "client_secret_jwt")
#: RFC 8705 §2: the client authenticates with its TLS client certificate.
TLS_METHODS = ("tls_client_auth", "self_signed_tls_client_auth")


def basic_authorization(client_id: str | int, client_secret: str) -> str:
    """The ``Authorization`` header of ``client_secret_basic`` (RFC 6749 §2.3.1): client id
    and secret each form-encoded (``application/x-www-form-urlencoded``, UTF-8), joined by a
    colon, then base64."""
    pair = f"{quote_plus(str(client_id))}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii")
