"""OAuth 2.0 client credentials for httpx2, the successor of httpx: one ``auth=`` object for
``httpx2.Client`` and ``httpx2.AsyncClient``.

The same adapter as ``oauth_cc_auth.httpx`` (``oauth_cc_auth._httpx_flow``), bound to httpx2.
Tokens are shared with httpx auth objects of the same credentials, so a codebase half-way
through its migration makes one token request for both libraries.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import ClassVar

import httpx2

from oauth_cc_auth import errors
from oauth_cc_auth._httpx_flow import HttpxFamilyAuth, LibraryError

__all__ = ["ClientCredentialsAuth", "TokenEndpointError", "TokenRequestError", "TokenResponseError"]


class TokenRequestError(LibraryError, errors.TokenRequestError, httpx2.HTTPError):
    """:class:`oauth_cc_auth.TokenRequestError` that is also an ``httpx2.HTTPError``; its
    ``.request`` is the API request that needed the token."""


class TokenResponseError(LibraryError, errors.TokenResponseError, httpx2.HTTPError):
    """:class:`oauth_cc_auth.TokenResponseError` that is also an ``httpx2.HTTPError``."""


class TokenEndpointError(LibraryError, errors.TokenEndpointError, httpx2.TransportError):
    """:class:`oauth_cc_auth.TokenEndpointError` that is also an ``httpx2.TransportError``."""


class ClientCredentialsAuth(
    HttpxFamilyAuth[httpx2.Request, httpx2.Response, httpx2.Client, httpx2.AsyncClient],
    httpx2.Auth,
):
    """An ``httpx2.Auth`` that fetches, caches and attaches a client-credentials token.

    The same constructor, ``from_env``, ``from_config``, behaviour and errors as
    ``oauth_cc_auth.httpx.ClientCredentialsAuth``; ``client=`` and ``async_client=`` are an
    ``httpx2.Client`` and ``httpx2.AsyncClient`` for token requests (by default its own).
    """

    _lib: ClassVar[ModuleType] = httpx2
    _error_classes: ClassVar[Mapping[type[errors.AuthError], type[errors.AuthError]]] = {
        errors.TokenRequestError: TokenRequestError,
        errors.TokenResponseError: TokenResponseError,
        errors.TokenEndpointError: TokenEndpointError,
    }
