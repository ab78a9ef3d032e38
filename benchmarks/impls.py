"""The implementations compared: the floor, this package and its peers, in each flavour.

Every implementation is built the way its documentation shows, with its token requests
(and API requests) answered in process by :mod:`transports`. A *setup* is one ready
instance; it offers

- ``request()``: one API request through the plugin, as a user's code makes it;
- ``step(x)`` over ``inputs(n)``: the plugin's own per-request work alone (the bare auth
  step), without the HTTP client around it; ``None`` when not separable;
- ``prime()``: get the first token the way a user of the library has to (a first request,
  or the explicit ``fetch_token()`` call some libraries require);
- ``expire()``: make the cached token due for renewal, as time passing would;
- ``shared_calls()``: for oauth_cc_auth with a shared cache, the calls made to that cache
  so far (the warm path should make none).

``request`` is ``None`` for the setups that time a bare call only (a DPoP proof alone,
:func:`dpop_impls`): they are in the bare auth-step rounds, not the per-request ones.

In an async flavour, ``request()``, ``step(x)`` and ``prime()`` return awaitables, and the
setup is built inside the running event loop. Where a library cannot do a thing at all (for
example fetch its first token by itself), the implementation says so with a reason, shown
as "n/a" in the tables.

A flavour (:class:`RequestsFlavour`, :class:`HttpxFlavour`, :class:`AiohttpFlavour`,
:class:`NiquestsFlavour`) knows how an auth object is
plugged into its library: one builder per library serves every flavour the library has.
httpx and httpx2 (its successor: the same API under a new module name, with classes of its
own) each have a sync and an async flavour, built by the same code given the library.
Authlib's httpx integration is built on one of them, httpx2 when it is installed
(:func:`authlib_httpx_library`): Authlib appears in that library's flavours, and is "n/a"
in the other's (:func:`absent`). aiohttp (one flavour, async) and niquests (sync and async)
have this package's adapter and, for aiohttp, its peer aiohttp-oauth2-client; they are
timed against the floor and counted under contention, not given shared caches or DPoP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import time
import types
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from importlib import metadata
from types import ModuleType
from typing import Any

import httpx
import httpx2
import requests
from requests.hooks import default_hooks, dispatch_hook
from transports import (
    API_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    TOKEN_URL,
    aiohttp_session,
    async_handler,
    memory_raw,
    niquests_session,
    register,
    requests_session,
    sync_handler,
)

import oauth_cc_auth
import oauth_cc_auth.httpx
import oauth_cc_auth.httpx2
import oauth_cc_auth.requests
from oauth_cc_auth import TokenCache
from oauth_cc_auth.testing import Emulator, FakeClock, Reply

__all__ = [
    "AIOHTTP_OAUTH2_CLIENT",
    "ASYNC_FLAVOURS",
    "AUTHLIB",
    "DPOP_NAMES",
    "FLAVOURS",
    "FLOOR",
    "HTTPX_AUTH",
    "OURS",
    "OURS_DPOP",
    "OURS_FILE",
    "OURS_REDIS",
    "PROOF_OURS",
    "PROOF_REQUESTS_OAUTH2CLIENT",
    "REQUESTS_AUTH",
    "REQUESTS_OAUTH2CLIENT",
    "REQUESTS_OAUTH2CLIENT_DPOP",
    "REQUESTS_OAUTHLIB",
    "STATIC_AUTH",
    "STRICT_FLAVOURS",
    "CountingCache",
    "Impl",
    "Setup",
    "absent",
    "all_impls",
    "authlib_httpx_library",
    "dpop_impls",
    "shared_cache_impls",
]

REQUESTS = "requests"
HTTPX_SYNC = "httpx sync"
HTTPX_ASYNC = "httpx async"
HTTPX2_SYNC = "httpx2 sync"
HTTPX2_ASYNC = "httpx2 async"
AIOHTTP = "aiohttp"
NIQUESTS_SYNC = "niquests sync"
NIQUESTS_ASYNC = "niquests async"
#: Every flavour, in the order of the tables' columns.
FLAVOURS = (
    REQUESTS,
    HTTPX_SYNC,
    HTTPX_ASYNC,
    HTTPX2_SYNC,
    HTTPX2_ASYNC,
    AIOHTTP,
    NIQUESTS_SYNC,
    NIQUESTS_ASYNC,
)
#: The flavours whose requests are asyncio tasks (the others: threads).
ASYNC_FLAVOURS = (HTTPX_ASYNC, HTTPX2_ASYNC, AIOHTTP, NIQUESTS_ASYNC)
#: The flavours of issue 17, judged against a tighter threshold (``verdict.STRICT_RATIO``).
STRICT_FLAVOURS = (AIOHTTP, NIQUESTS_SYNC, NIQUESTS_ASYNC)

FLOOR = "floor (static header)"
OURS = "oauth_cc_auth"
OURS_FILE = "oauth_cc_auth, file cache"
OURS_REDIS = "oauth_cc_auth, Redis cache"
AUTHLIB = "Authlib"
REQUESTS_OAUTHLIB = "requests-oauthlib"
REQUESTS_OAUTH2CLIENT = "requests-oauth2client"
REQUESTS_AUTH = "requests-auth"
HTTPX_AUTH = "httpx-auth"
AIOHTTP_OAUTH2_CLIENT = "aiohttp-oauth2-client"
#: A reference row of the aiohttp and niquests flavours (reported, not a peer, no target):
#: the floor's static header set by the cheapest auth object the library takes, which shows
#: what the library charges for having an auth object at all.
STATIC_AUTH = "static auth object (reference)"
OURS_DPOP = "oauth_cc_auth, DPoP"
REQUESTS_OAUTH2CLIENT_DPOP = "requests-oauth2client, DPoP"
PROOF_OURS = "DPoP proof alone, oauth_cc_auth"
PROOF_REQUESTS_OAUTH2CLIENT = "DPoP proof alone, requests-oauth2client"
#: The DPoP rows: reported, not compared with the Bearer rows (no target).
DPOP_NAMES = (OURS_DPOP, REQUESTS_OAUTH2CLIENT_DPOP, PROOF_OURS, PROOF_REQUESTS_OAUTH2CLIENT)

_STATIC = "Bearer static-token"
_HEADERS = {"Authorization": _STATIC}

NO_FIRST_FETCH = "no automatic first token: call fetch_token() before the first request"
UNSIGNED_UNTIL_FETCH = "no automatic first token: requests go out without one until fetch_token()"


@dataclasses.dataclass
class Setup:
    """One ready instance of an implementation (in an async flavour, ``request``, ``step``
    and ``prime`` return awaitables)."""

    request: Callable[[], Any] | None
    step: Callable[[Any], Any] | None
    inputs: Callable[[int], Sequence[Any]]
    prime: Callable[[], Any]
    expire: Callable[[], object] | None = None
    shared_calls: Callable[[], int] | None = None
    #: Whether each call signs (DPoP): its bare auth step is then timed in batches the size
    #: of the request batches, not ten times that (a signature costs ~100x a warm step).
    signs: bool = False
    #: Closes what the setup opened (aiohttp sessions; in an async flavour, an awaitable).
    close: Callable[[], Any] | None = None
    #: Makes the token due for refresh (``refresh.py``): oauth_cc_auth's into its refresh
    #: window, still valid; ``None``: ``expire`` does (the peers refresh only then).
    due: Callable[[], object] | None = None


@dataclasses.dataclass(frozen=True)
class Impl:
    """An implementation in one flavour.

    ``build(endpoint, expiring)`` makes a setup whose tokens come from *endpoint* (in an
    async flavour, called inside the running event loop); with *expiring* its ``expire()``
    works (oauth_cc_auth then runs on a ``FakeClock``; the timings use its default clock,
    ``time.monotonic``, as users do).
    """

    name: str
    flavour: str
    build: Callable[[Emulator, bool], Setup]
    #: Why the cold-start case cannot be run, if it cannot.
    cold_na: str | None = None
    #: Why the expiry case cannot be run, if it cannot.
    expiry_na: str | None = None
    note: str | None = None
    #: The scheme of the ``Authorization`` header its requests carry (``"DPoP"``: and a
    #: ``DPoP`` proof header).
    scheme: str = "Bearer"

    @property
    def aio(self) -> bool:
        """Whether its requests are asyncio tasks."""
        return self.flavour in ASYNC_FLAVOURS


# -- the flavours ----------------------------------------------------------------------------------


def _prepared_requests(n: int) -> list[requests.PreparedRequest]:
    # Fresh requests: an auth object may register a response hook on the one it is given.
    # (PreparedRequest.copy() shares its hooks dict: each copy gets one of its own.)
    base = requests.Request("GET", API_URL).prepare()
    copies = [base.copy() for _ in range(n)]
    for copy in copies:
        copy.hooks = default_hooks()
    return copies


#: The keyword arguments Session.send passes to every response hook.
_SEND_KWARGS: dict[str, Any] = {
    "timeout": None,
    "proxies": {},
    "stream": False,
    "verify": True,
    "cert": None,
}
_REQUESTS_RESPONSE = requests.Response()
_REQUESTS_RESPONSE.status_code = 200
_REQUESTS_RESPONSE._content = b"{}"


def _requests_step(
    auth: Callable[[requests.PreparedRequest], requests.PreparedRequest],
) -> Callable[[requests.PreparedRequest], object]:
    """The auth call plus the response hooks it registered, as ``Session.send`` runs them."""

    def step(r: requests.PreparedRequest) -> object:
        r = auth(r)
        _REQUESTS_RESPONSE.request = r
        hooks = r.hooks
        return dispatch_hook("response", hooks, _REQUESTS_RESPONSE, **_SEND_KWARGS)  # type: ignore[no-untyped-call]

    return step


def _flow_step(auth: Any, response: Any) -> Callable[[Any], object]:
    """``auth.sync_auth_flow`` driven as an httpx(2) ``Client`` drives it, on *response*."""

    def step(request: Any) -> object:
        flow = auth.sync_auth_flow(request)
        sent = next(flow)
        try:
            flow.send(response)
        except StopIteration:
            return sent
        raise RuntimeError("the auth flow sent a second request")

    return step


def _async_flow_step(auth: Any, response: Any) -> Callable[[Any], Awaitable[object]]:
    """``auth.async_auth_flow`` driven as an httpx(2) ``AsyncClient`` drives it."""

    async def step(request: Any) -> object:
        flow = auth.async_auth_flow(request)
        sent = await flow.__anext__()
        try:
            await flow.asend(response)
        except StopAsyncIteration:
            return sent
        raise RuntimeError("the auth flow sent a second request")

    return step


class RequestsFlavour:
    """The requests flavour: sessions answered by a mounted adapter."""

    name = REQUESTS
    aio = False
    #: This package's auth class for the library.
    ours = oauth_cc_auth.requests.ClientCredentialsAuth
    #: The requests the bare auth step is driven with.
    inputs = staticmethod(_prepared_requests)
    #: The bare auth step of an auth object.
    step = staticmethod(_requests_step)

    def token_client(self, endpoint: Emulator) -> dict[str, Any]:
        """The keyword argument giving ``ours`` its token client, answered by *endpoint*."""
        return {"session": requests_session(endpoint)}

    def api(self, auth: Any = None) -> requests.Session:
        """A session for API requests, answered in process, with *auth* attached."""
        session = requests_session()
        session.auth = auth
        return session

    def request(self, api: Any, **options: Any) -> Callable[[], Any]:
        """One API request on *api* (with *options*), as a user makes it."""
        return lambda: api.get(API_URL, **options)

    def floor(self) -> tuple[Any, Callable[[], Any]]:
        """The floor's client and its request: a static header on each request."""
        api = self.api()
        return api, self.request(api, headers=_HEADERS)

    def close(self, *clients: Any) -> None:
        return None


