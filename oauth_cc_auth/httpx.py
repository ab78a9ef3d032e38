"""OAuth 2.0 client credentials for httpx: one ``auth=`` object for sync and async clients."""

from __future__ import annotations

import inspect
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import ClassVar, Unpack

import httpx

from oauth_cc_auth import errors
from oauth_cc_auth._adapter import AuthOptions, ClientCredentialsBase, origin
from oauth_cc_auth._core import TransportFailure, run_sync
from oauth_cc_auth._messages import TokenHTTPResponse, TokenRequest
from oauth_cc_auth._token import Token

__all__ = [
    "ClientCredentialsAuth",
    "TokenEndpointError",
    "TokenRequestError",
    "TokenResponseError",
]


class TokenRequestError(errors.TokenRequestError, httpx.HTTPError):
    """:class:`oauth_cc_auth.TokenRequestError` that is also an ``httpx.HTTPError``.

    ``.request`` is the API request that needed the token.
    """

    _request: httpx.Request | None = None


class TokenResponseError(errors.TokenResponseError, httpx.HTTPError):
    """:class:`oauth_cc_auth.TokenResponseError` that is also an ``httpx.HTTPError``."""

    _request: httpx.Request | None = None


class TokenEndpointError(errors.TokenEndpointError, httpx.TransportError):
    """:class:`oauth_cc_auth.TokenEndpointError` that is also an ``httpx.TransportError``."""

    _request: httpx.Request | None = None


def _rewinder(request: httpx.Request) -> Callable[[], None] | None:
    """How to make *request*'s body sendable again after a 401, or ``None`` if it is not.

    Bytes (and multipart forms, whose files httpx rewinds itself) are sent again as they
    are; a seekable file is rewound to where it started; a generator cannot be replayed.
    """
    stream = request.stream
    if isinstance(stream, httpx.ByteStream) or type(stream).__name__ == "MultipartStream":
        return _nothing
    source = getattr(stream, "_stream", None)
    tell = getattr(source, "tell", None)
    seek = getattr(source, "seek", None)
    if tell is None or seek is None or getattr(stream, "_is_generator", True) is not False:
        return None
    if inspect.iscoroutinefunction(tell):  # an async file
        return None
    try:
        position = tell()
    except (OSError, ValueError):
        return None
    if not isinstance(position, int):
        return None

    def rewind() -> None:
        seek(position)
        stream._is_stream_consumed = False  # type: ignore[union-attr]

    return rewind


def _nothing() -> None:
    return None


