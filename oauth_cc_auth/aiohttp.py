"""OAuth 2.0 client credentials for aiohttp: a client middleware (aiohttp >= 3.12).

``aiohttp.ClientSession(middlewares=(auth,))``, or per request
``session.get(url, middlewares=(auth,))``. The token comes from the same core as the other
adapters' (single flight, shared caches, renewal); token requests go on an
``aiohttp.ClientSession`` of the auth object's own, never through the middleware chain.

aiohttp calls a session's middlewares again for every hop of a redirect, with a new request
each time. The token is attached only at the origin the request was first meant for: a hop
to another origin (whose ``Authorization`` aiohttp strips) passes through untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ssl
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import ClassVar, Unpack

import aiohttp
from yarl import URL

from oauth_cc_auth import errors
from oauth_cc_auth._actions import TransportFailure, describe
from oauth_cc_auth._adapter import AsyncSend, AuthOptions, ClientCredentialsBase
from oauth_cc_auth._limits import (
    READ_CHUNK,
    Unread,
    aread_capped,
    declared_too_large,
    timed_out,
)
from oauth_cc_auth._messages import TokenHTTPResponse, TokenRequest
from oauth_cc_auth._token import Token
from oauth_cc_auth._urls import origin

__all__ = ["ClientCredentialsAuth", "TokenEndpointError", "TokenRequestError", "TokenResponseError"]


class TokenRequestError(errors.TokenRequestError, aiohttp.ClientError):
    """:class:`oauth_cc_auth.TokenRequestError` that is also an ``aiohttp.ClientError``."""


class TokenResponseError(errors.TokenResponseError, aiohttp.ClientError):
    """:class:`oauth_cc_auth.TokenResponseError` that is also an ``aiohttp.ClientError``."""


class TokenEndpointError(errors.TokenEndpointError, aiohttp.ClientConnectionError):
    """:class:`oauth_cc_auth.TokenEndpointError` that is also an
    ``aiohttp.ClientConnectionError``."""


#: The hops of the requests being sent in this task: (the marker aiohttp shares between the
#: hops of one ``session.request()`` call, the URL its first hop was for), the latest first.
_HOPS: contextvars.ContextVar[tuple[tuple[object, URL], ...]] = contextvars.ContextVar(
    "oauth_cc_auth_aiohttp_hops", default=()
)
#: How many requests of one task (nested ones: a middleware sending a request of its own
#: between two hops of another) are remembered.
_HOPS_KEPT = 8


def _meant_url(request: aiohttp.ClientRequest) -> URL:
    """The URL the first hop of *request*'s ``session.request()`` call was for: on the first
    hop, ``request.url`` itself (the same object).

    aiohttp builds a new ``ClientRequest`` for each redirect hop, but hands each the same
    timer object, made for that call: it tells the hops of one call from the next call.
    """
    marker = getattr(request, "_timer", None)
    url = request.url
    if marker is None:  # not built by ClientSession: each request on its own
        return url
    hops = _HOPS.get()
    for known, meant in hops:
        if known is marker:
            return meant
    _HOPS.set(((marker, url), *hops[: _HOPS_KEPT - 1]))
    return url


def _replayable(request: aiohttp.ClientRequest) -> bool:
    """Whether *request*, sent once, can be sent again: not a consumed body (an async
    iterable, a file that cannot seek). Bytes, forms and seekable files can."""
    return not getattr(request.body, "consumed", False)


def _undecodable(exc: BaseException) -> bool:
    """Whether a read failed because the answer's Content-Encoding could not be decoded."""
    seen: BaseException | None = exc
    while seen is not None:
        if type(seen).__name__ == "ContentEncodingError" or "content-encoding" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _LoopSession:
    """The token ``ClientSession`` of one event loop, and the async generator that closes
    it when the loop shuts its async generators down (``asyncio.run`` does)."""

    __slots__ = ("keeper", "loop", "session")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        session: aiohttp.ClientSession,
        keeper: AsyncGenerator[None, None],
    ) -> None:
        self.loop = loop
        self.session = session
        self.keeper = keeper


