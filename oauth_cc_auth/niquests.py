"""OAuth 2.0 client credentials for niquests: ``session.auth = ClientCredentialsAuth(...)``
for a ``niquests.Session``, ``AsyncClientCredentialsAuth`` for a ``niquests.AsyncSession``.

niquests keeps requests' API (an auth is a callable given the ``PreparedRequest``, a 401 is
handled in a response hook, as ``HTTPDigestAuth`` does), but it decides per auth object
whether the auth is asynchronous: ``iscoroutinefunction(auth.__call__)``. An ``AsyncSession``
awaits an async auth and its async hooks; a ``Session`` never calls an async auth at all, and
an ``AsyncSession`` calls a sync one on the event loop (blocking it for a token request) with
hooks whose re-sent request would be a coroutine. So, like niquests' own ``HTTPDigestAuth``
and ``AsyncHTTPDigestAuth``, two classes: one object cannot be both. They share every token:
the core's cache and single flight are per process, keyed by the credentials.

This module imports niquests, never requests (nor ``oauth_cc_auth.requests``).
"""

from __future__ import annotations

import importlib
import inspect
import socket
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, ClassVar, Unpack

import niquests
import niquests.adapters
import niquests.auth
from niquests.cookies import extract_cookies_to_jar
from niquests.exceptions import ContentDecodingError, UnrewindableBodyError
from niquests.structures import CaseInsensitiveDict
from niquests.utils import rewind_body

