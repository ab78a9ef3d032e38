"""Shared fixtures: the shipped emulator, answering in process behind requests-mock, respx
(httpx) and httpx2's MockTransport, and one harness per adapter flavour (requests, httpx sync
and async, httpx2 sync and async) so that each behaviour is tested through all five."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import httpx
import httpx2
import pytest
import requests
import requests_mock
import respx
import sniffio

from oauth_cc_auth import MemoryCache
from oauth_cc_auth.httpx import ClientCredentialsAuth as HttpxAuth
from oauth_cc_auth.httpx2 import ClientCredentialsAuth as Httpx2Auth
from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth
from oauth_cc_auth.testing import (
    Answered,
    EmulatedClient,
    Emulator,
    FakeClock,
    NoAnswer,
    await_refresh,
    wait_for_refresh,
)

TOKEN_URL = "https://auth.example/oauth/token"
API_URL = "https://api.example/things"
CLIENT_ID = "client-1"
SECRET = "s3cr3t-VALUE+/="


def is_token_url(url: str) -> bool:
    """Token endpoints, ours and the seed providers', all end in /token."""
    return urlsplit(url).path.endswith("/token")


def emulator() -> Emulator:
    """The fake of every harness: the shipped emulator, answering in process. It issues
    ``tok-1``, ``tok-2``..., knows ``client-1`` as an ``rfc6749`` client, and guards every
    API URL as the ``rfc6749`` protected resource."""
    server = Emulator(token_prefix="tok-", guard_every_path=True)
    server.register_client(EmulatedClient("rfc6749", CLIENT_ID, SECRET))
    return server


def build_auth(auth_class: Callable[..., Any], **options: Any) -> Any:
    """An *auth_class* object as the tests make them: ``client-1``, ``SECRET`` and
    ``TOKEN_URL`` unless *options* say otherwise (``client_id``, ``client_secret``, which may
    be ``None``, ``token_url``, which may be ``None`` for a provider's own), a cache of its
    own and no backoff between attempts."""
    options.setdefault("token_url", TOKEN_URL)
    options.setdefault("cache", MemoryCache())
    options.setdefault("backoff", 0.0)
    client_id = options.pop("client_id", CLIENT_ID)
    secret = options.pop("client_secret", SECRET)
    return auth_class(client_id, secret, **options)


def emulated_auth(emulator: Emulator, auth_class: Callable[..., Any], provider: str = "rfc6749",
                  **options: Any) -> Any:
    """An *auth_class* object for *emulator*'s own client of *provider* (:func:`build_auth`),
    at the token endpoint it serves on loopback."""
    client = emulator.client(provider)
    return build_auth(auth_class, client_id=client.client_id,
                      client_secret=client.client_secret,
                      token_url=emulator.token_url(provider), **{**client.options(), **options})


class Harness:
    """Sends API requests through one adapter flavour with the fake server mocked in."""

    name = ""
    #: Whether ``get`` sends through an async client.
    is_async = False

    def __init__(self, server: Emulator, cache: MemoryCache, clock: FakeClock) -> None:
        self.server = server
        self.cache = cache
        self.clock = clock

    def auth(self, **options: Any) -> Any:
        """An auth object of this flavour on the harness's cache and clock (:func:`build_auth`)."""
        options.setdefault("cache", self.cache)
        options.setdefault("clock", self.clock)
        return build_auth(self.auth_class, **options)

    auth_class: Callable[..., Any]
    #: The HTTP library's errors that the adapter's errors also are, so that the library's
    #: ``except`` clauses catch them: every one of them, and a TokenEndpointError.
    library_error: type[Exception]
    library_transport_error: type[Exception]

    def get(self, auth: Any, url: str = API_URL, **kwargs: Any) -> Any:
        """One API request through *auth*; returns once a refresh ahead it started has
        ended too (in a long-lived process or loop it would, soon after), so that a test
        moving the fake clock into the refresh window sees the refreshed token next."""
        raise NotImplementedError

    def mocked(self) -> contextlib.AbstractContextManager[Any]:
        """The context in which the fake server answers this flavour's requests."""
        raise NotImplementedError


class RequestsHarness(Harness):
    name = "requests"
    auth_class = RequestsAuth
    library_error = requests.RequestException
    library_transport_error = requests.ConnectionError

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.mocker = requests_mock.Mocker()
        self.mocker.register_uri(requests_mock.ANY, requests_mock.ANY, content=self._callback)

    def _callback(self, request: Any, context: Any) -> bytes:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        elif not isinstance(body, bytes):  # a generator or a file
            body = b"".join(c if isinstance(c, bytes) else c.encode() for c in body)
        try:
            answered = self.server.handle(request.method, request.url, request.headers, body)
        except NoAnswer as failure:
            if failure.kind == "timeout":
                raise requests.ConnectTimeout("timed out") from None
            raise requests.ConnectionError("connection refused") from None
        context.status_code = answered.status
        context.headers.update(answered.headers)
        return answered.body

    def get(self, auth: Any, url: str = API_URL, body: Any = None, **kwargs: Any) -> Any:
        with requests.Session() as session:
            session.auth = auth
            method = "POST" if body is not None else "GET"
            try:
                return session.request(method, url, data=body, **kwargs)
            finally:
                wait_for_refresh(auth)

    def mocked(self) -> contextlib.AbstractContextManager[Any]:
        return self.mocker


