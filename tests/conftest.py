"""Shared fixtures: a scripted token endpoint and API behind requests-mock and respx, and one
harness per adapter flavour (requests, httpx sync, httpx async) so that each behaviour is
tested through all three."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
import requests
import requests_mock
import respx
import sniffio

from oauth_cc_auth import MemoryCache
from oauth_cc_auth.httpx import ClientCredentialsAuth as HttpxAuth
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


def _record_httpx(request: httpx.Request, body: bytes) -> Recorded:
    return Recorded(request.method, str(request.url), dict(request.headers), body)


class Harness:
    """Sends API requests through one adapter flavour with the fake server mocked in."""

    name = ""

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

    def get(self, auth: Any, url: str = API_URL, **kwargs: Any) -> Any:
        raise NotImplementedError


class RequestsHarness(Harness):
    name = "requests"
    auth_class = RequestsAuth

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


class _HttpxMocked(Harness):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.router = respx.mock(assert_all_called=False)
        self.router.route().mock(side_effect=self._side_effect())

    def _respond(self, request: httpx.Request, reply: Reply) -> httpx.Response:
        if reply.fail == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        if reply.fail == "timeout":
            raise httpx.ConnectTimeout("timed out", request=request)
        content = reply.content()
        return httpx.Response(reply.status, headers=reply.headers, content=content)

    def _side_effect(self) -> Callable[..., Any]:
        # One side effect for sync and async clients alike (a test may use both at once):
        # in an event loop it returns a coroutine, which respx awaits.
        def effect(request: httpx.Request) -> Any:
            try:
                sniffio.current_async_library()
            except sniffio.AsyncLibraryNotFoundError:
                reply = self.server.handle(_record_httpx(request, request.read()))
                if self.server.delay and is_token_url(str(request.url)):
                    time.sleep(self.server.delay)
                return self._respond(request, reply)
            return async_effect(request)

        async def async_effect(request: httpx.Request) -> httpx.Response:
            reply = self.server.handle(_record_httpx(request, await request.aread()))
            if self.server.delay and is_token_url(str(request.url)):
                await anyio.sleep(self.server.delay)
            return self._respond(request, reply)

        return effect


class HttpxSyncHarness(_HttpxMocked):
    name = "httpx-sync"
    auth_class = HttpxAuth

    def get(self, auth: Any, url: str = API_URL, body: Any = None, **kwargs: Any) -> Any:
        with httpx.Client(auth=auth) as client:
            method = "POST" if body is not None else "GET"
            return client.request(method, url, content=body, **kwargs)


class HttpxAsyncHarness(_HttpxMocked):
    name = "httpx-async"
    auth_class = HttpxAuth

    async def aget(self, auth: Any, url: str = API_URL, body: Any = None, **kwargs: Any) -> Any:
        async with httpx.AsyncClient(auth=auth) as client:
            method = "POST" if body is not None else "GET"
            return await client.request(method, url, content=body, **kwargs)

    def get(self, auth: Any, url: str = API_URL, body: Any = None, **kwargs: Any) -> Any:
        return asyncio.run(self.aget(auth, url, body, **kwargs))


HARNESSES = {h.name: h for h in (RequestsHarness, HttpxSyncHarness, HttpxAsyncHarness)}


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
    mock = h.mocker if isinstance(h, RequestsHarness) else h.router
    with mock:
        yield h