@dataclasses.dataclass(frozen=True)
class HttpxFlavour:
    """A flavour of httpx or httpx2 (*lib*), sync or async (*aio*): clients of the library
    with its ``MockTransport``."""

    name: str
    lib: ModuleType
    aio: bool
    #: ``oauth_cc_auth.httpx.ClientCredentialsAuth`` or ``oauth_cc_auth.httpx2``'s.
    ours: Callable[..., Any]

    @functools.cached_property
    def _request(self) -> Any:
        return self.lib.Request("GET", API_URL)

    @functools.cached_property
    def _response(self) -> Any:
        return self.lib.Response(200, request=self._request)

    def inputs(self, n: int) -> list[Any]:
        # One request serves all calls: auth flows only set its Authorization header.
        return [self._request] * n

    def transport(self, endpoint: Emulator | None = None) -> Any:
        """The library's ``MockTransport``, answering the token endpoint's requests if given."""
        handler = async_handler if self.aio else sync_handler
        return self.lib.MockTransport(handler(endpoint, self.lib))

    def client(self, endpoint: Emulator | None = None, auth: Any = None) -> Any:
        """A ``Client`` (``AsyncClient`` in the async flavour) with that transport."""
        client = self.lib.AsyncClient if self.aio else self.lib.Client
        return client(transport=self.transport(endpoint), auth=auth)

    def token_client(self, endpoint: Emulator) -> dict[str, Any]:
        """The keyword argument giving ``ours`` its token client, answered by *endpoint*."""
        return {"async_client" if self.aio else "client": self.client(endpoint)}

    def api(self, auth: Any = None) -> Any:
        """A client for API requests, with *auth*."""
        return self.client(auth=auth)

    def step(self, auth: Any) -> Callable[[Any], Any]:
        """*auth*'s flow driven as the library's client drives it, on a 200 answer."""
        return (_async_flow_step if self.aio else _flow_step)(auth, self._response)

    request = RequestsFlavour.request
    floor = RequestsFlavour.floor
    close = RequestsFlavour.close


