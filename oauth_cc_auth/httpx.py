"""OAuth 2.0 client credentials for httpx: one ``auth=`` object for sync and async clients.

The adapter is written once for httpx and httpx2 (``oauth_cc_auth._httpx_flow``); this module
binds it to httpx.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import ClassVar

import httpx

from oauth_cc_auth import errors
from oauth_cc_auth._httpx_flow import HttpxFamilyAuth, LibraryError

__all__ = ["ClientCredentialsAuth", "TokenEndpointError", "TokenRequestError", "TokenResponseError"]


class TokenRequestError(LibraryError, errors.TokenRequestError, httpx.HTTPError):
    """:class:`oauth_cc_auth.TokenRequestError` that is also an ``httpx.HTTPError``.

    ``.request`` is the API request that needed the token.
    """


class TokenResponseError(LibraryError, errors.TokenResponseError, httpx.HTTPError):
    """:class:`oauth_cc_auth.TokenResponseError` that is also an ``httpx.HTTPError``."""


class TokenEndpointError(LibraryError, errors.TokenEndpointError, httpx.TransportError):
    """:class:`oauth_cc_auth.TokenEndpointError` that is also an ``httpx.TransportError``."""


class ClientCredentialsAuth(
    HttpxFamilyAuth[httpx.Request, httpx.Response, httpx.Client, httpx.AsyncClient], httpx.Auth
):
    """An ``httpx.Auth`` that fetches, caches and attaches a client-credentials token.

    The same object serves ``httpx.Client`` (threads) and ``httpx.AsyncClient`` (asyncio and
    trio tasks), with one token shared by all of them. ``client=`` and ``async_client=`` are
    the ``httpx.Client`` and ``httpx.AsyncClient`` for token requests (by default its own).
    """

    _lib: ClassVar[ModuleType] = httpx
    _error_classes: ClassVar[Mapping[type[errors.AuthError], type[errors.AuthError]]] = {
        errors.TokenRequestError: TokenRequestError,
        errors.TokenResponseError: TokenResponseError,
        errors.TokenEndpointError: TokenEndpointError,
    }
