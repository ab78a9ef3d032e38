"""Shared fixtures: a scripted token endpoint and API behind requests-mock, respx (httpx) and
httpx2's MockTransport, and one harness per adapter flavour (requests, httpx sync and async,
httpx2 sync and async) so that each behaviour is tested through all five."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import anyio
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
from oauth_cc_auth.testing import FakeClock

TOKEN_URL = "https://auth.example/oauth/token"
API_URL = "https://api.example/things"
CLIENT_ID = "client-1"
SECRET = "s3cr3t-VALUE+/="


def is_token_url(url: str) -> bool:
    """Token endpoints, ours and the seed providers', all end in /token."""
    return urlsplit(url).path.endswith("/token")


@dataclasses.dataclass
class Recorded:
    """One request the fake server received."""

    method: str
    url: str
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclasses.dataclass
class Reply:
    """What the fake server answers; ``fail`` ("connect" or "timeout") raises instead."""

    status: int = 200
    json: Any = None
    body: bytes = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    fail: str | None = None

    def content(self) -> bytes:
        if self.json is not None:
            import json

            self.headers.setdefault("Content-Type", "application/json")
            return json.dumps(self.json).encode()
        return self.body


class FakeServer:
    """A token endpoint that issues ``tok-1``, ``tok-2``... and an API that accepts them.

    ``token_replies`` (a list, consumed first to last) scripts the token endpoint's next
    answers; ``api_replies`` likewise for the API. ``delay`` slows the token endpoint.
    """

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.token_replies: list[Reply] = []
        self.api_replies: list[Reply] = []
        self.expires_in: Any = 3600
        self.delay = 0.0
        self.valid: set[str] = set()
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def token_requests(self) -> list[Recorded]:
        return [r for r in self.requests if is_token_url(r.url)]

    @property
    def api_requests(self) -> list[Recorded]:
        return [r for r in self.requests if not is_token_url(r.url)]

    def revoke_all(self) -> None:
        self.valid.clear()

    def handle(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            if is_token_url(recorded.url):
                if self.token_replies:
                    reply = self.token_replies.pop(0)
                    if isinstance(reply.json, dict):  # a scripted token is valid too
                        data = reply.json.get("data", reply.json)
                        if isinstance(data, dict) and isinstance(data.get("access_token"), str):
                            self.valid.add(data["access_token"])
                    return reply
                token = f"tok-{next(self._counter)}"
                self.valid.add(token)
                payload: dict[str, Any] = {"access_token": token, "token_type": "bearer"}
                if self.expires_in is not None:
                    payload["expires_in"] = self.expires_in
                return Reply(json=payload)
            if self.api_replies:
                return self.api_replies.pop(0)
            auth = recorded.headers.get("authorization", "")
            if auth.startswith("Bearer ") and auth[7:] in self.valid:
                return Reply(json={"ok": True})
            return Reply(401, json={"error": "invalid_token"})


def _record_requests(request: Any) -> Recorded:
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    elif not isinstance(body, bytes):
        body = b"".join(c if isinstance(c, bytes) else c.encode() for c in body)
    return Recorded(
        request.method, request.url, {k.lower(): v for k, v in request.headers.items()}, body
    )


def _record_httpx(request: httpx.Request | httpx2.Request, body: bytes) -> Recorded:
    return Recorded(request.method, str(request.url), dict(request.headers), body)


class Harness:
    """Sends API requests through one adapter flavour with the fake server mocked in."""

    name = ""
    #: Whether ``get`` sends through an async client.
    is_async = False

    def __init__(self, server: FakeServer, cache: MemoryCache, clock: FakeClock) -> None:
        self.server = server
        self.cache = cache
        self.clock = clock

    def auth(self, **options: Any) -> Any:
        options.setdefault("token_url", TOKEN_URL)
        options.setdefault("cache", self.cache)
        options.setdefault("clock", self.clock)
        options.setdefault("backoff", 0.0)
        client_id = options.pop("client_id", CLIENT_ID)
        secret = options.pop("client_secret", SECRET)
        return self.auth_class(client_id, secret, **options)

    auth_class: Callable[..., Any]
    #: The HTTP library's errors that the adapter's errors also are, so that the library's
    #: ``except`` clauses catch them: every one of them, and a TokenEndpointError.
    library_error: type[Exception]
    library_transport_error: type[Exception]

    def get(self, auth: Any, url: str = API_URL, **kwargs: Any) -> Any:
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
        reply = self.server.handle(_record_requests(request))
        if self.server.delay and is_token_url(request.url):
            time.sleep(self.server.delay)
        if reply.fail == "connect":
            raise requests.ConnectionError("connection refused")
        if reply.fail == "timeout":
            raise requests.ConnectTimeout("timed out")
        content = reply.content()
        context.status_code = reply.status
        context.headers.update(reply.headers)
        return content

    def get(self, auth: Any, url: str = API_URL, body: Any = None, **kwargs: Any) -> Any:
        with requests.Session() as session:
            session.auth = auth
            method = "POST" if body is not None else "GET"
            return session.request(method, url, data=body, **kwargs)

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

    def _respond(self, request: Any, reply: Reply) -> Any:
        if reply.fail == "connect":
            raise self.lib.ConnectError("connection refused", request=request)
        if reply.fail == "timeout":
            raise self.lib.ConnectTimeout("timed out", request=request)
        content = reply.content()
        return self.lib.Response(reply.status, headers=reply.headers, content=content)

    def _handle(self, request: Any) -> Any:
        reply = self.server.handle(_record_httpx(request, request.read()))
        if self.server.delay and is_token_url(str(request.url)):
            time.sleep(self.server.delay)
        return self._respond(request, reply)

    async def _ahandle(self, request: Any) -> Any:
        reply = self.server.handle(_record_httpx(request, await request.aread()))
        if self.server.delay and is_token_url(str(request.url)):
            await anyio.sleep(self.server.delay)
        return self._respond(request, reply)

    def get(self, auth: Any, url: str = API_URL, body: Any = None, **kwargs: Any) -> Any:
        method = "POST" if body is not None else "GET"
        if self.is_async:

            async def aget() -> Any:
                async with self.async_client(auth) as client:
                    return await client.request(method, url, content=body, **kwargs)

            return asyncio.run(aget())
        with self.client(auth) as client:
            return client.request(method, url, content=body, **kwargs)


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
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def cache() -> MemoryCache:
    return MemoryCache()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest, server: FakeServer, cache: MemoryCache,
            clock: FakeClock) -> Iterator[Harness]:
    h = HARNESSES[request.param](server, cache, clock)
    with h.mocked():
        yield h