def _aiohttp_requests(n: int) -> list[Any]:
    """Fresh ``aiohttp.ClientRequest``s (in the running loop), each with a timer of its own
    as ``ClientSession`` gives the hops of one call (oauth_cc_auth tells calls apart by it)."""
    import aiohttp
    from aiohttp.helpers import TimerNoop
    from yarl import URL

    loop = asyncio.get_running_loop()
    url = URL(API_URL)
    return [aiohttp.ClientRequest("GET", url, loop=loop, timer=TimerNoop()) for _ in range(n)]


#: What the end of the middleware chain answers in the bare auth step: a 200.
_AIOHTTP_ANSWER = types.SimpleNamespace(status=200, headers={}, release=lambda: None)


async def _aiohttp_handler(request: Any) -> Any:
    return _AIOHTTP_ANSWER


class AiohttpFlavour:
    """The aiohttp flavour: ``ClientSession``s on an in-process connector
    (:func:`transports.aiohttp_session`), the auth object a session middleware. Its bare
    auth step is the middleware called with a new ``ClientRequest`` and a handler answering
    200 at once (what follows it in the chain: the connection, sending, the answer)."""

    name = AIOHTTP
    aio = True
    inputs = staticmethod(_aiohttp_requests)

    @property
    def ours(self) -> Callable[..., Any]:
        import oauth_cc_auth.aiohttp

        return oauth_cc_auth.aiohttp.ClientCredentialsAuth

    def token_client(self, endpoint: Emulator) -> dict[str, Any]:
        """``session=``: a token session on the same in-process connector."""
        return {"session": aiohttp_session(endpoint)}

    def api(self, auth: Any = None) -> Any:
        """A session for API requests, with *auth* as its middleware."""
        return aiohttp_session(middlewares=() if auth is None else (auth,))

    def request(self, api: Any, **options: Any) -> Callable[[], Any]:
        """One API request, its body read and the connection released, as users write it
        (``async with session.get(url) as response``)."""

        async def get() -> Any:
            async with api.get(API_URL, **options) as response:
                await response.read()
                return response

        return get

    def floor(self) -> tuple[Any, Callable[[], Any]]:
        """The floor: a session with a static ``Authorization`` among its default headers."""
        api = aiohttp_session(headers=_HEADERS)
        return api, self.request(api)

    def step(self, auth: Any) -> Callable[[Any], Awaitable[object]]:
        async def step(request: Any) -> object:
            return await auth(request, _aiohttp_handler)

        return step

    def close(self, *clients: Any) -> Callable[[], Awaitable[None]]:
        async def close() -> None:
            for client in clients:
                await client.close()

        return close


