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

Where a library cannot do a thing at all (for example fetch its first token by itself),
the implementation says so with a reason, shown as "n/a" in the tables.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import requests
from requests.hooks import default_hooks, dispatch_hook
from transports import (
    API_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    TOKEN_URL,
    TokenEndpoint,
    async_handler,
    requests_session,
    sync_handler,
)

import oauth_cc_auth
import oauth_cc_auth.httpx
import oauth_cc_auth.requests
from oauth_cc_auth import TokenCache
from oauth_cc_auth.testing import FakeClock

__all__ = [
    "AUTHLIB",
    "FLAVOURS",
    "FLOOR",
    "HTTPX_AUTH",
    "OURS",
    "OURS_FILE",
    "OURS_REDIS",
    "REQUESTS_AUTH",
    "REQUESTS_OAUTH2CLIENT",
    "REQUESTS_OAUTHLIB",
    "AsyncImpl",
    "AsyncSetup",
    "CountingCache",
    "SyncImpl",
    "SyncSetup",
    "async_impls",
    "shared_cache_impls",
    "sync_impls",
]

REQUESTS = "requests"
HTTPX_SYNC = "httpx sync"
HTTPX_ASYNC = "httpx async"
FLAVOURS = (REQUESTS, HTTPX_SYNC, HTTPX_ASYNC)

FLOOR = "floor (static header)"
OURS = "oauth_cc_auth"
OURS_FILE = "oauth_cc_auth, file cache"
OURS_REDIS = "oauth_cc_auth, Redis cache"
AUTHLIB = "Authlib"
REQUESTS_OAUTHLIB = "requests-oauthlib"
REQUESTS_OAUTH2CLIENT = "requests-oauth2client"
REQUESTS_AUTH = "requests-auth"
HTTPX_AUTH = "httpx-auth"

_STATIC = "Bearer static-token"
_HEADERS = {"Authorization": _STATIC}

NO_FIRST_FETCH = "no automatic first token: call fetch_token() before the first request"


def _nothing() -> None:
    return None


async def _anothing() -> None:
    return None


@dataclasses.dataclass
class SyncSetup:
    """One ready instance of a sync implementation."""

    request: Callable[[], object]
    step: Callable[[Any], object] | None
    inputs: Callable[[int], Sequence[Any]]
    prime: Callable[[], object]
    expire: Callable[[], object] | None = None
    shared_calls: Callable[[], int] | None = None


@dataclasses.dataclass
class AsyncSetup:
    """One ready instance of an async implementation (built inside the running loop)."""

    request: Callable[[], Awaitable[object]]
    step: Callable[[Any], Awaitable[object]] | None
    inputs: Callable[[int], Sequence[Any]]
    prime: Callable[[], Awaitable[object]]
    expire: Callable[[], object] | None = None
    shared_calls: Callable[[], int] | None = None


@dataclasses.dataclass(frozen=True)
class SyncImpl:
    """An implementation in a sync flavour.

    ``build(endpoint, expiring)`` makes a setup whose tokens come from *endpoint*; with
    *expiring* its ``expire()`` works (oauth_cc_auth then runs on a ``FakeClock``; the
    timings use its default clock, ``time.monotonic``, as users do).
    """

    name: str
    flavour: str
    build: Callable[[TokenEndpoint, bool], SyncSetup]
    #: Why the cold-start case cannot be run, if it cannot.
    cold_na: str | None = None
    #: Why the expiry case cannot be run, if it cannot.
    expiry_na: str | None = None
    note: str | None = None


@dataclasses.dataclass(frozen=True)
class AsyncImpl:
    """An implementation in the async flavour; *build* is awaited inside the event loop."""

    name: str
    flavour: str
    build: Callable[[TokenEndpoint, bool], Awaitable[AsyncSetup]]
    cold_na: str | None = None
    expiry_na: str | None = None
    note: str | None = None


# -- inputs of the bare auth step ------------------------------------------------------------------


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


_HTTPX_REQUEST = httpx.Request("GET", API_URL)
_HTTPX_RESPONSE = httpx.Response(200, request=_HTTPX_REQUEST)


def _httpx_requests(n: int) -> list[httpx.Request]:
    # One request serves all calls: auth flows only set its Authorization header.
    return [_HTTPX_REQUEST] * n