from oauth_cc_auth import errors
from oauth_cc_auth._actions import TransportFailure, describe
from oauth_cc_auth._adapter import (
    AsyncSend,
    AuthOptions,
    ClientCredentialsBase,
    mounted_session,
)
from oauth_cc_auth._limits import (
    READ_CHUNK,
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

__all__ = [
    "AsyncClientCredentialsAuth",
    "ClientCredentialsAuth",
    "TokenEndpointError",
    "TokenRequestError",
    "TokenResponseError",
]


class TokenRequestError(errors.TokenRequestError, niquests.RequestException):
    """:class:`oauth_cc_auth.TokenRequestError` that is also a ``niquests.RequestException``."""

    request = None
    response = None


class TokenResponseError(errors.TokenResponseError, niquests.RequestException):
    """:class:`oauth_cc_auth.TokenResponseError` that is also a ``niquests.RequestException``."""

    request = None
    response = None


class TokenEndpointError(errors.TokenEndpointError, niquests.ConnectionError):
    """:class:`oauth_cc_auth.TokenEndpointError` that is also a ``niquests.ConnectionError``."""

    request = None
    response = None


_ERROR_CLASSES: Mapping[type[errors.AuthError], type[errors.AuthError]] = {
    errors.TokenRequestError: TokenRequestError,
    errors.TokenResponseError: TokenResponseError,
    errors.TokenEndpointError: TokenEndpointError,
}

#: The token session's transport errors.
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (niquests.RequestException, OSError)


def _no_auth(request: niquests.PreparedRequest) -> niquests.PreparedRequest:
    # Passed as the token request's auth so that niquests does not add .netrc credentials.
    return request


def _chunks(response: niquests.Response) -> Iterator[bytes]:
    """The answer's body; an adapter that built it in memory has no raw stream."""
    if response.raw is None:
        return iter((response.content or b"",))
    chunks: Iterator[bytes] = response.iter_content(READ_CHUNK)
    return chunks


def _shutter(response: niquests.Response) -> Callable[[], None] | None:
    """How to interrupt a read of *response* blocked at the deadline: shut its connection's
    socket down (urllib3-future's ``HTTPResponse.shutdown`` is a no-op); ``None`` without one
    (an adapter answering from memory)."""
    connection = getattr(response.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    return shutdown_socket(sock) if isinstance(sock, socket.socket) else None


# -- the token session's connections: their socket for the attempt's watchdog ------------------

#: The attempt in progress on this thread (``holder``: its SocketHolder, or None).
_attempt = threading.local()


class _HandsOverSocket:
    """A urllib3(-future) connection that, before reading an answer, gives its socket to the
    attempt in progress on this thread, so that a watchdog can interrupt a dripping status
    line (each read of which niquests' timeout bounds, not all of them)."""

    sock: socket.socket | None

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        holder = getattr(_attempt, "holder", None)
        if holder is not None and isinstance(self.sock, socket.socket):
            holder.sock = self.sock
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


_pools: dict[str, Any] = {}
_pools_lock = threading.Lock()


def _pool_classes() -> dict[str, Any]:
    """niquests' connection pools (of urllib3-future, wherever niquests finds it), with
    connections that hand their socket over; made on first use."""
    with _pools_lock:
        if not _pools:
            connection: Any = importlib.import_module("niquests.packages.urllib3.connection")
            pool: Any = importlib.import_module("niquests.packages.urllib3.connectionpool")
            http = type("_HTTPConnection", (_HandsOverSocket, connection.HTTPConnection), {})
            https = type("_HTTPSConnection", (_HandsOverSocket, connection.HTTPSConnection), {})
            _pools["http"] = type("_HTTPPool", (pool.HTTPConnectionPool,),
                                  {"ConnectionCls": http})
            _pools["https"] = type("_HTTPSPool", (pool.HTTPSConnectionPool,),
                                   {"ConnectionCls": https})
        return _pools


class _DeadlineAdapter(niquests.adapters.HTTPAdapter):
    """niquests' adapter, with connections that hand their socket to the attempt's watchdog;
    for the auth object's own token session only."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes()


def _sendable(prep: niquests.PreparedRequest) -> bool:
    """Whether the body of *prep* (a copy of a request sent) can be sent again: bytes,
    text or nothing as they are; a stream only if niquests recorded where it started (a
    file), rewound here; never a generator."""
    body = prep.body
    if body is None or isinstance(body, (bytes, str)):
        return True
    if not isinstance(getattr(prep, "_body_position", None), int):
        return False
    if inspect.iscoroutinefunction(getattr(body, "seek", None)):
        return False  # an async file: its position cannot be restored here
    try:
        rewind_body(prep)
    except UnrewindableBodyError:
        return False
    return True


async def _settled(value: object) -> None:
    """Await *value* when it is awaitable: an ``AsyncResponse``'s ``content`` and
    ``close()`` are, a ``Response``'s are not."""
    if inspect.isawaitable(value):
        await value


async def _settled_call(function: Callable[[], object]) -> None:
    """Call *function* (a response's ``close``), awaiting what it returns if awaitable."""
    await _settled(function())


class _NiquestsAuth(ClientCredentialsBase):
    """What the sync and the async niquests auths share: errors, headers, renewal checks."""

    _error_classes: ClassVar[Mapping[type[errors.AuthError], type[errors.AuthError]]] = (
        _ERROR_CLASSES
    )

    def _attach(self, error: errors.AuthError, request: object) -> None:
        error.request = request  # type: ignore[attr-defined]  # niquests' .request

    def _authorize(self, prep: niquests.PreparedRequest, token: Token) -> None:
        """Put *token* on *prep*, with a DPoP proof when it is DPoP-bound."""
        assert prep.headers is not None  # noqa: S101 - a prepared request has headers
        prep.headers["Authorization"] = token.authorization
        dpop = self._manager.dpop
        if dpop is not None and token.dpop:
            prep.headers["DPoP"] = dpop.proof(prep.method or "GET", prep.url or "",
                                              token.access_token)

    def _nonce_demanded(self, response: niquests.Response, token: Token, url: str) -> bool:
        """:meth:`TokenManager.nonce_demanded <oauth_cc_auth._flow.TokenManager.nonce_demanded>`
        of *response* to a request that carried *token* to the origin of *url*: whether to
        re-send it once with the nonce (not a renewal)."""
        sent = response.request
        if sent is None or sent.headers is None:
            return False
        return self._manager.nonce_demanded(
            token, response.status_code or 0, response.headers,
            sent.headers.get("Authorization"), sent.url or "", url,
        )

    def _refused(self, response: niquests.Response, token: Token, url: str) -> int | None:
        """After a ``renew_on`` status: the minimum generation of the token to re-send the
        request with, or ``None`` when it did not carry *token* at the origin of *url*."""
        sent = response.request
        if sent is None:
            return None
        sent_with = sent.headers.get("Authorization") if sent.headers is not None else None
        authorization = sent_with if isinstance(sent_with, str) else None
        return self._manager.refused(token, authorization, sent.url or "", url)

    @staticmethod
    def _prepare_resend(r: niquests.Response) -> niquests.PreparedRequest | None:
        """A copy of the request of *r* to send again, or ``None`` when its body cannot be."""
        sent = r.request
        if sent is None:
            return None
        prep = sent.copy()
        return prep if _sendable(prep) else None

    @staticmethod
    def _carry_cookies(r: niquests.Response, prep: niquests.PreparedRequest) -> None:
        cookies = prep._cookies
        extract_cookies_to_jar(cookies, r.request, r.raw)  # type: ignore[arg-type]
        prep.prepare_cookies(cookies)

    @staticmethod
    def _follow_renewed(
        retried: niquests.Response,
        sent: niquests.PreparedRequest | None,
        original: niquests.PreparedRequest | None,
        renewed: list[Token],
    ) -> None:
        """The session follows a redirect from a copy of the request it sent (the original,
        or the redirect hop this answer is to): its copies get the renewed token (niquests
        strips it for another host), while it shows, in the history, the token it was sent
        with."""
        if not renewed or not retried.is_redirect:
            return
        followed = [original] if original is not None else []
        if sent is not None and sent is not original:
            followed.append(sent)
        for request in followed:
            if request.headers is not None:
                request.headers = _RenewedHeaders(  # type: ignore[assignment]
                    request.headers, renewed[0].authorization
                )


class ClientCredentialsAuth(_NiquestsAuth, niquests.auth.AuthBase):
    """A niquests auth, for a ``niquests.Session``, that fetches, caches and attaches a
    client-credentials token (for an ``AsyncSession``: :class:`AsyncClientCredentialsAuth`).

    Args:
        client_id: The client id; an int is sent as a JSON number by JSON providers.
        client_secret: The client secret (``None`` with private_key_jwt). Never logged,
            shown or sent anywhere but the token endpoint, as the provider documents.
        session: The ``niquests.Session`` for token requests (proxies, ``verify``, ``cert``,
            mounted adapters), used as it is: with mutual TLS set its ``cert`` yourself. By
            default the auth object uses a session of its own (presenting ``cert=``); it
            never uses the session of the API request.
        **options: ``provider``, ``environment``, ``token_url``, ``issuer``, ``scope``,
            ``extra``, ``leeway``, ``auth_method``, ``timeout``, ``max_retries``,
            ``backoff``, ``max_retry_after``, ``max_response_bytes``, ``insecure_transport``,
            ``renew_on``, ``private_key``, ``private_key_id``, ``signing_alg``,
            ``certificate``, ``assertion_audience``, ``assertion_lifetime``,
            ``client_assertion``, ``cert``, ``dpop``, ``dpop_key``, ``cache``, ``clock``:
            see README.

    Raises:
        ConfigurationError: at construction, for bad configuration.

    Example::

        session = niquests.Session()
        session.auth = ClientCredentialsAuth("id", "secret", token_url="https://.../token")
        session.get("https://api.example.com/things")
    """

    def __init__(
        self,
        client_id: str | int,
        client_secret: str | None = None,
        *,
        session: niquests.Session | None = None,
        **options: Unpack[AuthOptions],
    ) -> None:
        super().__init__(client_id, client_secret, **options)
        self._session = session

    def __enter__(self) -> ClientCredentialsAuth:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the token exchange -------------------------------------------------------------------

    def _token_session(self) -> niquests.Session:
        if self._session is not None:
            return self._session
        return self._opened(self._new_session)

    def _new_session(self) -> niquests.Session:
        return mounted_session(niquests.Session(), _DeadlineAdapter(), self.cert)

    def _send(self, request: TokenRequest) -> TokenHTTPResponse | TransportFailure:
        # The timeout bounds the whole attempt (DESIGN §7): niquests' bounds each read. Our
        # own session's connections hand their socket to *holder* before the status line and
        # headers are read, so that the deadline bounds that wait too (a session given by the
        # user bounds it per read); the body is checked against it after every chunk.
        config = self._config
        holder = SocketHolder()

        def send() -> Any:  # a niquests.Response, whose status_code is an int here
            _attempt.holder = holder
            try:
                return self._token_session().request(
                    request.method,
                    request.url,
                    data=request.body or None,
                    headers=dict(request.headers),
                    timeout=config.timeout,
                    allow_redirects=False,
                    auth=_no_auth,
                    stream=True,  # read by exchange(), within the deadline and the size cap
                )
            finally:
                _attempt.holder = None

        return exchange(
            send,
            _chunks,
            _shutter,
            deadline=Deadline(config.timeout),
            holder=holder,
            limit=config.max_response_bytes,
            errors=_TRANSPORT_ERRORS,
            undecodable=(ContentDecodingError,),
        )

    def get_token(self) -> Token:
        """The current token: the cached one while it is valid (one due for refresh is being
        refreshed in the background), else a new one.

        Raises:
            TokenRequestError, TokenResponseError, TokenEndpointError: as for a request.
        """
        return self._token_on_this_thread(self._send)

    # -- the API request ------------------------------------------------------------------------

    def __call__(self, r: niquests.PreparedRequest) -> niquests.PreparedRequest:
        token = self._manager.fresh_token() or self._token_on_this_thread(self._send,
                                                                          request=r)
        self._authorize(r, token)
        url = r.url or ""
        renew_on = self._renew_on
        original = weakref.ref(r)  # not r itself: the hook, stored on r, would keep it alive
        dpop = token.dpop and self._manager.dpop is not None

        def hook(response: niquests.Response, **kwargs: Any) -> niquests.Response:
            if dpop and self._nonce_demanded(response, token, url):
                response = self._resend(response, lambda: token, **kwargs)
                self._nonce_demanded(response, token, url)
            if response.status_code not in renew_on:  # every answer passes here: leave
                return response
            return self._renew(response, token, url, original(), **kwargs)

        r.hooks["response"].append(hook)  # type: ignore[arg-type]
        return r

    def _renew(
        self,
        r: niquests.Response,
        token: Token,
        url: str,
        original: niquests.PreparedRequest | None,
        **kwargs: Any,
    ) -> niquests.Response:
        """Re-send a request once with a new token after the resource server's 401 (or
        another ``renew_on`` status). Like ``HTTPDigestAuth.handle_401``: the re-sent request
        goes straight to the connection, so no hook (this one included) sees its answer —
        never a loop."""
        min_generation = self._refused(r, token, url)
        if min_generation is None:
            return r
        renewed: list[Token] = []

        def new_token() -> Token:
            renewed.append(self._token_on_this_thread(self._send, min_generation, r.request))
            return renewed[0]

        retried = self._resend(r, new_token, **kwargs)
        self._follow_renewed(retried, r.request, original, renewed)
        return retried

    def _resend(
        self, r: niquests.Response, token_for: Callable[[], Token], **kwargs: Any
    ) -> niquests.Response:
        """The request of answer *r* sent again with the token *token_for* gives (and a new
        DPoP proof for a DPoP-bound one); *r* itself when its body cannot be sent again."""
        if inspect.iscoroutinefunction(getattr(r.connection, "send", None)):
            raise TypeError(
                "oauth_cc_auth.niquests.ClientCredentialsAuth is for niquests.Session; "
                "with an AsyncSession use AsyncClientCredentialsAuth"
            )
        prep = self._prepare_resend(r)
        if prep is None:
            return r
        # Release the connection of the first answer before sending again.
        r.content  # noqa: B018
        r.close()
        self._carry_cookies(r, prep)
        self._authorize(prep, token_for())
        retried: niquests.Response = r.connection.send(prep, **kwargs)
        retried.history.append(r)
        retried.request = prep
        return retried


class AsyncClientCredentialsAuth(_NiquestsAuth, niquests.auth.AsyncAuthBase):
    """A niquests auth, for a ``niquests.AsyncSession``, that fetches (without blocking the
    event loop), caches and attaches a client-credentials token.

    Args:
        client_id: The client id; an int is sent as a JSON number by JSON providers.
        client_secret: The client secret (``None`` with private_key_jwt).
        session: A ``niquests.AsyncSession`` for token requests, used as it is (and left
            open). By default the auth object opens one per token request, closed with it in
            the task that made it: never left open when its event loop ends.
        **options: as :class:`ClientCredentialsAuth`.

    Raises:
        ConfigurationError: at construction, for bad configuration.

    Example::

        auth = AsyncClientCredentialsAuth("id", "secret", token_url="https://.../token")
        async with niquests.AsyncSession(auth=auth) as session:
            await session.get("https://api.example.com/things")
    """

    def __init__(
        self,
        client_id: str | int,
        client_secret: str | None = None,
        *,
        session: niquests.AsyncSession | None = None,
        **options: Unpack[AuthOptions],
    ) -> None:
        super().__init__(client_id, client_secret, **options)
        self._session = session

    async def aclose(self) -> None:
        """Close the cache the auth object opened itself."""
        await self._aclose_common()

    async def __aenter__(self) -> AsyncClientCredentialsAuth:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the token exchange -------------------------------------------------------------------

    def _new_session(self) -> niquests.AsyncSession:
        session = niquests.AsyncSession()
        session.cert = self.cert  # RFC 8705: presented on token requests (None: none)
        return session

    async def _asend(
        self, session: niquests.AsyncSession, request: TokenRequest
    ) -> TokenHTTPResponse | TransportFailure:
        """One attempt: all of it (connect, send, the whole answer) within the timeout, in a
        cancel scope."""
        import anyio

        config = self._config
        result: TokenHTTPResponse | TransportFailure | None = None
        with anyio.move_on_after(config.timeout):
            try:
                response = await session.request(
                    request.method,
                    request.url,
                    data=request.body or None,
                    headers=dict(request.headers),
                    timeout=config.timeout,
                    allow_redirects=False,
                    auth=_no_auth,
                    stream=True,
                )
                body: bytes | Unread = "too large"
                try:
                    if not declared_too_large(response.headers, config.max_response_bytes):
                        if response.raw is None:
                            content = await _content(response)
                            body = (content if len(content) <= config.max_response_bytes
                                    else "too large")
                        else:
                            chunks = await response.iter_content(READ_CHUNK)
                            body = await aread_capped(chunks, limit=config.max_response_bytes)
                except ContentDecodingError:
                    body = "undecodable"
                finally:
                    # Also when cancelled: not read to its end, the connection is closed.
                    with anyio.CancelScope(shield=True):
                        await _settled_call(response.close)
            except _TRANSPORT_ERRORS as exc:
                return TransportFailure(describe(exc))
            if isinstance(body, str):
                result = TokenHTTPResponse(response.status_code or 0, response.headers, b"",
                                           unread=body)
            else:
                result = TokenHTTPResponse(response.status_code or 0, response.headers, body)
        return result if result is not None else timed_out(config.timeout)

    async def aget_token(self) -> Token:
        """The current token, fetched without blocking the event loop if needed.

        Raises:
            TokenRequestError, TokenResponseError, TokenEndpointError: as for a request.
        """
        return await self._async_token(None)

    async def _async_token(self, request: object, min_generation: int = 0) -> Token:
        return await self._token_in_this_task(min_generation, request)

    def _async_sender(self) -> tuple[AsyncSend, Callable[[], Awaitable[None]] | None]:
        # The auth object's own AsyncSession lives as long as this token flow, in its task:
        # closed before its event loop can end (DESIGN §7 "Processes and loops").
        opened: list[niquests.AsyncSession] = []

        async def send(token_request: TokenRequest) -> TokenHTTPResponse | TransportFailure:
            session = self._session
            if session is None:
                if not opened:
                    opened.append(self._new_session())
                session = opened[0]
            return await self._asend(session, token_request)

        async def close_opened() -> None:
            if opened:
                await opened[0].close()

        return send, close_opened

    # -- the API request ------------------------------------------------------------------------

    async def __call__(self, r: niquests.PreparedRequest) -> niquests.PreparedRequest:
        token = self._manager.fresh_token() or await self._async_token(r)
        self._authorize(r, token)
        url = r.url or ""
        renew_on = self._renew_on
        original = weakref.ref(r)
        dpop = token.dpop and self._manager.dpop is not None

        async def hook(response: niquests.Response, **kwargs: Any) -> niquests.Response:
            if dpop and self._nonce_demanded(response, token, url):
                response = await self._aresend(response, _constant(token), **kwargs)
                self._nonce_demanded(response, token, url)
            if response.status_code not in renew_on:
                return response
            return await self._arenew(response, token, url, original(), **kwargs)

        r.hooks["response"].append(hook)  # type: ignore[arg-type]
        return r

    async def _arenew(
        self,
        r: niquests.Response,
        token: Token,
        url: str,
        original: niquests.PreparedRequest | None,
        **kwargs: Any,
    ) -> niquests.Response:
        """:meth:`ClientCredentialsAuth._renew`, awaited."""
        min_generation = self._refused(r, token, url)
        if min_generation is None:
            return r
        renewed: list[Token] = []

        async def new_token() -> Token:
            renewed.append(await self._async_token(r.request, min_generation))
            return renewed[0]

        retried = await self._aresend(r, new_token, **kwargs)
        self._follow_renewed(retried, r.request, original, renewed)
        return retried

    async def _aresend(
        self, r: niquests.Response, token_for: Callable[[], Awaitable[Token]], **kwargs: Any
    ) -> niquests.Response:
        """:meth:`ClientCredentialsAuth._resend`, awaited."""
        prep = self._prepare_resend(r)
        if prep is None:
            return r
        await _settled(r.content)
        await _settled_call(r.close)
        self._carry_cookies(r, prep)
        self._authorize(prep, await token_for())
        retried: niquests.Response = await r.connection.send(prep, **kwargs)
        retried.history.append(r)
        retried.request = prep
        return retried


def _constant(token: Token) -> Callable[[], Awaitable[Token]]:
    async def same() -> Token:
        return token

    return same


async def _content(response: niquests.Response) -> bytes:
    content: Any = response.content
    if inspect.isawaitable(content):
        content = await content
    return content or b""


class _RenewedHeaders(CaseInsensitiveDict[str]):
    """The headers of a request as it was sent, whose copies carry the renewed token."""

    def __init__(self, sent: Mapping[str, str], authorization: str) -> None:
        super().__init__(sent)
        self._authorization = authorization

    def copy(self) -> CaseInsensitiveDict[str]:
        copied: CaseInsensitiveDict[str] = CaseInsensitiveDict(self)
        copied["Authorization"] = self._authorization
        return copied