def _niquests_prepared(n: int) -> list[Any]:
    """Fresh niquests requests, each with hooks of its own (as for requests)."""
    import niquests
    from niquests.hooks import default_hooks as niquests_hooks

    base = niquests.Request("GET", API_URL).prepare()
    copies = [base.copy() for _ in range(n)]
    for copy in copies:
        copy.hooks = niquests_hooks()
    return copies


@functools.cache
def _niquests_response() -> Any:
    import niquests

    response = niquests.Response()
    response.status_code = 200
    response._content = b"{}"
    # As every answer of a connection has (urllib3's response); without one, niquests would
    # check on each attribute read whether it is a lazy (multiplexed) response.
    response.raw = memory_raw(b"")
    return response


@dataclasses.dataclass(frozen=True)
class NiquestsFlavour:
    """A niquests flavour, ``Session`` or ``AsyncSession`` (*aio*), answered by a mounted
    in-process adapter (:func:`transports.niquests_session`); requests' API, so the floor
    sets the header on each request. Its bare auth step is the auth call (awaited when
    niquests would await it: an ``async def __call__``) plus the response hooks it
    registered, dispatched as ``Session.send`` (``AsyncSession.send``) does."""

    name: str
    aio: bool
    inputs = staticmethod(_niquests_prepared)

    @property
    def ours(self) -> Callable[..., Any]:
        import oauth_cc_auth.niquests as ours

        return ours.AsyncClientCredentialsAuth if self.aio else ours.ClientCredentialsAuth

    def token_client(self, endpoint: Emulator) -> dict[str, Any]:
        return {"session": niquests_session(endpoint, aio=self.aio)}

    def api(self, auth: Any = None) -> Any:
        session = niquests_session(aio=self.aio)
        session.auth = auth
        return session

    request = RequestsFlavour.request
    floor = RequestsFlavour.floor

    def step(self, auth: Any) -> Callable[[Any], Any]:
        from niquests.hooks import async_dispatch_hook, dispatch_hook

        response = _niquests_response()
        if not self.aio:

            def step(r: Any) -> object:
                r = auth(r)
                response.request = r
                return dispatch_hook("response", r.hooks, response, **_SEND_KWARGS)

            return step
        awaited = inspect.iscoroutinefunction(type(auth).__call__)

        async def astep(r: Any) -> object:
            r = await auth(r) if awaited else auth(r)
            response.request = r
            return await async_dispatch_hook("response", r.hooks, response, **_SEND_KWARGS)

        return astep

    def close(self, *clients: Any) -> None:
        return None


def niquests_missing() -> str | None:
    """Why this package's niquests adapter cannot be measured, if it cannot."""
    try:
        import oauth_cc_auth.niquests  # noqa: F401
    except ImportError as exc:
        return f"`oauth_cc_auth.niquests` cannot be imported here ({exc})"
    return None


Flavour = RequestsFlavour | HttpxFlavour | AiohttpFlavour | NiquestsFlavour

_REQUESTS = RequestsFlavour()
_HTTPX = HttpxFlavour(HTTPX_SYNC, httpx, False, oauth_cc_auth.httpx.ClientCredentialsAuth)
_HTTPX2 = HttpxFlavour(HTTPX2_SYNC, httpx2, False, oauth_cc_auth.httpx2.ClientCredentialsAuth)
_HTTPX_ASYNC = dataclasses.replace(_HTTPX, name=HTTPX_ASYNC, aio=True)
_HTTPX2_ASYNC = dataclasses.replace(_HTTPX2, name=HTTPX2_ASYNC, aio=True)
_AIOHTTP = AiohttpFlavour()
_NIQUESTS = NiquestsFlavour(NIQUESTS_SYNC, False)
_NIQUESTS_ASYNC = NiquestsFlavour(NIQUESTS_ASYNC, True)
#: The flavours with shared-cache and DPoP rows.
_BASE_FLAVOURS: tuple[Flavour, ...] = (_REQUESTS, _HTTPX, _HTTPX2, _HTTPX_ASYNC, _HTTPX2_ASYNC)
#: The flavours in the order their implementations are listed: the sync ones first.
_FLAVOURS: tuple[Flavour, ...] = (
    _REQUESTS,
    _HTTPX,
    _HTTPX2,
    _NIQUESTS,
    _HTTPX_ASYNC,
    _HTTPX2_ASYNC,
    _AIOHTTP,
    _NIQUESTS_ASYNC,
)


def _attached(
    f: Flavour,
    auth: Any,
    expire: Callable[[], object] | None = None,
    shared_calls: Callable[[], int] | None = None,
    closing: Sequence[Any] = (),
) -> Setup:
    """*auth* on a client of flavour *f* for API requests; its first request gets a token.
    (*closing*: more clients for ``close()``, the token clients.)"""
    api = f.api(auth)
    request = f.request(api)
    return Setup(
        request=request,
        step=f.step(auth),
        inputs=f.inputs,
        prime=request,
        expire=expire,
        shared_calls=shared_calls,
        close=f.close(api, *closing),
    )