def _httpx_step(auth: httpx.Auth) -> Callable[[httpx.Request], object]:
    """``auth.sync_auth_flow`` driven as ``httpx.Client`` drives it, on a 200 answer."""

    def step(request: httpx.Request) -> object:
        flow = auth.sync_auth_flow(request)
        sent = next(flow)
        try:
            flow.send(_HTTPX_RESPONSE)
        except StopIteration:
            return sent
        raise RuntimeError("the auth flow sent a second request")

    return step


def _httpx_astep(auth: httpx.Auth) -> Callable[[httpx.Request], Awaitable[object]]:
    """``auth.async_auth_flow`` driven as ``httpx.AsyncClient`` drives it, on a 200 answer."""

    async def step(request: httpx.Request) -> object:
        flow = auth.async_auth_flow(request)
        sent = await flow.__anext__()
        try:
            await flow.asend(_HTTPX_RESPONSE)
        except StopAsyncIteration:
            return sent
        raise RuntimeError("the auth flow sent a second request")

    return step


def _set_header_requests(r: requests.PreparedRequest) -> object:
    r.headers["Authorization"] = _STATIC
    return r


def _set_header_httpx(request: httpx.Request) -> object:
    request.headers["Authorization"] = _STATIC
    return request


async def _aset_header_httpx(request: httpx.Request) -> object:
    request.headers["Authorization"] = _STATIC
    return request


# -- the floor: a static Authorization header set on the request -----------------------------------


def _floor_requests(endpoint: TokenEndpoint, expiring: bool) -> SyncSetup:
    api = requests_session()
    return SyncSetup(
        request=lambda: api.get(API_URL, headers=_HEADERS),
        step=_set_header_requests,
        inputs=_prepared_requests,
        prime=_nothing,
    )


def _floor_httpx(endpoint: TokenEndpoint, expiring: bool) -> SyncSetup:
    api = httpx.Client(transport=httpx.MockTransport(sync_handler()))
    return SyncSetup(
        request=lambda: api.get(API_URL, headers=_HEADERS),
        step=_set_header_httpx,
        inputs=_httpx_requests,
        prime=_nothing,
    )


async def _floor_httpx_async(endpoint: TokenEndpoint, expiring: bool) -> AsyncSetup:
    api = httpx.AsyncClient(transport=httpx.MockTransport(async_handler()))
    return AsyncSetup(
        request=lambda: api.get(API_URL, headers=_HEADERS),
        step=_aset_header_httpx,
        inputs=_httpx_requests,
        prime=_anothing,
    )


# -- oauth_cc_auth ---------------------------------------------------------------------------------


def _ours_requests(endpoint: TokenEndpoint, expiring: bool) -> SyncSetup:
    clock = FakeClock()
    auth = oauth_cc_auth.requests.ClientCredentialsAuth(
        CLIENT_ID,
        CLIENT_SECRET,
        token_url=TOKEN_URL,
        session=requests_session(endpoint),
        cache=oauth_cc_auth.MemoryCache(),
        clock=clock if expiring else time.monotonic,
    )
    api = requests_session()
    api.auth = auth
    return SyncSetup(
        request=lambda: api.get(API_URL),
        step=_requests_step(auth),
        inputs=_prepared_requests,
        prime=lambda: api.get(API_URL),
        expire=(lambda: clock.advance(3600)) if expiring else None,
    )


def _ours_httpx(endpoint: TokenEndpoint, expiring: bool) -> SyncSetup:
    clock = FakeClock()
    auth = oauth_cc_auth.httpx.ClientCredentialsAuth(
        CLIENT_ID,
        CLIENT_SECRET,
        token_url=TOKEN_URL,
        client=httpx.Client(transport=httpx.MockTransport(sync_handler(endpoint))),
        cache=oauth_cc_auth.MemoryCache(),
        clock=clock if expiring else time.monotonic,
    )
    api = httpx.Client(transport=httpx.MockTransport(sync_handler()), auth=auth)
    return SyncSetup(
        request=lambda: api.get(API_URL),
        step=_httpx_step(auth),
        inputs=_httpx_requests,
        prime=lambda: api.get(API_URL),
        expire=(lambda: clock.advance(3600)) if expiring else None,
    )


