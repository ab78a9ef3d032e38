"""The error hierarchy of oauth_cc_auth.

::

    AuthError                      base of everything this package raises
    ├── ConfigurationError         bad configuration, raised at construction (also a ValueError)
    ├── TokenRequestError          the token endpoint refused: a 4xx other than 429
    │                              (also authlib's OAuth2Error: .error, .description, .status_code)
    ├── TokenResponseError         a 2xx answer that is not a usable token
    └── TokenEndpointError         unreachable, timing out, 429 or 5xx, after the retries

The adapters raise subclasses that are also ``requests.RequestException`` (requests),
``httpx.HTTPError`` (httpx), ``httpx2.HTTPError`` (httpx2), ``aiohttp.ClientError`` (aiohttp)
or ``niquests.RequestException`` (niquests), so existing ``except`` clauses keep working.

No attribute of an error ever holds a client secret or an access token: every text taken from
the token endpoint is redacted before it is stored.
"""

from __future__ import annotations

from collections.abc import Iterable

from authlib.oauth2 import OAuth2Error

__all__ = [
    "AuthError",
    "ConfigurationError",
    "TokenEndpointError",
    "TokenRequestError",
    "TokenResponseError",
]

REDACTED = "[REDACTED]"


def redact(text: str, secrets: Iterable[str]) -> str:
    """Return *text* with every occurrence of each secret replaced by ``[REDACTED]``."""
    # Longest first, so that a secret containing another one is removed whole.
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class AuthError(Exception):
    """Base class of every error raised by oauth_cc_auth."""

    #: HTTP status of the token endpoint's answer, when there was one.
    status_code: int | None = None
    #: The OAuth error code (``"invalid_client"``...), when the endpoint sent one.
    error: str | None = None
    #: The endpoint's human-readable explanation, redacted, when it sent one.
    description: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error: str | None = None,
        description: str | None = None,
    ) -> None:
        # Deliberately not calling the __init__ of authlib's or an HTTP library's error
        # classes: they build messages of their own from unredacted parts.
        Exception.__init__(self, message)
        self.message = message
        self.status_code = status_code
        self.error = error
        self.description = description

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ConfigurationError(AuthError, ValueError):
    """The auth object was configured wrongly; raised at construction."""


class TokenRequestError(AuthError, OAuth2Error):  # type: ignore[misc]  # authlib is untyped
    """The token endpoint refused the request (a 4xx answer other than 429).

    ``error`` and ``description`` come from the answer's body when it has them (RFC 6749
    §5.2 ``error``/``error_description``, or a provider's own envelope), else ``None``.
    Authlib's error API works on it (``get_body()``, ``get_headers()``, calling it).
    """

    status_code: int | None
    # What OAuth2Error.__init__ would set (it is not called: see AuthError.__init__). A token
    # endpoint's refusal has no error_uri to pass on, no state and no redirect.
    uri: str | None = None
    state: str | None = None
    redirect_uri: str | None = None
    redirect_fragment: bool = False


class TokenResponseError(AuthError):
    """The token endpoint answered 2xx, but not with a usable token."""


class TokenEndpointError(AuthError):
    """The token endpoint could not be reached or kept failing (connection errors, timeouts,
    429 and 5xx answers) after the retries."""