# -- the floor: a static Authorization header set on the request -----------------------------------


def _nothing() -> None:
    return None


async def _anothing() -> None:
    return None


def _set_header(request: Any) -> object:
    request.headers["Authorization"] = _STATIC
    return request


async def _aset_header(request: Any) -> object:
    request.headers["Authorization"] = _STATIC
    return request


def _floor(f: Flavour, endpoint: Emulator, expiring: bool) -> Setup:
    api, request = f.floor()
    step = _aset_header if f.aio else _set_header
    return Setup(
        request=request,
        step=step if f.inputs is not None else None,
        inputs=f.inputs or _no_inputs,
        prime=_anothing if f.aio else _nothing,
        close=f.close(api),
    )


def _no_inputs(n: int) -> list[None]:
    return [None] * n


async def _static_middleware(request: Any, handler: Any) -> Any:
    request.headers["Authorization"] = _STATIC
    return await handler(request)


def _static_auth(f: Flavour, endpoint: Emulator, expiring: bool) -> Setup:
    """The reference row: the static header set by an auth object (aiohttp: a middleware
    function; niquests: its own ``BearerTokenAuth``, what ``session.auth = "token"`` gives)."""
    if isinstance(f, AiohttpFlavour):
        auth: Any = _static_middleware
    else:
        from niquests.auth import BearerTokenAuth

        auth = BearerTokenAuth(_STATIC.removeprefix("Bearer "))
    api = f.api(auth)
    return Setup(
        request=f.request(api),
        step=f.step(auth),
        inputs=f.inputs or _no_inputs,
        prime=_anothing if f.aio else _nothing,
        close=f.close(api),
    )


# -- oauth_cc_auth ---------------------------------------------------------------------------------


def _our_auth(f: Flavour, endpoint: Emulator, client_id: str, **options: Any) -> Any:
    """This package's auth object for flavour *f*, its token client (``session=``,
    ``client=`` or ``async_client=``) answered by *endpoint*, which learns *client_id*."""
    register(endpoint, client_id)
    return f.ours(
        client_id, CLIENT_SECRET, token_url=TOKEN_URL, **f.token_client(endpoint), **options
    )


def _ours(f: Flavour, endpoint: Emulator, expiring: bool) -> Setup:
    clock = FakeClock()
    token_client = f.token_client(endpoint)
    register(endpoint, CLIENT_ID)
    auth = f.ours(
        CLIENT_ID,
        CLIENT_SECRET,
        token_url=TOKEN_URL,
        **token_client,
        cache=oauth_cc_auth.MemoryCache(),
        clock=clock if expiring else time.monotonic,
    )
    setup = _attached(
        f,
        auth,
        expire=(lambda: clock.advance(3600)) if expiring else None,
        closing=list(token_client.values()) if isinstance(f, AiohttpFlavour) else (),
    )
    if expiring:
        # 30 s before expiry: inside the refresh window (the last 60 s), the token valid.
        setup.due = lambda: clock.advance(3600 - 30)
    return setup


# -- oauth_cc_auth with a shared cache (file or Redis) behind its memory cache ---------------------
# The same auth objects as above, given a cache shared between processes. The memory cache
# stays in front, so a warm token should cost exactly what it costs without one. Each
# flavour has a client id of its own: its own memory-cache slot and shared-cache entry.


class CountingCache(TokenCache):
    """A shared cache that counts the calls made to it, and hands them to *inner*."""

    def __init__(self, inner: TokenCache) -> None:
        self.inner = inner
        self.lock_timeout = inner.lock_timeout
        self.calls: Counter[str] = Counter()

    @property
    def name(self) -> str:
        return self.inner.name

    def load(self, key: str) -> bytes | None:
        self.calls["load"] += 1
        return self.inner.load(key)

    def store(self, key: str, value: bytes, ttl: float | None) -> None:
        self.calls["store"] += 1
        self.inner.store(key, value, ttl)

    def try_lock(self, key: str, timeout: float) -> object | None:
        self.calls["lock"] += 1
        return self.inner.try_lock(key, timeout)

    def unlock(self, key: str, handle: object) -> None:
        self.calls["unlock"] += 1
        self.inner.unlock(key, handle)

    async def aload(self, key: str) -> bytes | None:
        self.calls["load"] += 1
        return await self.inner.aload(key)

    async def astore(self, key: str, value: bytes, ttl: float | None) -> None:
        self.calls["store"] += 1
        await self.inner.astore(key, value, ttl)

    async def atry_lock(self, key: str, timeout: float) -> object | None:
        self.calls["lock"] += 1
        return await self.inner.atry_lock(key, timeout)

    async def aunlock(self, key: str, handle: object) -> None:
        self.calls["unlock"] += 1
        await self.inner.aunlock(key, handle)

    def close(self) -> None:
        self.inner.close()

    def total(self) -> int:
        return sum(self.calls.values())


def shared_cache_impls(name: str, kind: str, cache: Callable[[], CountingCache]) -> list[Impl]:
    """oauth_cc_auth in every flavour with a new shared cache from *cache()* each, for the
    timings only; *kind* (``"file"``, ``"redis"``) goes into the client ids."""

    def build(f: Flavour, endpoint: Emulator, expiring: bool) -> Setup:
        shared = cache()
        client_id = f"{CLIENT_ID}-{kind}-{f.name.replace(' ', '-')}"
        auth = _our_auth(f, endpoint, client_id, cache=shared)
        return _attached(f, auth, shared_calls=shared.total)

    na = {"cold_na": "timings only", "expiry_na": "timings only"}
    return [Impl(name, f.name, functools.partial(build, f), **na) for f in _BASE_FLAVOURS]