class HttpxFamilyHarness(Harness):
    """A flavour of the httpx family: ``lib`` is the httpx or the httpx2 module."""

    lib: ModuleType

    @property
    def library_error(self) -> type[Exception]:
        return self.lib.HTTPError

    @property
    def library_transport_error(self) -> type[Exception]:
        return self.lib.TransportError

    def client(self, auth: Any, **kwargs: Any) -> Any:
        """A user's ``lib.Client`` with *auth*, its requests answered by the fake server."""
        return self.lib.Client(auth=auth, **kwargs)

    def async_client(self, auth: Any, **kwargs: Any) -> Any:
        """A user's ``lib.AsyncClient`` with *auth*, answered by the fake server."""
        return self.lib.AsyncClient(auth=auth, **kwargs)

    def _respond(self, request: Any, answered: Answered | NoAnswer) -> Any:
        if isinstance(answered, NoAnswer):
            if answered.kind == "timeout":
                raise self.lib.ConnectTimeout("timed out", request=request)
            raise self.lib.ConnectError("connection refused", request=request)
        return self.lib.Response(answered.status, headers=answered.headers,
                                 content=answered.body)

    def _handle(self, request: Any) -> Any:
        try:
            answered: Answered | NoAnswer = self.server.handle(
                request.method, str(request.url), request.headers.multi_items(), request.read()
            )
        except NoAnswer as failure:
            answered = failure
        return self._respond(request, answered)

    async def _ahandle(self, request: Any) -> Any:
        try:
            answered: Answered | NoAnswer = await self.server.ahandle(
                request.method, str(request.url), request.headers.multi_items(),
                await request.aread(),
            )
        except NoAnswer as failure:
            answered = failure
        return self._respond(request, answered)

    def get(self, auth: Any, url: str = API_URL, body: Any = None, **kwargs: Any) -> Any:
        method = "POST" if body is not None else "GET"
        if self.is_async:

            async def aget() -> Any:
                try:
                    async with self.async_client(auth) as client:
                        return await client.request(method, url, content=body, **kwargs)
                finally:
                    await await_refresh(auth)

            return asyncio.run(aget())
        try:
            with self.client(auth) as client:
                return client.request(method, url, content=body, **kwargs)
        finally:
            wait_for_refresh(auth)


class _HttpxMocked(HttpxFamilyHarness):
    """httpx, with every client's transport mocked by respx: the adapter's own token clients
    included."""

    lib = httpx
    auth_class = HttpxAuth

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.router = respx.mock(assert_all_called=False)
        self.router.route().mock(side_effect=self._side_effect)

    def _side_effect(self, request: httpx.Request) -> Any:
        # One side effect for sync and async clients alike (a test may use both at once):
        # in an event loop it returns a coroutine, which respx awaits.
        try:
            sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            return self._handle(request)
        return self._ahandle(request)

    def mocked(self) -> contextlib.AbstractContextManager[Any]:
        return self.router


class HttpxSyncHarness(_HttpxMocked):
    name = "httpx-sync"


class HttpxAsyncHarness(_HttpxMocked):
    name = "httpx-async"
    is_async = True


class _Httpx2Mocked(HttpxFamilyHarness):
    """httpx2, with httpx2's own MockTransport (respx patches httpx only): in the user's
    clients, and in the token clients given to every auth object as ``client=`` and
    ``async_client=`` (``auth_class`` is the adapter with those as defaults, so that
    ``from_env`` and ``from_config`` get them too)."""

    lib = httpx2

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.transport = httpx2.MockTransport(self._handle)
        self.async_transport = httpx2.MockTransport(self._ahandle)
        self.token_client = httpx2.Client(transport=self.transport)
        self.async_token_client = httpx2.AsyncClient(transport=self.async_transport)
        harness = self

        class MockedHttpx2Auth(Httpx2Auth):
            def __init__(self, *args: Any, **options: Any) -> None:
                options.setdefault("client", harness.token_client)
                options.setdefault("async_client", harness.async_token_client)
                super().__init__(*args, **options)

        self.auth_class = MockedHttpx2Auth

    def client(self, auth: Any, **kwargs: Any) -> Any:
        return httpx2.Client(auth=auth, transport=self.transport, **kwargs)

    def async_client(self, auth: Any, **kwargs: Any) -> Any:
        return httpx2.AsyncClient(auth=auth, transport=self.async_transport, **kwargs)

    @contextlib.contextmanager
    def mocked(self) -> Iterator[None]:
        # (The async token client holds nothing to release: MockTransport has no connections.)
        with self.token_client:
            yield


class Httpx2SyncHarness(_Httpx2Mocked):
    name = "httpx2-sync"


class Httpx2AsyncHarness(_Httpx2Mocked):
    name = "httpx2-async"
    is_async = True


HARNESSES = {
    h.name: h
    for h in (
        RequestsHarness,
        HttpxSyncHarness,
        HttpxAsyncHarness,
        Httpx2SyncHarness,
        Httpx2AsyncHarness,
    )
}
#: The flavours of each kind, for tests that only apply to some of them.
SYNC = ["requests", "httpx-sync", "httpx2-sync"]
ASYNC = ["httpx-async", "httpx2-async"]


@pytest.fixture
def server() -> Emulator:
    return emulator()


@pytest.fixture
def cache() -> MemoryCache:
    return MemoryCache()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest, server: Emulator, cache: MemoryCache,
            clock: FakeClock) -> Iterator[Harness]:
    h = HARNESSES[request.param](server, cache, clock)
    with h.mocked():
        yield h