async def _ours_httpx_async(endpoint: TokenEndpoint, expiring: bool) -> AsyncSetup:
    clock = FakeClock()
    auth = oauth_cc_auth.httpx.ClientCredentialsAuth(
        CLIENT_ID,
        CLIENT_SECRET,
        token_url=TOKEN_URL,
        async_client=httpx.AsyncClient(transport=httpx.MockTransport(async_handler(endpoint))),
        cache=oauth_cc_auth.MemoryCache(),
        clock=clock if expiring else time.monotonic,
    )
    api = httpx.AsyncClient(transport=httpx.MockTransport(async_handler()), auth=auth)
    return AsyncSetup(
        request=lambda: api.get(API_URL),
        step=_httpx_astep(auth),
        inputs=_httpx_requests,
        prime=lambda: api.get(API_URL),
        expire=(lambda: clock.advance(3600)) if expiring else None,
    )


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


def shared_cache_impls(
    name: str, kind: str, cache: Callable[[], CountingCache]
) -> tuple[list[SyncImpl], list[AsyncImpl]]:
    """oauth_cc_auth in every flavour with a new shared cache from *cache()* each, for the
    timings only; *kind* (``"file"``, ``"redis"``) goes into the client ids."""

    def client_id(flavour: str) -> str:
        return f"{CLIENT_ID}-{kind}-{flavour.replace(' ', '-')}"

    def requests_build(endpoint: TokenEndpoint, expiring: bool) -> SyncSetup:
        shared = cache()
        auth = oauth_cc_auth.requests.ClientCredentialsAuth(
            client_id(REQUESTS),
            CLIENT_SECRET,
            token_url=TOKEN_URL,
            session=requests_session(endpoint),
            cache=shared,
        )
        api = requests_session()
        api.auth = auth
        return SyncSetup(
            request=lambda: api.get(API_URL),
            step=_requests_step(auth),
            inputs=_prepared_requests,
            prime=lambda: api.get(API_URL),
            shared_calls=shared.total,
        )

    def httpx_build(endpoint: TokenEndpoint, expiring: bool) -> SyncSetup:
        shared = cache()
        auth = oauth_cc_auth.httpx.ClientCredentialsAuth(
            client_id(HTTPX_SYNC),
            CLIENT_SECRET,
            token_url=TOKEN_URL,
            client=httpx.Client(transport=httpx.MockTransport(sync_handler(endpoint))),
            cache=shared,
        )
        api = httpx.Client(transport=httpx.MockTransport(sync_handler()), auth=auth)
        return SyncSetup(
            request=lambda: api.get(API_URL),
            step=_httpx_step(auth),
            inputs=_httpx_requests,
            prime=lambda: api.get(API_URL),
            shared_calls=shared.total,
        )

    async def httpx_async_build(endpoint: TokenEndpoint, expiring: bool) -> AsyncSetup:
        shared = cache()
        auth = oauth_cc_auth.httpx.ClientCredentialsAuth(
            client_id(HTTPX_ASYNC),
            CLIENT_SECRET,
            token_url=TOKEN_URL,
            async_client=httpx.AsyncClient(transport=httpx.MockTransport(async_handler(endpoint))),
            cache=shared,
        )
        api = httpx.AsyncClient(transport=httpx.MockTransport(async_handler()), auth=auth)
        return AsyncSetup(
            request=lambda: api.get(API_URL),
            step=_httpx_astep(auth),
            inputs=_httpx_requests,
            prime=lambda: api.get(API_URL),
            shared_calls=shared.total,
        )

    timing_only = "timings only"
    return (
        [
            SyncImpl(name, REQUESTS, requests_build, cold_na=timing_only, expiry_na=timing_only),
            SyncImpl(name, HTTPX_SYNC, httpx_build, cold_na=timing_only, expiry_na=timing_only),
        ],
        [
            AsyncImpl(
                name, HTTPX_ASYNC, httpx_async_build, cold_na=timing_only, expiry_na=timing_only
            )
        ],
    )


# -- Authlib ---------------------------------------------------------------------------------------
# The documented client-credentials use: an OAuth2Session / OAuth2Client given the token
# endpoint and grant_type, one explicit fetch_token(), then automatic renewal on expiry.
# Its API requests go through the same session, with OAuth2Auth attached by request().


def _expire_authlib(client: Any) -> None:
    client.token["expires_at"] = int(time.time()) - 3600