# -- Authlib ---------------------------------------------------------------------------------------
# The documented client-credentials use: an OAuth2Session / OAuth2Client given the token
# endpoint and grant_type, one explicit fetch_token(), then automatic renewal on expiry.
# Its API requests go through the same session, with OAuth2Auth attached by request().
#
# Its httpx integration (authlib.integrations.httpx_client) is built on one library: since
# Authlib 1.9 on httpx2 whenever httpx2 is installed, on httpx (deprecated) otherwise. Its
# OAuth2Client is then an httpx2.Client, which takes httpx2 transports only.


@functools.cache
def authlib_httpx_library() -> str:
    """The library Authlib's httpx integration is built on: ``"httpx2"`` or ``"httpx"``.

    Read from Authlib's own compatibility module (``_compat.httpx2`` is the httpx module
    when Authlib fell back to it), else from the classes ``OAuth2Client`` derives from. The
    deprecation warning Authlib gives on its httpx fallback is silenced here, whatever the
    warning filters in force (``-W error`` included): the benchmark only asks which it is.
    """
    # Authlib's warning filter ("always" for its own deprecations) goes in first, outside the
    # block below, so that the block's "ignore" comes before it and it survives the block.
    import authlib.deprecate  # noqa: F401

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from authlib.integrations.httpx_client import _compat

            return str(_compat.httpx2.__name__)
        except (ImportError, AttributeError):  # another Authlib: ask the client class
            from authlib.integrations.httpx_client import OAuth2Client

            for base in OAuth2Client.__mro__:
                top = str(base.__module__).partition(".")[0]
                if top in ("httpx", "httpx2"):
                    return top
    raise RuntimeError("Authlib's OAuth2Client is neither an httpx nor an httpx2 client")


def _authlib_in(f: Flavour) -> bool:
    """Whether Authlib has flavour *f*: requests, or the library its httpx client is on."""
    if isinstance(f, HttpxFlavour):
        return f.lib.__name__ == authlib_httpx_library()
    return f is _REQUESTS


def _authlib_elsewhere() -> str:
    """Why Authlib is not in the flavours of the other library."""
    version = metadata.version("Authlib")
    if authlib_httpx_library() == "httpx2":
        release = ".".join(version.split(".")[:2])
        return (
            f"Authlib {release} uses httpx2 when it is installed: its `OAuth2Client` and "
            "`AsyncOAuth2Client` are httpx2 clients (see the httpx2 columns)."
        )
    return f"Authlib {version}'s httpx integration is built on httpx, not httpx2."


def _expire_authlib(client: Any) -> None:
    client.token["expires_at"] = int(time.time()) - 3600


def _authlib_step(client: Any, sign: Callable[[Any], object]) -> Callable[[Any], object]:
    from authlib.integrations.base_client import InvalidTokenError

    def step(request: Any) -> object:
        # What OAuth2Client.request does before handing OAuth2Auth to the library.
        if not client.ensure_active_token(client.token):
            raise InvalidTokenError()
        return sign(request)

    return step


def _authlib_astep(
    client: Any, sign: Callable[[Any], Awaitable[object]]
) -> Callable[[Any], Awaitable[object]]:
    async def step(request: Any) -> object:
        # What AsyncOAuth2Client.request does before handing OAuth2Auth to the library.
        await client.ensure_active_token(client.token)
        return await sign(request)

    return step


def _authlib(f: Flavour, endpoint: Emulator, expiring: bool) -> Setup:
    client: Any
    if isinstance(f, HttpxFlavour):
        from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuth2Client

        # An httpx2.Client (or httpx.Client): the transport is of the library it is built on.
        client = (AsyncOAuth2Client if f.aio else OAuth2Client)(
            CLIENT_ID,
            CLIENT_SECRET,
            token_endpoint=TOKEN_URL,
            grant_type="client_credentials",
            transport=f.transport(endpoint),
        )
        sign = f.step(client.token_auth)
        step = _authlib_astep(client, sign) if f.aio else _authlib_step(client, sign)
    else:
        from authlib.integrations.requests_client import OAuth2Session

        client = OAuth2Session(
            CLIENT_ID, CLIENT_SECRET, token_endpoint=TOKEN_URL, grant_type="client_credentials"
        )
        requests_session(endpoint, client)
        # OAuth2Auth.__call__ checks expiry itself (ensure_active_token), then signs.
        step = f.step(client.token_auth)
    return Setup(
        request=lambda: client.get(API_URL),
        step=step,
        inputs=f.inputs,
        prime=client.fetch_token,
        expire=lambda: _expire_authlib(client),
    )


# -- requests-oauthlib -----------------------------------------------------------------------------