class ClientCredentialsAuth(ClientCredentialsBase, httpx.Auth):
    """An ``httpx.Auth`` that fetches, caches and attaches a client-credentials token.

    The same object serves ``httpx.Client`` (threads) and ``httpx.AsyncClient`` (asyncio and
    trio tasks), with one token shared by all of them.

    Args:
        client_id: The client id; an int is sent as a JSON number by JSON providers.
        client_secret: The client secret. Never logged, shown or sent anywhere but the token
            endpoint, as the provider documents.
        client: The ``httpx.Client`` for token requests from sync flows. By default the auth
            object uses its own; never the client of the API request.
        async_client: The ``httpx.AsyncClient`` for token requests from async flows. By
            default the auth object opens one per event loop.
        **options: ``provider``, ``environment``, ``token_url``, ``scope``, ``extra``,
            ``leeway``, ``auth_method``, ``timeout``, ``max_retries``, ``backoff``,
            ``max_retry_after``, ``insecure_transport``, ``cache``, ``clock``: see README.

    Raises:
        ConfigurationError: at construction, for bad configuration.
    """

    _error_classes: ClassVar[Mapping[type[errors.AuthError], type[errors.AuthError]]] = {
        errors.TokenRequestError: TokenRequestError,
        errors.TokenResponseError: TokenResponseError,
        errors.TokenEndpointError: TokenEndpointError,
    }

    def __init__(
        self,
        client_id: str | int,
        client_secret: str,
        *,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
        **options: Unpack[AuthOptions],
    ) -> None:
        super().__init__(client_id, client_secret, **options)
        self._client = client
        self._async_client = async_client
        self._own_client: httpx.Client | None = None
        # An AsyncClient belongs to the event loop it was first used in: keep the loop too.
        self._own_async: tuple[object, httpx.AsyncClient] | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the sync token client the auth object opened itself."""
        own, self._own_client = self._own_client, None
        if own is not None:
            own.close()

    async def aclose(self) -> None:
        """Close the token clients the auth object opened itself."""
        self.close()
        own, self._own_async = self._own_async, None
        if own is not None:
            await own[1].aclose()

    # -- the token exchange ----------------------------------------------------------------

    def _sync_client(self) -> httpx.Client:
        if self._client is not None:
            return self._client
        with self._lock:
            if self._own_client is None:
                self._own_client = httpx.Client(timeout=self._config.timeout)
            return self._own_client

    def _async_client_for(self, loop: object) -> httpx.AsyncClient:
        if self._async_client is not None:
            return self._async_client
        with self._lock:
            own = self._own_async
            if own is None or own[0] != loop:
                # A client of a loop that has ended cannot be closed from this one; its
                # connections went with that loop.
                own = self._own_async = (loop, httpx.AsyncClient(timeout=self._config.timeout))
            return own[1]

    @staticmethod
    def _build(client: httpx.Client | httpx.AsyncClient, request: TokenRequest) -> httpx.Request:
        return client.build_request(
            request.method, request.url, content=request.body, headers=dict(request.headers)
        )

    def _send(self, request: TokenRequest) -> TokenHTTPResponse | TransportFailure:
        client = self._sync_client()
        try:
            response = client.send(self._build(client, request), follow_redirects=False)
            response.read()
        except httpx.HTTPError as exc:
            # The exception holds the request, and with it the secret: keep only its words.
            return TransportFailure(f"{type(exc).__name__}: {exc}")
        return TokenHTTPResponse(response.status_code, response.headers, response.content)

    def get_token(self, request: httpx.Request | None = None) -> Token:
        """The current token, fetched on this thread if needed (*request*: the API request
        it is for, attached to errors).

        Raises:
            TokenRequestError, TokenResponseError, TokenEndpointError: as for a request.
        """
        token = self._manager.fresh_token()
        if token is not None:
            return token
        try:
            return run_sync(self._manager.obtain(), self._send)
        except errors.AuthError as exc:
            raise self._translate(exc, _request=request) from None

    async def aget_token(self, request: httpx.Request | None = None) -> Token:
        """The current token, fetched without blocking the event loop if needed."""
        token = self._manager.fresh_token()
        if token is not None:
            return token
        from oauth_cc_auth._aio import current_loop, obtain_async

        client = self._async_client_for(current_loop())

        async def send(token_request: TokenRequest) -> TokenHTTPResponse | TransportFailure:
            try:
                response = await client.send(
                    self._build(client, token_request), follow_redirects=False
                )
                await response.aread()
            except httpx.HTTPError as exc:
                return TransportFailure(f"{type(exc).__name__}: {exc}")
            return TokenHTTPResponse(response.status_code, response.headers, response.content)

        try:
            return await obtain_async(self._manager, send)
        except errors.AuthError as exc:
            raise self._translate(exc, _request=request) from None

    # -- the API request -------------------------------------------------------------------

    def _should_retry(self, request: httpx.Request, response: httpx.Response, token: Token) -> bool:
        """Whether a 401 is ours to recover from; invalidates the token when it is."""
        if response.status_code != 401:
            return False
        # After redirects, the answer is to the last hop: only a 401 to a request that carried
        # our token at the origin it was meant for counts; a cross-origin redirect had it
        # stripped by httpx and gets neither token nor retry.
        sent = response.request
        if sent.headers.get("Authorization") != token.authorization or origin(
            str(sent.url)
        ) != origin(str(request.url)):
            return False
        self._manager.invalidate(token)
        return True

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.get_token(request)
        request.headers["Authorization"] = token.authorization
        rewind = _rewinder(request)
        response = yield request
        if self._should_retry(request, response, token) and rewind is not None:
            rewind()
            request.headers["Authorization"] = self.get_token(request).authorization
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.aget_token(request)
        request.headers["Authorization"] = token.authorization
        rewind = _rewinder(request)
        response = yield request
        if self._should_retry(request, response, token) and rewind is not None:
            rewind()
            request.headers["Authorization"] = (await self.aget_token(request)).authorization
            yield request
