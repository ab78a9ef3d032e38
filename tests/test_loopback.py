"""Real HTTP over loopback sockets: what a user sees, event loops and all.

The other end is the package's emulator served on 127.0.0.1: its ``rfc6749`` token endpoint,
and every other path its protected resource (``/api``, ``/sticky``...).
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
import requests
import trio

import oauth_cc_auth
from oauth_cc_auth import MemoryCache
from oauth_cc_auth._slots import FlightSlot
from oauth_cc_auth.httpx import ClientCredentialsAuth as HttpxAuth
from oauth_cc_auth.httpx2 import ClientCredentialsAuth as Httpx2Auth
from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth
from oauth_cc_auth.testing import EmulatedClient, Emulator, FakeClock, Reply

#: Seconds a wait of these tests may take before the test fails.
DEADLINE = 20.0
#: Seconds the emulator's tokens live: a FakeClock moved by as much expires them.
LIFETIME = 60


@pytest.fixture
def loopback() -> Iterator[Emulator]:
    """The emulator on 127.0.0.1, new for each test: it knows the client ``id`` with the
    secret ``right``, and issues ``tok-1``, ``tok-2``... living :data:`LIFETIME` seconds."""
    with Emulator(token_prefix="tok-", guard_every_path=True) as server:
        server.register_client(EmulatedClient("rfc6749", "id", "right"))
        server.set_lifetime("rfc6749", LIFETIME)
        yield server


def _token_url(server: Emulator) -> str:
    return server.token_url("rfc6749")


def _token_requests(server: Emulator) -> int:
    return len(server.received_at("token"))


def test_requests_over_loopback(loopback: Emulator) -> None:
    base = loopback.url
    clock = FakeClock()
    auth = RequestsAuth("id", "right", token_url=_token_url(loopback), cache=MemoryCache(),
                        clock=clock)
    with requests.Session() as session:
        session.auth = auth
        assert [session.get(f"{base}/api").status_code for _ in range(3)] == [200] * 3
        loopback.revoke_all()
        response = session.get(f"{base}/api")
        assert response.status_code == 200
        assert [r.status_code for r in response.history] == [401]
    assert _token_requests(loopback) == 2
    auth.close()


def test_requests_retry_carries_the_cookies_of_the_401(loopback: Emulator) -> None:
    # A load balancer that pins the client with its first answer, a 401.
    loopback.answer_next(Reply(401, headers={"Set-Cookie": "affinity=node-7; Path=/"}),
                         endpoint="resource")
    auth = RequestsAuth("id", "right", token_url=_token_url(loopback), cache=MemoryCache())
    response = requests.get(f"{loopback.url}/sticky", auth=auth, timeout=10)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert response.request.headers["Cookie"] == "affinity=node-7"
    first, retry = loopback.received_at("resource")
    assert "cookie" not in first.headers
    assert retry.headers["cookie"] == "affinity=node-7"
    assert _token_requests(loopback) == 2
    auth.close()


#: The httpx family: each library with its adapter.
HTTPX_FAMILY = pytest.mark.parametrize(
    ("lib", "auth_class"), [(httpx, HttpxAuth), (httpx2, Httpx2Auth)], ids=["httpx", "httpx2"]
)


@HTTPX_FAMILY
def test_httpx_async_in_two_event_loops_and_trio(
    loopback: Emulator, lib: Any, auth_class: Any
) -> None:
    base = loopback.url
    clock = FakeClock()
    auth = auth_class("id", "right", token_url=_token_url(loopback), cache=MemoryCache(),
                      clock=clock)

    async def use() -> int:
        async with lib.AsyncClient(auth=auth) as client:
            return int((await client.get(f"{base}/api")).status_code)

    assert asyncio.run(use()) == 200
    clock.advance(LIFETIME)  # expired: the next loop must fetch with a client of its own loop
    assert asyncio.run(use()) == 200
    clock.advance(LIFETIME)
    assert trio.run(use) == 200
    assert _token_requests(loopback) == 3
    assert [r.headers["authorization"] for r in loopback.received_at("resource")] == [
        "Bearer tok-1", "Bearer tok-2", "Bearer tok-3"
    ]


@HTTPX_FAMILY
def test_wrong_secret_over_loopback(loopback: Emulator, lib: Any, auth_class: Any) -> None:
    auth = auth_class("id", "wrong", token_url=_token_url(loopback), cache=MemoryCache())
    with lib.Client(auth=auth) as client, pytest.raises(oauth_cc_auth.TokenRequestError) as info:
        client.get(f"{loopback.url}/api")
    assert info.value.error == "invalid_client"
    assert isinstance(info.value, lib.HTTPError)
    assert isinstance(info.value.request, lib.Request)
    assert info.value.request.url.path == "/api"  # the API request that needed the token
    assert loopback.received_at("resource") == []
    auth.close()


# httpx 0.28 declares a Content-Length of the whole file, wherever the file is: over a real
# connection it can only send a file from its start. httpx2 declares what remains.
@pytest.mark.parametrize(
    ("lib", "auth_class", "start"),
    [(httpx, HttpxAuth, 0), (httpx2, Httpx2Auth, 0), (httpx2, Httpx2Auth, 7)],
    ids=["httpx", "httpx2", "httpx2-from-the-middle"],
)
def test_seekable_file_body_is_rewound_over_loopback(
    loopback: Emulator, lib: Any, auth_class: Any, start: int
) -> None:
    # The mocked harness cannot show this for httpx2: its MockTransport reads the body into
    # memory before answering, so a re-sent request needs no rewind. A real transport
    # streams the file, and re-sends nothing of it unless it is rewound.
    base = loopback.url
    auth = auth_class("id", "right", token_url=_token_url(loopback), cache=MemoryCache())
    with lib.Client(auth=auth) as client:
        assert client.get(f"{base}/api").status_code == 200
        loopback.revoke_all()
        upload = io.BytesIO(b"header|file content")
        upload.seek(start)  # sending starts where the file is
        response = client.post(f"{base}/api", content=upload)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    sent = b"header|file content"[start:]
    assert [r.body for r in loopback.received_at("resource")] == [b"", sent, sent]
    assert _token_requests(loopback) == 2
    auth.close()


def test_unreachable_endpoint_is_token_endpoint_error() -> None:
    import socket

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


def sync_use_while_its_task_is_held(
    emulator: Emulator, auth: Any, slot: FlightSlot
) -> dict[str, str]:
    """In an event loop of a thread of its own: a task of *auth*'s gets a token, and while
    its first request (for which it owns the flight of *slot*) is held at a gate, a sync
    call on the loop's thread gets one; the tokens of both (``"sync"``, ``"task"``)."""
    task_request = emulator.gate(limit=DEADLINE)
    tokens: dict[str, str] = {}
    failures: list[BaseException] = []

    async def main() -> None:
        async with asyncio.timeout(DEADLINE):
            fetching = asyncio.create_task(auth.aget_token())
            while task_request.arrived < 1:
                await asyncio.sleep(0.002)  # polling the condition
            # The task owns the flight, and its request waits at the gate.
            assert slot.statistics().in_flight
            emulator.gate().open()  # later requests pass
            tokens["sync"] = auth.get_token().access_token  # sync, on this loop's thread
            # Returned while the task's request was still held: it did not wait for it.
            assert task_request.waiting == 1
            assert slot.statistics().waiters == 0
            task_request.open()
            tokens["task"] = (await fetching).access_token

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # shown by the test, not lost with the thread
            failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=2 * DEADLINE)
    task_request.open()
    assert not thread.is_alive(), "deadlocked"
    if failures:
        raise failures[0]
    return tokens


def test_sync_use_in_the_thread_of_a_loop_whose_task_is_fetching(loopback: Emulator) -> None:
    """Sync code (a notebook cell, a sync client) on an event loop's thread while a task of
    that loop fetches the token must not wait for it: that task cannot run meanwhile. The
    sync driver sees the flight's owner is a task of its own thread's loop (``Waited.
    WOULD_DEADLOCK``) and fetches a token of its own instead.

    The task's token request is held at a gate for as long as the sync call lasts: the sync
    call can only return with a token it requested itself.
    """
    auth = HttpxAuth("id", "right", token_url=_token_url(loopback), cache=MemoryCache())
    tokens = sync_use_while_its_task_is_held(loopback, auth, auth._manager.slot)
    assert tokens == {"sync": "tok-1", "task": "tok-2"}
    assert _token_requests(loopback) == 2
    auth.close()
