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

httpx and httpx2 (its successor: the same API under a new module name, with classes of its
own) each have a sync and an async flavour, built by the same code given the library
(:class:`HttpxFamily`). Authlib's httpx integration is built on one of them, httpx2 when it
is installed (:func:`authlib_httpx_library`): Authlib appears in that library's flavours,
and is "n/a" in the other's (:func:`absent`).
"""

from __future__ import annotations

import dataclasses
import functools
import time
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
    TokenEndpoint,
    async_handler,
    requests_session,
    sync_handler,
)

import oauth_cc_auth
import oauth_cc_auth.httpx
import oauth_cc_auth.httpx2
import oauth_cc_auth.requests
from oauth_cc_auth import TokenCache
from oauth_cc_auth.testing import FakeClock

__all__ = [
    "ASYNC_FLAVOURS",
    "AUTHLIB",
    "FAMILIES",
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
    "absent",
    "async_impls",
    "authlib_httpx_library",
    "shared_cache_impls",
    "sync_impls",
]

REQUESTS = "requests"
HTTPX_SYNC = "httpx sync"
HTTPX_ASYNC = "httpx async"
HTTPX2_SYNC = "httpx2 sync"
HTTPX2_ASYNC = "httpx2 async"
#: Every flavour, in the order of the tables' columns.
FLAVOURS = (REQUESTS, HTTPX_SYNC, HTTPX_ASYNC, HTTPX2_SYNC, HTTPX2_ASYNC)
#: The flavours whose requests are asyncio tasks (the others: threads).
ASYNC_FLAVOURS = (HTTPX_ASYNC, HTTPX2_ASYNC)

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


@dataclasses.dataclass(frozen=True)
class HttpxFamily:
    """httpx or httpx2: the library, its two flavours, this package's auth class for it, and
    the request and 200 answer the bare auth step is driven with."""

    lib: ModuleType
    sync: str
    aio: str
    #: ``oauth_cc_auth.httpx.ClientCredentialsAuth`` or ``oauth_cc_auth.httpx2``'s.
    ours: Callable[..., Any]
    request: Any
    response: Any

    @classmethod
    def of(cls, lib: ModuleType, sync: str, aio: str, ours: Callable[..., Any]) -> HttpxFamily:
        request = lib.Request("GET", API_URL)
        return cls(lib, sync, aio, ours, request, lib.Response(200, request=request))

    @property
    def name(self) -> str:
        return str(self.lib.__name__)

    def requests(self, n: int) -> list[Any]:
        # One request serves all calls: auth flows only set its Authorization header.
        return [self.request] * n

    def client(self, endpoint: TokenEndpoint | None = None, auth: Any = None) -> Any:
        """A sync client of the library answered in process (the token endpoint's if given)."""
        transport = self.lib.MockTransport(sync_handler(endpoint, self.lib))
        return self.lib.Client(transport=transport, auth=auth)

    def async_client(self, endpoint: TokenEndpoint | None = None, auth: Any = None) -> Any:
        """The same, an ``AsyncClient``."""
        transport = self.lib.MockTransport(async_handler(endpoint, self.lib))
        return self.lib.AsyncClient(transport=transport, auth=auth)

    def step(self, auth: Any) -> Callable[[Any], object]:
        """``auth.sync_auth_flow`` driven as the library's ``Client`` drives it, on a 200."""
        response = self.response

        def step(request: Any) -> object:
            flow = auth.sync_auth_flow(request)
            sent = next(flow)
            try:
                flow.send(response)
            except StopIteration:
                return sent
            raise RuntimeError("the auth flow sent a second request")

        return step

    def astep(self, auth: Any) -> Callable[[Any], Awaitable[object]]:
        """``auth.async_auth_flow`` driven as the library's ``AsyncClient`` drives it."""
        response = self.response

        async def step(request: Any) -> object:
            flow = auth.async_auth_flow(request)
            sent = await flow.__anext__()
            try:
                await flow.asend(response)
            except StopAsyncIteration:
                return sent
            raise RuntimeError("the auth flow sent a second request")

        return step


HTTPX = HttpxFamily.of(httpx, HTTPX_SYNC, HTTPX_ASYNC, oauth_cc_auth.httpx.ClientCredentialsAuth)
HTTPX2 = HttpxFamily.of(
    httpx2, HTTPX2_SYNC, HTTPX2_ASYNC, oauth_cc_auth.httpx2.ClientCredentialsAuth
)
FAMILIES = (HTTPX, HTTPX2)


def _set_header_requests(r: requests.PreparedRequest) -> object:
    r.headers["Authorization"] = _STATIC
    return r


def _set_header_httpx(request: Any) -> object:
    request.headers["Authorization"] = _STATIC
    return request


async def _aset_header_httpx(request: Any) -> object:
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


def _floor_httpx(family: HttpxFamily, endpoint: TokenEndpoint, expiring: bool) -> SyncSetup:
    api = family.client()
    return SyncSetup(
        request=lambda: api.get(API_URL, headers=_HEADERS),
        step=_set_header_httpx,
        inputs=family.requests,
        prime=_nothing,
    )


async def _floor_httpx_async(
    family: HttpxFamily, endpoint: TokenEndpoint, expiring: bool
) -> AsyncSetup:
    api = family.async_client()
    return AsyncSetup(
        request=lambda: api.get(API_URL, headers=_HEADERS),
        step=_aset_header_httpx,
        inputs=family.requests,
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


def _ours_httpx(family: HttpxFamily, endpoint: TokenEndpoint, expiring: bool) -> SyncSetup:
    # oauth_cc_auth.httpx / oauth_cc_auth.httpx2, its token client given as client=.
    clock = FakeClock()
    auth = family.ours(
        CLIENT_ID,
        CLIENT_SECRET,
        token_url=TOKEN_URL,
        client=family.client(endpoint),
        cache=oauth_cc_auth.MemoryCache(),
        clock=clock if expiring else time.monotonic,
    )
    api = family.client(auth=auth)
    return SyncSetup(
        request=lambda: api.get(API_URL),
        step=family.step(auth),
        inputs=family.requests,
        prime=lambda: api.get(API_URL),
        expire=(lambda: clock.advance(3600)) if expiring else None,
    )


async def _ours_httpx_async(
    family: HttpxFamily, endpoint: TokenEndpoint, expiring: bool
) -> AsyncSetup:
    clock = FakeClock()
    auth = family.ours(
        CLIENT_ID,
        CLIENT_SECRET,
        token_url=TOKEN_URL,
        async_client=family.async_client(endpoint),
        cache=oauth_cc_auth.MemoryCache(),
        clock=clock if expiring else time.monotonic,
    )
    api = family.async_client(auth=auth)
    return AsyncSetup(
        request=lambda: api.get(API_URL),
        step=family.astep(auth),
        inputs=family.requests,
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

    def httpx_build(family: HttpxFamily, endpoint: TokenEndpoint, expiring: bool) -> SyncSetup:
        shared = cache()
        auth = family.ours(
            client_id(family.sync),
            CLIENT_SECRET,
            token_url=TOKEN_URL,
            client=family.client(endpoint),
            cache=shared,
        )
        api = family.client(auth=auth)
        return SyncSetup(
            request=lambda: api.get(API_URL),
            step=family.step(auth),
            inputs=family.requests,
            prime=lambda: api.get(API_URL),
            shared_calls=shared.total,
        )

    async def httpx_async_build(
        family: HttpxFamily, endpoint: TokenEndpoint, expiring: bool
    ) -> AsyncSetup:
        shared = cache()
        auth = family.ours(
            client_id(family.aio),
            CLIENT_SECRET,
            token_url=TOKEN_URL,
            async_client=family.async_client(endpoint),
            cache=shared,
        )
        api = family.async_client(auth=auth)
        return AsyncSetup(
            request=lambda: api.get(API_URL),
            step=family.astep(auth),
            inputs=family.requests,
            prime=lambda: api.get(API_URL),
            shared_calls=shared.total,
        )

    na = {"cold_na": "timings only", "expiry_na": "timings only"}
    sync = [SyncImpl(name, REQUESTS, requests_build, **na)]
    aio: list[AsyncImpl] = []
    for family in FAMILIES:
        sync.append(SyncImpl(name, family.sync, functools.partial(httpx_build, family), **na))
        aio.append(AsyncImpl(name, family.aio, functools.partial(httpx_async_build, family), **na))
    return sync, aio


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


def _authlib_family() -> HttpxFamily:
    return HTTPX2 if authlib_httpx_library() == "httpx2" else HTTPX


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


def _authlib_httpx(family: HttpxFamily, endpoint: TokenEndpoint, expiring: bool) -> SyncSetup:
    from authlib.integrations.base_client import InvalidTokenError
    from authlib.integrations.httpx_client import OAuth2Client

    # An httpx2.Client (or httpx.Client): the transport is of the library it is built on.
    client = OAuth2Client(
        CLIENT_ID,
        CLIENT_SECRET,
        token_endpoint=TOKEN_URL,
        grant_type="client_credentials",
        transport=family.lib.MockTransport(sync_handler(endpoint, family.lib)),
    )
    sign = family.step(client.token_auth)

    def step(request: Any) -> object:
        # What OAuth2Client.request does before handing OAuth2Auth to the library.
        if not client.ensure_active_token(client.token):
            raise InvalidTokenError()
        return sign(request)

    return SyncSetup(
        request=lambda: client.get(API_URL),
        step=step,
        inputs=family.requests,
        prime=client.fetch_token,
        expire=lambda: _expire_authlib(client),
    )


async def _authlib_httpx_async(
    family: HttpxFamily, endpoint: TokenEndpoint, expiring: bool
) -> AsyncSetup:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    client = AsyncOAuth2Client(
        CLIENT_ID,
        CLIENT_SECRET,
        token_endpoint=TOKEN_URL,
        grant_type="client_credentials",
        transport=family.lib.MockTransport(async_handler(endpoint, family.lib)),
    )
    sign = family.astep(client.token_auth)

    async def step(request: Any) -> object:
        # What AsyncOAuth2Client.request does before handing OAuth2Auth to the library.
        await client.ensure_active_token(client.token)
        return await sign(request)

    return AsyncSetup(
        request=lambda: client.get(API_URL),
        step=step,
        inputs=family.requests,
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
    # An httpx library: httpx.Auth only, so no httpx2 flavour.
    auth = httpx_auth.OAuth2ClientCredentials(
        TOKEN_URL, CLIENT_ID, CLIENT_SECRET, client=HTTPX.client(endpoint)
    )
    return auth, lambda: _expire_in_cache(httpx_auth.OAuth2.token_cache, auth.state)


def _httpx_auth_sync(endpoint: TokenEndpoint, expiring: bool) -> SyncSetup:
    auth, expire = _httpx_auth(endpoint)
    api = HTTPX.client(auth=auth)
    return SyncSetup(
        request=lambda: api.get(API_URL),
        step=HTTPX.step(auth),
        inputs=HTTPX.requests,
        prime=lambda: api.get(API_URL),
        expire=expire,
    )


async def _httpx_auth_async(endpoint: TokenEndpoint, expiring: bool) -> AsyncSetup:
    auth, expire = _httpx_auth(endpoint)
    api = HTTPX.async_client(auth=auth)
    return AsyncSetup(
        request=lambda: api.get(API_URL),
        step=HTTPX.astep(auth),
        inputs=HTTPX.requests,
        prime=lambda: api.get(API_URL),
        expire=expire,
    )


# -- the registry ----------------------------------------------------------------------------------


def sync_impls() -> list[SyncImpl]:
    """The sync implementations, floor first, then this package, then the peers."""
    no_token = {"cold_na": "no token", "expiry_na": "no token"}
    impls = [
        SyncImpl(FLOOR, REQUESTS, _floor_requests, **no_token),
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
    ]
    for family in FAMILIES:
        impls += [
            SyncImpl(FLOOR, family.sync, functools.partial(_floor_httpx, family), **no_token),
            SyncImpl(OURS, family.sync, functools.partial(_ours_httpx, family)),
        ]
        if family is _authlib_family():
            build = functools.partial(_authlib_httpx, family)
            impls.append(SyncImpl(AUTHLIB, family.sync, build, cold_na=NO_FIRST_FETCH))
        if family is HTTPX:
            impls.append(SyncImpl(HTTPX_AUTH, HTTPX_SYNC, _httpx_auth_sync))
    return impls


def async_impls() -> list[AsyncImpl]:
    """The async implementations (``AsyncClient`` of httpx and httpx2), floor first."""
    no_token = {"cold_na": "no token", "expiry_na": "no token"}
    impls: list[AsyncImpl] = []
    for family in FAMILIES:
        impls += [
            AsyncImpl(FLOOR, family.aio, functools.partial(_floor_httpx_async, family), **no_token),
            AsyncImpl(OURS, family.aio, functools.partial(_ours_httpx_async, family)),
        ]
        if family is _authlib_family():
            build = functools.partial(_authlib_httpx_async, family)
            impls.append(AsyncImpl(AUTHLIB, family.aio, build, cold_na=NO_FIRST_FETCH))
        if family is HTTPX:
            impls.append(
                AsyncImpl(
                    HTTPX_AUTH,
                    HTTPX_ASYNC,
                    _httpx_auth_async,
                    note="its token requests block the event loop (a sync httpx.Client, also "
                    "under AsyncClient): the other tasks cannot run meanwhile",
                )
            )
    return impls


def absent() -> dict[str, dict[str, str]]:
    """flavour -> implementation -> why it is not in that flavour, where the tables should
    say so ("n/a") rather than leave the cell empty: Authlib in the library it is not built
    on."""
    family = next(f for f in FAMILIES if f is not _authlib_family())
    why = _authlib_elsewhere()
    return {family.sync: {AUTHLIB: why}, family.aio: {AUTHLIB: why}}