def _authlib_requests(endpoint: TokenEndpoint, expiring: bool) -> SyncSetup:
    from authlib.integrations.requests_client import OAuth2Session

    session = OAuth2Session(
        CLIENT_ID, CLIENT_SECRET, token_endpoint=TOKEN_URL, grant_type="client_credentials"
    )
    requests_session(endpoint, session)
    return SyncSetup(
        request=lambda: session.get(API_URL),
        # OAuth2Auth.__call__ checks expiry itself (ensure_active_token), then signs.
        step=_requests_step(session.token_auth),
        inputs=_prepared_requests,
        prime=session.fetch_token,
        expire=lambda: _expire_authlib(session),
    )


def _authlib_httpx(endpoint: TokenEndpoint, expiring: bool) -> SyncSetup:
    from authlib.integrations.base_client import InvalidTokenError
    from authlib.integrations.httpx_client import OAuth2Client

    client = OAuth2Client(
        CLIENT_ID,
        CLIENT_SECRET,
        token_endpoint=TOKEN_URL,
        grant_type="client_credentials",
        transport=httpx.MockTransport(sync_handler(endpoint)),
    )
    sign = _httpx_step(client.token_auth)

    def step(request: httpx.Request) -> object:
        # What OAuth2Client.request does before handing OAuth2Auth to httpx.
        if not client.ensure_active_token(client.token):
            raise InvalidTokenError()
        return sign(request)

    return SyncSetup(
        request=lambda: client.get(API_URL),
        step=step,
        inputs=_httpx_requests,
        prime=client.fetch_token,
        expire=lambda: _expire_authlib(client),
    )


async def _authlib_httpx_async(endpoint: TokenEndpoint, expiring: bool) -> AsyncSetup:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    client = AsyncOAuth2Client(
        CLIENT_ID,
        CLIENT_SECRET,
        token_endpoint=TOKEN_URL,
        grant_type="client_credentials",
        transport=httpx.MockTransport(async_handler(endpoint)),
    )
    sign = _httpx_astep(client.token_auth)

    async def step(request: httpx.Request) -> object:
        # What AsyncOAuth2Client.request does before handing OAuth2Auth to httpx.
        await client.ensure_active_token(client.token)
        return await sign(request)

    return AsyncSetup(
        request=lambda: client.get(API_URL),
        step=step,
        inputs=_httpx_requests,
        prime=client.fetch_token,
        expire=lambda: _expire_authlib(client),
    )


# -- requests-oauthlib -----------------------------------------------------------------------------


def _requests_oauthlib(endpoint: TokenEndpoint, expiring: bool) -> SyncSetup:
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

    return SyncSetup(
        request=lambda: session.get(API_URL),
        # OAuth2Session.request signs with the same client.add_token as this AuthBase.
        step=_requests_step(auth),
        inputs=_prepared_requests,
        prime=prime,
        expire=expire,
    )


# -- requests-oauth2client -------------------------------------------------------------------------


def _requests_oauth2client(endpoint: TokenEndpoint, expiring: bool) -> SyncSetup:
    from requests_oauth2client import BearerToken, OAuth2Client, OAuth2ClientCredentialsAuth

    client = OAuth2Client(
        token_endpoint=TOKEN_URL,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        session=requests_session(endpoint),
    )
    auth = OAuth2ClientCredentialsAuth(client)
    api = requests_session()
    api.auth = auth

    def expire() -> None:
        token = auth.token
        assert token is not None  # noqa: S101 - primed before
        auth.token = BearerToken(
            token.access_token, expires_at=datetime.now(UTC) - timedelta(hours=1)
        )

    return SyncSetup(
        request=lambda: api.get(API_URL),
        step=_requests_step(auth),
        inputs=_prepared_requests,
        prime=lambda: api.get(API_URL),
        expire=expire,
    )


# -- requests-auth and httpx-auth ------------------------------------------------------------------
# Both keep tokens in one process-wide cache (OAuth2.token_cache) keyed by a hash of the token
# URL and request fields: it is cleared whenever an instance is built, so that runs do not
# share tokens.


def _expire_in_cache(cache: Any, key: str) -> None:
    entry = cache.tokens[key]
    cache.tokens[key] = (entry[0], time.time() - 3600, *entry[2:])