class ClientCredentialsAuth(ClientCredentialsBase):
    """An aiohttp client middleware that fetches, caches and attaches a client-credentials
    token.

    ``aiohttp.ClientSession(middlewares=(auth,))`` or ``session.get(url,
    middlewares=(auth,))``. One object serves any number of sessions, tasks and event loops,
    with one token shared by all of them and by the other adapters' auth objects of the same
    credentials.
    """

    _error_classes: ClassVar[Mapping[type[errors.AuthError], type[errors.AuthError]]] = {
        errors.TokenRequestError: TokenRequestError,
        errors.TokenResponseError: TokenResponseError,
        errors.TokenEndpointError: TokenEndpointError,
    }

    def __init__(
        self,
        client_id: str | int,
        client_secret: str | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        **options: Unpack[AuthOptions],
    ) -> None:
        """
        Args:
            client_id: The client id; an int is sent as a JSON number by JSON providers.
            client_secret: The client secret (``None`` with private_key_jwt or mutual TLS).
                Never logged, shown or sent anywhere but the token endpoint.
            session: An ``aiohttp.ClientSession`` for token requests, used as it is (with
                mutual TLS, give it the certificate yourself) and never closed by the auth
                object; its middlewares are not applied to token requests. By default the
                auth object opens one per event loop, closed when that loop shuts down.
            **options: ``provider``, ``environment``, ``token_url``, ``issuer``, ``scope``,
                ``extra``, ``leeway``, ``auth_method``, ``timeout``, ``max_retries``,
                ``backoff``, ``max_retry_after``, ``max_response_bytes``,
                ``insecure_transport``, ``renew_on``, ``private_key``, ``private_key_id``,
                ``signing_alg``, ``certificate``, ``assertion_audience``,
                ``assertion_lifetime``, ``client_assertion``, ``cert``, ``dpop``,
                ``dpop_key``, ``cache``, ``clock``: see README.

        Raises:
            ConfigurationError: for bad configuration.
        """
        super().__init__(client_id, client_secret, **options)
        self._session = session
        self._sessions: dict[asyncio.AbstractEventLoop, _LoopSession] = {}
        self._ssl_context: ssl.SSLContext | None = None

    # -- the middleware ----------------------------------------------------------------------

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        first = _meant_url(request)
        if request.url is not first and origin(str(request.url)) != origin(str(first)):
            return await handler(request)  # a redirect to another origin: no token
        token = self._manager.fresh_token() or await self._async_token(request)
        self._authorize(request, token)
        response = await handler(request)
        if response.status not in self._renew_on and not token.dpop:
            return response  # the common answer leaves here
        meant = str(first)
        if (token.dpop and self._nonce_demanded(request, response, token, meant)
                and _replayable(request)):
            response.release()
            self._authorize(request, token)  # a new proof, with the nonce: not a renewal
            response = await handler(request)
            self._nonce_demanded(request, response, token, meant)
        if response.status not in self._renew_on:
            return response
        min_generation = self._manager.refused(
            token, request.headers.get("Authorization"), str(request.url), meant
        )
        if min_generation is None or not _replayable(request):
            return response  # the token is invalidated all the same
        renewed = await self._async_token(request, min_generation)
        response.release()
        self._authorize(request, renewed)
        return await handler(request)

    def _authorize(self, request: aiohttp.ClientRequest, token: Token) -> None:
        """Put *token* on *request*, with a DPoP proof when it is DPoP-bound."""
        request.headers["Authorization"] = token.authorization
        if token.dpop:
            dpop = self._manager.dpop
            if dpop is not None:
                request.headers["DPoP"] = dpop.proof(request.method, str(request.url),
                                                     token.access_token)

    def _nonce_demanded(
        self, request: aiohttp.ClientRequest, response: aiohttp.ClientResponse, token: Token,
        meant: str,
    ) -> bool:
        """:meth:`TokenManager.nonce_demanded <oauth_cc_auth._flow.TokenManager.nonce_demanded>`
        of *response* to *request*: whether to re-send it once with the nonce."""
        return self._manager.nonce_demanded(
            token, response.status, response.headers, request.headers.get("Authorization"),
            str(request.url), meant,
        )

    # -- the token ---------------------------------------------------------------------------

    async def aget_token(self) -> Token:
        """The current token, fetched without blocking the event loop if needed.

        Raises:
            TokenRequestError, TokenResponseError, TokenEndpointError: as for a request.
        """
        return await self._async_token(None)

    async def _async_token(
        self, request: aiohttp.ClientRequest | None, min_generation: int = 0
    ) -> Token:
        return await self._token_in_this_task(min_generation, request)

    def _async_sender(self) -> tuple[AsyncSend, Callable[[], Awaitable[None]] | None]:
        return self._asend, None  # the loop's token session, closed with the loop

    async def _asend(self, request: TokenRequest) -> TokenHTTPResponse | TransportFailure:
        """One attempt: all of it (connect, send, the whole answer) within the timeout."""
        config = self._config
        session = self._session or await self._loop_session()
        result: TokenHTTPResponse | TransportFailure | None = None
        try:
            async with asyncio.timeout(config.timeout):
                response = await session.request(
                    request.method, request.url,
                    # No body at all for a bodiless request (a metadata GET).
                    data=request.body or None, headers=dict(request.headers),
                    # Never the session's auth, middlewares, redirects or raise_for_status.
                    auth=None, middlewares=(), allow_redirects=False,
                    raise_for_status=False,
                    timeout=aiohttp.ClientTimeout(total=config.timeout),
                )
                complete = False
                try:
                    if declared_too_large(response.headers, config.max_response_bytes):
                        result = TokenHTTPResponse(response.status, response.headers, b"",
                                                   unread="too large")
                    else:
                        body: bytes | Unread
                        try:
                            body = await aread_capped(
                                response.content.iter_chunked(READ_CHUNK),
                                limit=config.max_response_bytes,
                            )
                        except aiohttp.ClientPayloadError as exc:
                            if not _undecodable(exc):
                                raise
                            body = "undecodable"
                        if isinstance(body, str):
                            result = TokenHTTPResponse(response.status, response.headers,
                                                       b"", unread=body)
                        else:
                            complete = True
                            result = TokenHTTPResponse(response.status, response.headers,
                                                       body)
                finally:
                    # Not read to its end (too large, failed, cancelled): never pooled.
                    if complete:
                        response.release()
                    else:
                        response.close()
        except TimeoutError:
            if result is None:
                return timed_out(config.timeout)
        except (aiohttp.ClientError, OSError) as exc:
            return TransportFailure(describe(exc))
        return result if result is not None else timed_out(config.timeout)

    # -- the token sessions ------------------------------------------------------------------

    def _token_ssl(self) -> ssl.SSLContext | bool:
        """aiohttp's default TLS settings, or a context presenting ``cert=`` (RFC 8705)."""
        certificate = self._config.authentication.certificate
        if certificate is None:
            return True
        with self._lock:
            if self._ssl_context is None:
                context = ssl.create_default_context()
                failure: str | None = None
                try:
                    context.load_cert_chain(*certificate.pair)
                except (OSError, ssl.SSLError) as exc:
                    failure = exc.strerror or type(exc).__name__
                if failure is not None:  # changed since construction; never the content
                    raise errors.ConfigurationError(f"cert cannot be loaded: {failure}")
                self._ssl_context = context
            return self._ssl_context

    async def _loop_session(self) -> aiohttp.ClientSession:
        """The token session of the running loop, opened on first use; the sessions of
        loops that have closed since are closed."""
        loop = asyncio.get_running_loop()
        record = self._sessions.get(loop)
        if record is not None and not record.session.closed:
            return record.session
        self._retire_closed_loops()
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._token_ssl()),
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=self._config.timeout),
        )
        keeper = self._keeper(loop, session)
        # Its first step registers it with the loop (asyncio's async generator hooks), which
        # closes it when it shuts down: ``asyncio.run``, ``Runner``, pytest's loops.
        await keeper.asend(None)
        with self._lock:
            self._sessions[loop] = _LoopSession(loop, session, keeper)
        return session

    async def _keeper(
        self, loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                record = self._sessions.get(loop)
                if record is not None and record.session is session:
                    del self._sessions[loop]
            await session.close()

    def _retire_closed_loops(self) -> None:
        """Forget the sessions of loops closed without shutting their async generators
        down, closing what can still be closed of them."""
        with self._lock:
            closed = [record for record in self._sessions.values() if record.loop.is_closed()]
            for record in closed:
                del self._sessions[record.loop]
        for record in closed:
            _abandon(record)

    async def aclose(self) -> None:
        """Close the token sessions the auth object opened (the running loop's at once,
        another running loop's in that loop) and the cache it opened itself."""
        await self._aclose_common()
        with self._lock:
            records = list(self._sessions.values())
            self._sessions.clear()
        running = asyncio.get_running_loop()
        for record in records:
            if record.loop is running:
                await record.keeper.aclose()
            elif record.loop.is_closed():
                _abandon(record)
            elif record.loop.is_running():
                asyncio.run_coroutine_threadsafe(record.keeper.aclose(), record.loop)
            else:  # a loop not running now: closed when it shuts down, or collected
                with self._lock:
                    self._sessions.setdefault(record.loop, record)

    def _forget_parent_clients(self) -> list[object]:
        # In a forked child: the parent's sessions (their loops are the parent's) stay
        # unused.
        self._lock = threading.Lock()
        records, self._sessions = list(self._sessions.values()), {}
        return list(records)


def _abandon(record: _LoopSession) -> None:
    """Forget a session whose loop closed without shutting its async generators down: what
    aiohttp itself does for a connector of a closed loop (its connections went with the
    loop), and its keeper finished here, never left to a finalizer of the closed loop."""
    connector = record.session.connector
    if connector is not None:
        with contextlib.suppress(Exception):
            connector._close()
    closing = record.keeper.aclose()
    try:
        closing.send(None)  # the session is closed now: nothing left to await
    except (StopIteration, StopAsyncIteration):
        pass
    except Exception:
        closing.close()
    else:
        closing.close()
