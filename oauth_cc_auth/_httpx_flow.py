"""The adapter for the httpx family, written once for httpx and for httpx2.

httpx2, the successor of httpx, keeps httpx's ``Auth``, ``Request``, ``Response``, ``Client``
and ``AsyncClient`` interface under a new name, with classes of its own: an ``httpx.Auth`` is
refused by an httpx2 client and the other way round. :class:`HttpxFamilyAuth` is the whole
adapter (token clients, token exchange, the auth flows, the 401 retry), written against that
shared interface; ``oauth_cc_auth.httpx`` and ``oauth_cc_auth.httpx2`` each bind it to one
library: its module as ``_lib``, its ``Auth`` as a second base, and error classes that are also
its ``HTTPError``.

This module imports neither library, so that importing one adapter never imports the other's.
"""

from __future__ import annotations

import inspect
import socket
import ssl
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Mapping,
    MutableMapping,
)
from functools import partial
from types import ModuleType
from typing import Any, ClassVar, Generic, Protocol, TypeVar, Unpack

from oauth_cc_auth import errors
from oauth_cc_auth._actions import TransportFailure, describe
from oauth_cc_auth._adapter import AsyncSend, AuthOptions, ClientCredentialsBase
from oauth_cc_auth._limits import (
    Deadline,
    SocketHolder,
    Unread,
    aread_capped,
    declared_too_large,
    exchange,
    shutdown_socket,
    timed_out,
)
from oauth_cc_auth._messages import TokenHTTPResponse, TokenRequest
from oauth_cc_auth._token import Token

__all__ = ["HttpxFamilyAuth", "LibraryError"]


# -- what the flow uses of the library: the same in httpx and httpx2 --------------------------


class _Request(Protocol):
    @property
    def method(self) -> str: ...
    @property
    def headers(self) -> MutableMapping[str, str]: ...
    @property
    def url(self) -> object: ...
    @property
    def stream(self) -> object: ...


class _Response(Protocol):
    @property
    def status_code(self) -> int: ...
    @property
    def request(self) -> _Request: ...
    @property
    def headers(self) -> Mapping[str, str]: ...


class _TokenResponse(_Response, Protocol):
    @property
    def extensions(self) -> Mapping[str, Any]: ...
    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]: ...
    def aiter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]: ...
    def close(self) -> None: ...
    async def aclose(self) -> None: ...


class _Client(Protocol):
    def build_request(
        self, method: str, url: str, *, content: bytes | None, headers: dict[str, str],
        timeout: float, extensions: dict[str, Any],
    ) -> Any: ...
    def send(
        self, request: Any, *, auth: None, follow_redirects: bool, stream: bool
    ) -> _TokenResponse: ...
    def close(self) -> None: ...


class _AsyncClient(Protocol):
    def build_request(
        self, method: str, url: str, *, content: bytes | None, headers: dict[str, str],
        timeout: float, extensions: dict[str, Any],
    ) -> Any: ...
    async def send(
        self, request: Any, *, auth: None, follow_redirects: bool, stream: bool
    ) -> _TokenResponse: ...
    async def aclose(self) -> None: ...


RequestT = TypeVar("RequestT", bound=_Request)
ResponseT = TypeVar("ResponseT", bound=_Response)
ClientT = TypeVar("ClientT", bound=_Client)
AsyncClientT = TypeVar("AsyncClientT", bound=_AsyncClient)


class LibraryError:
    """First base of each adapter error class that is also the library's ``HTTPError``: the
    attribute its ``request`` property reads, which ``HTTPError.__init__`` would set but
    ``AuthError`` calls no library ``__init__``. The flow sets it to the API request that
    needed the token."""

    _request: Any = None


def _rewinder(request: _Request, byte_stream: type) -> Callable[[], None] | None:
    """How to make *request*'s body sendable again after a 401, or ``None`` if it is not.

    Bytes (and multipart forms, whose files the library rewinds itself) are sent again as
    they are; a seekable file is rewound to where it started; a generator cannot be replayed.
    *byte_stream* is the library's ``ByteStream``.
    """
    stream = request.stream
    if isinstance(stream, byte_stream) or type(stream).__name__ == "MultipartStream":
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
        stream._is_stream_consumed = False  # type: ignore[attr-defined]

    return rewind