def _requests_oauthlib(f: Flavour, endpoint: Emulator, expiring: bool) -> Setup:
    from oauthlib.oauth2 import BackendApplicationClient
    from requests_oauthlib import OAuth2, OAuth2Session

    client = BackendApplicationClient(client_id=CLIENT_ID)
    session = OAuth2Session(client=client)
    requests_session(endpoint, session)
    auth = OAuth2(client=client)

    def prime() -> object:
        return session.fetch_token(
            token_url=TOKEN_URL, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
        )

    def expire() -> None:
        session.token = {**session.token, "expires_at": time.time() - 3600}

    return Setup(
        request=lambda: session.get(API_URL),
        # OAuth2Session.request signs with the same client.add_token as this AuthBase.
        step=f.step(auth),
        inputs=f.inputs,
        prime=prime,
        expire=expire,
    )


# -- requests-oauth2client -------------------------------------------------------------------------


def _requests_oauth2client(f: Flavour, endpoint: Emulator, expiring: bool) -> Setup:
    from requests_oauth2client import BearerToken, OAuth2Client, OAuth2ClientCredentialsAuth

    client = OAuth2Client(
        token_endpoint=TOKEN_URL,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        session=requests_session(endpoint),
    )
    auth = OAuth2ClientCredentialsAuth(client)

    def expire() -> None:
        token = auth.token
        assert token is not None  # noqa: S101 - primed before
        auth.token = BearerToken(
            token.access_token, expires_at=datetime.now(UTC) - timedelta(hours=1)
        )

    return _attached(f, auth, expire=expire)


# -- requests-auth and httpx-auth ------------------------------------------------------------------
# Both keep tokens in one process-wide cache (OAuth2.token_cache) keyed by a hash of the token
# URL and request fields: it is cleared whenever an instance is built, so that runs do not
# share tokens.


def _expire_in_cache(cache: Any, key: str) -> None:
    entry = cache.tokens[key]
    cache.tokens[key] = (entry[0], time.time() - 3600, *entry[2:])


def _requests_auth(f: Flavour, endpoint: Emulator, expiring: bool) -> Setup:
    import requests_auth

    cache: Any = requests_auth.OAuth2.token_cache
    cache.clear()
    auth = requests_auth.OAuth2ClientCredentials(
        TOKEN_URL, CLIENT_ID, CLIENT_SECRET, session=requests_session(endpoint)
    )
    return _attached(f, auth, expire=lambda: _expire_in_cache(cache, auth.state))


def _httpx_auth(f: Flavour, endpoint: Emulator, expiring: bool) -> Setup:
    import httpx_auth

    cache: Any = httpx_auth.OAuth2.token_cache
    cache.clear()
    # httpx-auth requests tokens with a sync httpx.Client only, also under AsyncClient.
    # An httpx library: httpx.Auth only, so no httpx2 flavour.
    auth = httpx_auth.OAuth2ClientCredentials(
        TOKEN_URL, CLIENT_ID, CLIENT_SECRET, client=_HTTPX.client(endpoint)
    )
    return _attached(f, auth, expire=lambda: _expire_in_cache(cache, auth.state))


# -- aiohttp-oauth2-client -------------------------------------------------------------------------
# Its documented use: ClientSession(middlewares=(OAuth2Middleware(grant),)) with a
# ClientCredentialsGrant. The grant opens an aiohttp.ClientSession of its own for token
# requests (grant.session, made in its __init__, no way to pass one): replaced here by one on
# the same in-process connector, the original closed unused. It fetches its first token by
# itself, behind an asyncio.Lock (also held to check expiry on every request).


def _aiohttp_oauth2_client(f: Flavour, endpoint: Emulator, expiring: bool) -> Setup:
    from aiohttp_oauth2_client.grant.client_credentials import ClientCredentialsGrant
    from aiohttp_oauth2_client.middleware import OAuth2Middleware

    grant = ClientCredentialsGrant(TOKEN_URL, CLIENT_ID, CLIENT_SECRET)
    unused, grant.session = grant.session, aiohttp_session(endpoint)
    closing = asyncio.ensure_future(unused.close())

    def expire() -> None:
        grant.token.expires_at = int(time.time()) - 3600

    setup = _attached(f, OAuth2Middleware(grant), expire=expire, closing=[grant.session])
    _KEEP.add(closing)
    closing.add_done_callback(_KEEP.discard)
    return setup


#: Tasks that must not be collected before they are done.
_KEEP: set[asyncio.Future[Any]] = set()


# -- DPoP (RFC 9449): a proof signed per request -------------------------------------------------
# The token endpoint answers token_type "DPoP" (a reply scripted for the first token request;
# the timings make no other), and the API answers a constant 200 whatever the token and proof:
# what is timed is the client's work, the proof it signs for every request included.

DPOP_TOKEN = "dpop-token-1"  # noqa: S105 - a made-up token


def _dpop_endpoint(endpoint: Emulator) -> None:
    """Make *endpoint*'s next token answer a DPoP-bound token."""
    endpoint.answer_next(
        Reply(json={"access_token": DPOP_TOKEN, "token_type": "DPoP", "expires_in": 3600})
    )


def _ours_dpop(f: Flavour, endpoint: Emulator, expiring: bool) -> Setup:
    _dpop_endpoint(endpoint)
    auth = _our_auth(f, endpoint, CLIENT_ID, cache=oauth_cc_auth.MemoryCache(), dpop=True)
    return dataclasses.replace(_attached(f, auth), signs=True)