def _requests_auth(endpoint: TokenEndpoint, expiring: bool) -> SyncSetup:
    import requests_auth

    cache: Any = requests_auth.OAuth2.token_cache
    cache.clear()
    auth = requests_auth.OAuth2ClientCredentials(
        TOKEN_URL, CLIENT_ID, CLIENT_SECRET, session=requests_session(endpoint)
    )
    api = requests_session()
    api.auth = auth
    return SyncSetup(
        request=lambda: api.get(API_URL),
        step=_requests_step(auth),
        inputs=_prepared_requests,
        prime=lambda: api.get(API_URL),
        expire=lambda: _expire_in_cache(cache, auth.state),
    )


def _httpx_auth(endpoint: TokenEndpoint) -> tuple[Any, Callable[[], None]]:
    import httpx_auth

    httpx_auth.OAuth2.token_cache.clear()
    # httpx-auth requests tokens with a sync httpx.Client only, also under AsyncClient.
    auth = httpx_auth.OAuth2ClientCredentials(
        TOKEN_URL,
        CLIENT_ID,
        CLIENT_SECRET,
        client=httpx.Client(transport=httpx.MockTransport(sync_handler(endpoint))),
    )
    return auth, lambda: _expire_in_cache(httpx_auth.OAuth2.token_cache, auth.state)


def _httpx_auth_sync(endpoint: TokenEndpoint, expiring: bool) -> SyncSetup:
    auth, expire = _httpx_auth(endpoint)
    api = httpx.Client(transport=httpx.MockTransport(sync_handler()), auth=auth)
    return SyncSetup(
        request=lambda: api.get(API_URL),
        step=_httpx_step(auth),
        inputs=_httpx_requests,
        prime=lambda: api.get(API_URL),
        expire=expire,
    )


async def _httpx_auth_async(endpoint: TokenEndpoint, expiring: bool) -> AsyncSetup:
    auth, expire = _httpx_auth(endpoint)
    api = httpx.AsyncClient(transport=httpx.MockTransport(async_handler()), auth=auth)
    return AsyncSetup(
        request=lambda: api.get(API_URL),
        step=_httpx_astep(auth),
        inputs=_httpx_requests,
        prime=lambda: api.get(API_URL),
        expire=expire,
    )


# -- the registry ----------------------------------------------------------------------------------


def sync_impls() -> list[SyncImpl]:
    """The sync implementations, floor first, then this package, then the peers."""
    return [
        SyncImpl(FLOOR, REQUESTS, _floor_requests, cold_na="no token", expiry_na="no token"),
        SyncImpl(OURS, REQUESTS, _ours_requests),
        SyncImpl(AUTHLIB, REQUESTS, _authlib_requests, cold_na=NO_FIRST_FETCH),
        SyncImpl(
            REQUESTS_OAUTHLIB,
            REQUESTS,
            _requests_oauthlib,
            cold_na="no automatic first token: requests go out without one until fetch_token()",
        ),
        SyncImpl(REQUESTS_OAUTH2CLIENT, REQUESTS, _requests_oauth2client),
        SyncImpl(REQUESTS_AUTH, REQUESTS, _requests_auth),
        SyncImpl(FLOOR, HTTPX_SYNC, _floor_httpx, cold_na="no token", expiry_na="no token"),
        SyncImpl(OURS, HTTPX_SYNC, _ours_httpx),
        SyncImpl(AUTHLIB, HTTPX_SYNC, _authlib_httpx, cold_na=NO_FIRST_FETCH),
        SyncImpl(HTTPX_AUTH, HTTPX_SYNC, _httpx_auth_sync),
    ]


def async_impls() -> list[AsyncImpl]:
    """The async implementations (httpx ``AsyncClient``), floor first."""
    return [
        AsyncImpl(FLOOR, HTTPX_ASYNC, _floor_httpx_async, cold_na="no token", expiry_na="no token"),
        AsyncImpl(OURS, HTTPX_ASYNC, _ours_httpx_async),
        AsyncImpl(AUTHLIB, HTTPX_ASYNC, _authlib_httpx_async, cold_na=NO_FIRST_FETCH),
        AsyncImpl(
            HTTPX_AUTH,
            HTTPX_ASYNC,
            _httpx_auth_async,
            note="its token requests block the event loop (a sync httpx.Client, also under "
            "AsyncClient): the other tasks cannot run meanwhile",
        ),
    ]