def _nothing() -> None:
    return None


def _note_socket(holder: SocketHolder, event: str, info: Mapping[str, Any]) -> None:
    """httpcore's trace callback: note the socket of a connection just opened."""
    if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
        get_extra_info = getattr(info.get("return_value"), "get_extra_info", None)
        sock = get_extra_info("socket") if get_extra_info is not None else None
        if isinstance(sock, socket.socket):
            holder.sock = sock


def _shutter(response: _TokenResponse) -> Callable[[], None] | None:
    """How to interrupt a read of *response* blocked at the deadline: shut its socket down
    (httpcore's ``network_stream`` extension); ``None`` without one (a mock transport)."""
    stream = response.extensions.get("network_stream")
    get_extra_info = getattr(stream, "get_extra_info", None)
    sock = get_extra_info("socket") if get_extra_info is not None else None
    return shutdown_socket(sock) if isinstance(sock, socket.socket) else None


class HttpxFamilyAuth(ClientCredentialsBase, Generic[RequestT, ResponseT, ClientT, AsyncClientT]):
    """An ``Auth`` of httpx or httpx2 that fetches, caches and attaches a client-credentials
    token; a subclass names the library (``_lib``) and adds the library's ``Auth`` as a base.

    The same object serves the library's ``Client`` (threads) and ``AsyncClient`` (asyncio and
    trio tasks), with one token shared by all of them, and by every auth object with the same
    credentials and cache, whichever library it is for.
    """

    #: The HTTP library: the ``httpx`` or the ``httpx2`` module.
    _lib: ClassVar[ModuleType]

    def __init__(
        self,
        client_id: str | int,
        client_secret: str | None = None,
        *,
        client: ClientT | None = None,
        async_client: AsyncClientT | None = None,
        **options: Unpack[AuthOptions],
    ) -> None:
        """
        Args:
            client_id: The client id; an int is sent as a JSON number by JSON providers.
            client_secret: The client secret (``None`` with private_key_jwt). Never logged,
                shown or sent anywhere but the token endpoint, as the provider documents.
            client: The library's ``Client`` for token requests from sync flows. By default
                the auth object uses its own; never the client of the API request. A client
                given is used as it is: with mutual TLS, give it the certificate yourself.
            async_client: The library's ``AsyncClient`` for token requests from async flows.
                By default the auth object opens one per token request, closed with it.
            **options: ``provider``, ``environment``, ``token_url``, ``scope``, ``extra``,
                ``leeway``, ``auth_method``, ``timeout``, ``max_retries``, ``backoff``,
                ``max_retry_after``, ``max_response_bytes``, ``insecure_transport``,
                ``private_key``,
                ``private_key_id``, ``signing_alg``, ``certificate``, ``assertion_audience``,
                ``assertion_lifetime``, ``client_assertion``, ``cert``, ``dpop``, ``dpop_key``,
                ``cache``, ``clock``: see README.

        Raises:
            ConfigurationError: for bad configuration.
        """
        super().__init__(client_id, client_secret, **options)
        self._client = client
        self._async_client = async_client
        #: The TLS settings of the AsyncClients opened per token request, built once: what
        #: the library builds by default, which takes tens of milliseconds each time.
        self._ssl_context: Any = None
        # (Async flows open their client per token request: nothing to close, nor for a
        # forked child to forget.)

    async def aclose(self) -> None:
        """Close the token clients and the cache the auth object opened itself."""
        await self._aclose_common()
        self._close_own()

    # -- the token exchange ----------------------------------------------------------------

    def _sync_client(self) -> ClientT:
        if self._client is not None:
            return self._client
        own: ClientT | None = self._own
        if own is not None:
            return own
        context = self._token_ssl_context()  # before _opened's lock: it takes it too
        client: ClientT = self._opened(
            lambda: self._lib.Client(timeout=self._config.timeout, verify=context)
        )
        return client

    def _token_ssl_context(self) -> Any:
        with self._lock:
            if self._ssl_context is None:
                self._ssl_context = self._new_ssl_context()
            return self._ssl_context

    def _new_ssl_context(self) -> ssl.SSLContext:
        """The library's default TLS settings, presenting ``cert=`` if given (RFC 8705)."""
        context: ssl.SSLContext = self._lib.create_ssl_context()
        certificate = self._config.authentication.certificate
        if certificate is not None:
            failure: str | None = None
            try:
                context.load_cert_chain(*certificate.pair)
            except (OSError, ssl.SSLError) as exc:
                failure = exc.strerror or type(exc).__name__
            if failure is not None:  # changed since construction; never the files' content
                raise errors.ConfigurationError(f"cert cannot be loaded: {failure}")
        return context

    def _build(
        self,
        client: _Client | _AsyncClient,
        request: TokenRequest,
        extensions: dict[str, Any] | None = None,
    ) -> Any:
        # The timeout also for a client given by the user.
        return client.build_request(
            # No content at all for a bodiless request (a metadata GET): no Content-Length: 0.
            request.method, request.url, content=request.body or None,
            headers=dict(request.headers),
            timeout=self._config.timeout, extensions=extensions or {},
        )

    def _send(self, request: TokenRequest) -> TokenHTTPResponse | TransportFailure:
        # The timeout bounds the whole attempt (DESIGN §7); the library's bounds each read.
        # A new connection's socket, from httpcore's trace, lets the deadline bound the wait
        # for the status line and headers too (a reused connection's is bounded per read).
        config = self._config
        client = self._sync_client()
        holder = SocketHolder()
        extensions = {"trace": partial(_note_socket, holder)}

        def send() -> _TokenResponse:
            # auth=None: never the client's own auth (a user's client may carry one).
            return client.send(
                self._build(client, request, extensions), auth=None,
                follow_redirects=False, stream=True,
            )

        return exchange(
            send,
            lambda response: response.iter_bytes(),
            _shutter,
            deadline=Deadline(config.timeout),
            holder=holder,
            limit=config.max_response_bytes,
            errors=(self._lib.HTTPError, OSError),
            undecodable=(self._lib.DecodingError,),
        )

    async def _asend(
        self, client: _AsyncClient, request: TokenRequest
    ) -> TokenHTTPResponse | TransportFailure:
        """One attempt from an async flow: all of it (connect, send, the whole answer)
        within the timeout, in a cancel scope, so asyncio and trio alike."""
        import anyio

        config = self._config
        result: TokenHTTPResponse | TransportFailure | None = None
        with anyio.move_on_after(config.timeout):
            try:
                response = await client.send(
                    self._build(client, request), auth=None, follow_redirects=False, stream=True
                )
                body: bytes | Unread = "too large"
                try:
                    if not declared_too_large(response.headers, config.max_response_bytes):
                        body = await aread_capped(
                            response.aiter_bytes(), limit=config.max_response_bytes
                        )
                except self._lib.DecodingError:
                    body = "undecodable"
                finally:
                    # Also when cancelled: not read to its end, the connection is closed.
                    with anyio.CancelScope(shield=True):
                        await response.aclose()
            except self._lib.HTTPError as exc:
                return TransportFailure(describe(exc))
            if isinstance(body, str):
                result = TokenHTTPResponse(response.status_code, response.headers, b"",
                                           unread=body)
            else:
                result = TokenHTTPResponse(response.status_code, response.headers, body)
        return result if result is not None else timed_out(config.timeout)

    def get_token(self, request: RequestT | None = None) -> Token:
        """The current token, fetched on this thread if needed (*request*: the API request
        it is for, attached to errors).

        Raises:
            TokenRequestError, TokenResponseError, TokenEndpointError: as for a request.
        """
        return self._token_on_this_thread(self._send, request=request)

    async def aget_token(self, request: RequestT | None = None) -> Token:
        """The current token, fetched without blocking the event loop if needed."""
        return await self._async_token(request)

    async def _async_token(self, request: RequestT | None, min_generation: int = 0) -> Token:
        return await self._token_in_this_task(min_generation, request)

    def _async_sender(self) -> tuple[AsyncSend, Callable[[], Awaitable[None]] | None]:
        # The auth object's own AsyncClient lives as long as this token flow, in its task:
        # closed before its event loop can end, never left to the garbage collector (DESIGN
        # §7 "Processes and loops"). Token requests are rare; a client given by the user is
        # used as it is, and left open.
        opened: list[AsyncClientT] = []

        async def send(token_request: TokenRequest) -> TokenHTTPResponse | TransportFailure:
            client = self._async_client
            if client is None:
                if not opened:
                    opened.append(
                        self._lib.AsyncClient(
                            timeout=self._config.timeout, verify=self._token_ssl_context()
                        )
                    )
                client = opened[0]
            return await self._asend(client, token_request)

        async def close_opened() -> None:
            if opened:
                await opened[0].aclose()

        return send, close_opened

    # -- the API request -------------------------------------------------------------------

    def _renewal(
        self, request: RequestT, response: ResponseT, token: Token,
        rewind: Callable[[], None] | None,
    ) -> int | None:
        """Whether to re-send *request* after *response* (a ``renew_on`` status): the minimum
        generation of the new token (the core's
        :meth:`~oauth_cc_auth._flow.TokenManager.refused`), with the body rewound and the
        refused token taken off; else ``None``. The token is invalidated also when the body
        cannot be sent again (*rewind* ``None``)."""
        sent = response.request
        min_generation = self._manager.refused(
            token, sent.headers.get("Authorization"), str(sent.url), str(request.url)
        )
        if min_generation is None or rewind is None:
            return None
        rewind()
        del request.headers["Authorization"]  # an error's .request: not the refused token
        return min_generation

    def _attach(self, error: errors.AuthError, request: object) -> None:
        if isinstance(error, LibraryError):  # what the library's HTTPError.request reads
            error._request = request

    def _authorize(self, request: RequestT, token: Token) -> None:
        """Put *token* on *request*, with a DPoP proof when it is DPoP-bound."""
        request.headers["Authorization"] = token.authorization
        if token.dpop:
            self._prove(request, token)

    def _prove(self, request: RequestT, token: Token) -> None:
        """Add the DPoP proof of *request* carrying *token*."""
        dpop = self._manager.dpop
        if dpop is not None:
            request.headers["DPoP"] = dpop.proof(request.method, str(request.url),
                                                 token.access_token)

    def _nonce_demanded(self, request: RequestT, response: ResponseT, token: Token) -> bool:
        """:meth:`TokenManager.nonce_demanded <oauth_cc_auth._flow.TokenManager.nonce_demanded>`
        of *response* to *request*: whether to re-send it once with the nonce."""
        sent = response.request
        return self._manager.nonce_demanded(
            token, response.status_code, response.headers, sent.headers.get("Authorization"),
            str(sent.url), str(request.url),
        )

    def sync_auth_flow(self, request: RequestT) -> Generator[RequestT, ResponseT, None]:
        token = self._manager.fresh_token() or self.get_token(request)
        request.headers["Authorization"] = token.authorization
        if token.dpop:
            self._prove(request, token)
        rewind = _rewinder(request, self._lib.ByteStream)
        response = yield request
        if token.dpop and self._nonce_demanded(request, response, token) and rewind:
            rewind()
            self._authorize(request, token)  # a new proof, with the nonce: not a renewal
            response = yield request
            self._nonce_demanded(request, response, token)
        if response.status_code not in self._renew_on:
            return  # the common answer leaves here, without another call
        min_generation = self._renewal(request, response, token, rewind)
        if min_generation is not None:
            self._authorize(request, self._token_on_this_thread(self._send, min_generation,
                                                                request))
            yield request

    async def async_auth_flow(self, request: RequestT) -> AsyncGenerator[RequestT, ResponseT]:
        # A coroutine only when a token is to be fetched, not on every request.
        token = self._manager.fresh_token() or await self.aget_token(request)
        request.headers["Authorization"] = token.authorization
        if token.dpop:
            self._prove(request, token)
        rewind = _rewinder(request, self._lib.ByteStream)
        response = yield request
        if token.dpop and self._nonce_demanded(request, response, token) and rewind:
            rewind()
            self._authorize(request, token)
            response = yield request
            self._nonce_demanded(request, response, token)
        if response.status_code not in self._renew_on:
            return
        min_generation = self._renewal(request, response, token, rewind)
        if min_generation is not None:
            self._authorize(request, await self._async_token(request, min_generation))
            yield request
