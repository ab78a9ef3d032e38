"""Real HTTP over loopback sockets: what a user sees, event loops and all."""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import threading
from collections.abc import Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import httpx2
import pytest
import requests
import trio

from oauth_cc_auth import MemoryCache
from oauth_cc_auth.httpx import ClientCredentialsAuth as HttpxAuth
from oauth_cc_auth.httpx2 import ClientCredentialsAuth as Httpx2Auth
from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth
from oauth_cc_auth.testing import FakeClock


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class TokenApp:
    """A token endpoint at /token and an API at /api accepting its tokens."""

    def __init__(self) -> None:
        self.tokens: set[str] = set()
        self.token_requests = 0
        #: The bodies of the API requests, in the order received.
        self.api_bodies: list[bytes] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path == "/token":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            form = environ["wsgi.input"].read(length)
            with self.lock:
                self.token_requests += 1
                token = secrets.token_urlsafe(16)
                self.tokens.add(token)
            if b"client_secret=right" not in form:
                start_response("401 Unauthorized", [("Content-Type", "application/json")])
                return [b'{"error": "invalid_client"}']
            body = json.dumps({"access_token": token, "expires_in": 60, "token_type": "Bearer"})
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body.encode()]
        auth = environ.get("HTTP_AUTHORIZATION", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        self.api_bodies.append(environ["wsgi.input"].read(length))
        if path == "/sticky" and "affinity=node-7" not in environ.get("HTTP_COOKIE", ""):
            # A load balancer that pins the client with its first answer, a 401.
            start_response("401 Unauthorized", [("Set-Cookie", "affinity=node-7; Path=/")])
            return [b""]
        if auth.startswith("Bearer ") and auth[7:] in self.tokens:
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"ok": true}']
        start_response("401 Unauthorized", [("Content-Type", "application/json")])
        return [b'{"error": "invalid_token"}']