def _requests_oauth2client_dpop(f: Flavour, endpoint: Emulator, expiring: bool) -> Setup:
    from requests_oauth2client import OAuth2Client, OAuth2ClientCredentialsAuth

    _dpop_endpoint(endpoint)
    client = OAuth2Client(
        token_endpoint=TOKEN_URL,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        session=requests_session(endpoint),
        dpop_bound_access_tokens=True,  # a fresh ES256 key per token request
    )
    return dataclasses.replace(_attached(f, OAuth2ClientCredentialsAuth(client)), signs=True)


def _proof_only(f: Flavour, proof: Callable[[], object]) -> Setup:
    """A setup timing *proof()* alone, in the bare auth-step rounds of flavour *f* (in an
    async flavour, called by a coroutine, as an async auth flow would)."""

    async def aproof(_: object) -> object:
        return proof()

    def sproof(_: object) -> object:
        return proof()

    return Setup(
        request=None,
        step=aproof if f.aio else sproof,
        inputs=lambda n: [None] * n,
        prime=_anothing if f.aio else _nothing,
        signs=True,
    )


def _proof_ours(f: Flavour, endpoint: Emulator, expiring: bool) -> Setup:
    from oauth_cc_auth._dpop import DPoPKey

    key = DPoPKey.generate()
    # What an API request's proof is: method, URL and the token's hash (ath).
    return _proof_only(f, lambda: key.proof("GET", API_URL, DPOP_TOKEN))


def _proof_requests_oauth2client(f: Flavour, endpoint: Emulator, expiring: bool) -> Setup:
    from binapy import BinaPy
    from requests_oauth2client import DPoPKey

    key = DPoPKey.generate()

    def proof() -> str:
        # What its add_dpop_proof() computes for an API request: ath, the proof, its text.
        ath = BinaPy(DPOP_TOKEN).to("sha256").to("b64u").decode()
        return str(key.proof(htm="GET", htu=API_URL, ath=ath))

    return _proof_only(f, proof)


def dpop_impls() -> list[Impl]:
    """The DPoP rows of the timings: oauth_cc_auth with ``dpop=True`` in every flavour,
    requests-oauth2client with ``dpop_bound_access_tokens=True`` (requests), and a proof
    alone of each (oauth_cc_auth's in every flavour, requests-oauth2client's in requests)."""
    na = {"cold_na": "timings only", "expiry_na": "timings only"}
    impls: list[Impl] = []
    for f in _BASE_FLAVOURS:

        def impl(name: str, build: Callable[..., Setup], f: Flavour = f, **options: str) -> Impl:
            return Impl(name, f.name, functools.partial(build, f), **na, **options)

        impls += [impl(OURS_DPOP, _ours_dpop, scheme="DPoP"), impl(PROOF_OURS, _proof_ours)]
        if f is _REQUESTS:
            impls += [
                impl(REQUESTS_OAUTH2CLIENT_DPOP, _requests_oauth2client_dpop, scheme="DPoP"),
                impl(PROOF_REQUESTS_OAUTH2CLIENT, _proof_requests_oauth2client),
            ]
    return impls


# -- the registry ----------------------------------------------------------------------------------


def _impls_in(f: Flavour) -> list[Impl]:
    """The implementations in flavour *f*: the floor, this package, then the peers."""

    def impl(name: str, build: Callable[..., Setup], **options: str) -> Impl:
        return Impl(name, f.name, functools.partial(build, f), **options)

    impls = [impl(FLOOR, _floor, cold_na="no token", expiry_na="no token")]
    if not (isinstance(f, NiquestsFlavour) and niquests_missing()):
        impls.append(impl(OURS, _ours))
    if _authlib_in(f):
        impls.append(impl(AUTHLIB, _authlib, cold_na=NO_FIRST_FETCH))
    if f is _REQUESTS:
        impls += [
            impl(REQUESTS_OAUTHLIB, _requests_oauthlib, cold_na=UNSIGNED_UNTIL_FETCH),
            impl(REQUESTS_OAUTH2CLIENT, _requests_oauth2client),
            impl(REQUESTS_AUTH, _requests_auth),
        ]
    elif f is _HTTPX:
        impls.append(impl(HTTPX_AUTH, _httpx_auth))
    elif f is _HTTPX_ASYNC:
        note = (
            "its token requests block the event loop (a sync httpx.Client, also under "
            "AsyncClient): the other tasks cannot run meanwhile"
        )
        impls.append(impl(HTTPX_AUTH, _httpx_auth, note=note))
    elif f is _AIOHTTP:
        impls.append(impl(AIOHTTP_OAUTH2_CLIENT, _aiohttp_oauth2_client))
    if isinstance(f, AiohttpFlavour | NiquestsFlavour):
        impls.append(impl(STATIC_AUTH, _static_auth, cold_na="no token", expiry_na="no token"))
    return impls


def all_impls() -> list[Impl]:
    """Every implementation, the sync flavours' first."""
    return [impl for f in _FLAVOURS for impl in _impls_in(f)]


def absent() -> dict[str, dict[str, str]]:
    """flavour -> implementation -> why it is not in that flavour, where the tables should
    say so ("n/a") rather than leave the cell empty: Authlib in the library it is not built
    on."""
    why = _authlib_elsewhere()
    out = {
        f.name: {AUTHLIB: why}
        for f in _FLAVOURS
        if isinstance(f, HttpxFlavour) and not _authlib_in(f)
    }
    missing = niquests_missing()
    if missing is not None:
        for f in (_NIQUESTS, _NIQUESTS_ASYNC):
            out.setdefault(f.name, {})[OURS] = missing
    return out