@pytest.fixture
def app() -> Iterator[tuple[TokenApp, str]]:
    token_app = TokenApp()
    server = make_server("127.0.0.1", 0, token_app, _Server, _QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield token_app, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_requests_over_loopback(app: tuple[TokenApp, str]) -> None:
    token_app, base = app
    clock = FakeClock()
    auth = RequestsAuth("id", "right", token_url=f"{base}/token", cache=MemoryCache(), clock=clock)
    with requests.Session() as session:
        session.auth = auth
        assert [session.get(f"{base}/api").status_code for _ in range(3)] == [200] * 3
        token_app.tokens.clear()  # revoked
        response = session.get(f"{base}/api")
        assert response.status_code == 200
        assert [r.status_code for r in response.history] == [401]
    assert token_app.token_requests == 2
    auth.close()


def test_requests_retry_carries_the_cookies_of_the_401(app: tuple[TokenApp, str]) -> None:
    token_app, base = app
    auth = RequestsAuth("id", "right", token_url=f"{base}/token", cache=MemoryCache())
    response = requests.get(f"{base}/sticky", auth=auth, timeout=10)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert response.request.headers["Cookie"] == "affinity=node-7"
    assert token_app.token_requests == 2
    auth.close()


#: The httpx family: each library with its adapter.
HTTPX_FAMILY = pytest.mark.parametrize(
    ("lib", "auth_class"), [(httpx, HttpxAuth), (httpx2, Httpx2Auth)], ids=["httpx", "httpx2"]
)


@HTTPX_FAMILY
def test_httpx_async_in_two_event_loops_and_trio(
    app: tuple[TokenApp, str], lib: Any, auth_class: Any
) -> None:
    token_app, base = app
    clock = FakeClock()
    auth = auth_class("id", "right", token_url=f"{base}/token", cache=MemoryCache(), clock=clock)

    async def use() -> int:
        async with lib.AsyncClient(auth=auth) as client:
            return (await client.get(f"{base}/api")).status_code

    assert asyncio.run(use()) == 200
    clock.advance(60)  # expired: the next loop must fetch with a client of its own loop
    assert asyncio.run(use()) == 200
    clock.advance(60)
    assert trio.run(use) == 200
    assert token_app.token_requests == 3


@HTTPX_FAMILY
def test_wrong_secret_over_loopback(
    app: tuple[TokenApp, str], lib: Any, auth_class: Any
) -> None:
    import oauth_cc_auth

    _, base = app
    auth = auth_class("id", "wrong", token_url=f"{base}/token", cache=MemoryCache())
    with lib.Client(auth=auth) as client, pytest.raises(oauth_cc_auth.TokenRequestError) as info:
        client.get(f"{base}/api")
    assert info.value.error == "invalid_client"
    assert isinstance(info.value, lib.HTTPError)
    assert isinstance(info.value.request, lib.Request)
    assert info.value.request.url.path == "/api"  # the API request that needed the token
    auth.close()


# httpx 0.28 declares a Content-Length of the whole file, wherever the file is: over a real
# connection it can only send a file from its start. httpx2 declares what remains.
@pytest.mark.parametrize(
    ("lib", "auth_class", "start"),
    [(httpx, HttpxAuth, 0), (httpx2, Httpx2Auth, 0), (httpx2, Httpx2Auth, 7)],
    ids=["httpx", "httpx2", "httpx2-from-the-middle"],
)
def test_seekable_file_body_is_rewound_over_loopback(
    app: tuple[TokenApp, str], lib: Any, auth_class: Any, start: int
) -> None:
    # The mocked harness cannot show this for httpx2: its MockTransport reads the body into
    # memory before answering, so a re-sent request needs no rewind. A real transport
    # streams the file, and re-sends nothing of it unless it is rewound.
    token_app, base = app
    auth = auth_class("id", "right", token_url=f"{base}/token", cache=MemoryCache())
    with lib.Client(auth=auth) as client:
        assert client.get(f"{base}/api").status_code == 200
        token_app.tokens.clear()  # revoked
        upload = io.BytesIO(b"header|file content")
        upload.seek(start)  # sending starts where the file is
        response = client.post(f"{base}/api", content=upload)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    sent = b"header|file content"[start:]
    assert token_app.api_bodies == [b"", sent, sent]
    assert token_app.token_requests == 2
    auth.close()


def test_unreachable_endpoint_is_token_endpoint_error() -> None:
    import socket

    import oauth_cc_auth

    with socket.socket() as s:  # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/token"
    options: dict[str, Any] = {"token_url": url, "max_retries": 1, "backoff": 0}
    rq = RequestsAuth("id", "s", cache=MemoryCache(), **options)
    with pytest.raises(oauth_cc_auth.TokenEndpointError, match="2 attempt"):
        requests.get("http://127.0.0.1:1/never", auth=rq, timeout=5)
    hx = HttpxAuth("id", "s", cache=MemoryCache(), **options)
    with pytest.raises(oauth_cc_auth.TokenEndpointError, match="2 attempt"):
        httpx.get("http://127.0.0.1:1/never", auth=hx)
    hx2 = Httpx2Auth("id", "s", cache=MemoryCache(), **options)
    with pytest.raises(oauth_cc_auth.TokenEndpointError, match="2 attempt") as info:
        httpx2.get("http://127.0.0.1:1/never", auth=hx2)
    assert isinstance(info.value, httpx2.TransportError)


def test_sync_use_in_the_thread_of_a_loop_whose_task_is_fetching(
    app: tuple[TokenApp, str],
) -> None:
    """Sync code (a notebook cell, a sync client) on an event loop's thread while a task of
    that loop fetches the token must not wait for it: that task cannot run meanwhile."""
    _, base = app
    auth = HttpxAuth("id", "right", token_url=f"{base}/token", cache=MemoryCache())
    results: list[object] = []

    async def main() -> None:
        fetching = asyncio.create_task(auth.aget_token())
        await asyncio.sleep(0)  # the task has started its token request
        results.append(auth.get_token())  # sync, on this loop's thread
        results.append(await fetching)

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "deadlocked"
    assert len(results) == 2
