"""Token request limits (DESIGN §7): ``timeout=`` bounds a whole token request whatever the
server's pace, answers larger than ``max_response_bytes`` are not read, and a caller waiting
for another's token request waits no longer than that request may take.

Real loopback servers, written here byte by byte: a token endpoint that drips its answer, one
that never stops answering, one with a 5 MB answer. Every flavour: requests, httpx and httpx2
sync, httpx and httpx2 async (asyncio and trio). The tests are async (anyio): the async
flavours run on the test's event loop, the sync ones in a worker thread of it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import httpx2
import pytest

import oauth_cc_auth
from oauth_cc_auth import MemoryCache
from oauth_cc_auth.httpx import ClientCredentialsAuth as HttpxAuth
from oauth_cc_auth.httpx2 import ClientCredentialsAuth as Httpx2Auth
from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth
from tests._anyio import BACKENDS

#: How long any single wait of these tests may last before the test fails.
DEADLINE = 30.0
BIG = 5 * 1024 * 1024
DRIP_PACE = 0.2


class RawServer:
    """A loopback HTTP/1.1 server answering each path as scripted, byte by byte.

    ``/token`` answers a token (keep-alive); ``/drip`` sends its headers, then one byte every
    0.2 s; ``/drip-headers`` drips its status line and headers; ``/endless`` sends a chunked
    answer that never ends; ``/big`` 5 MB (``?status=400``, ``&length=1`` to declare a
    Content-Length). ``ended`` counts the connections the client closed on an answer in
    progress.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.stop = threading.Event()
        self.paths: list[str] = []
        self.ended = 0
        self.changed = threading.Condition()
        self.threads: list[threading.Thread] = []
        self.connections: list[socket.socket] = []
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def wait_for(self, predicate: Callable[[], bool]) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout=DEADLINE)

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while not self.stop.is_set():
                while b"\r\n\r\n" not in buffer:
                    try:
                        data = conn.recv(65536)
                    except ConnectionResetError:  # closed by a client with an answer unread
                        return
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                target = lines[0].split(" ")[1]
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                with self.changed:
                    self.paths.append(target)
                    self.changed.notify_all()
                try:
                    keep = self._answer(conn, target)
                except OSError:  # the client went away mid-answer
                    with self.changed:
                        self.ended += 1
                        self.changed.notify_all()
                    return
                if not keep:
                    return

    def _answer(self, conn: socket.socket, target: str) -> bool:
        if target.startswith("http://"):  # asked as a forward proxy: the same answers
            target = "/" + target.split("/", 3)[3]
        path, _, query = target.partition("?")
        if path == "/token":
            body = json.dumps({"access_token": "tok", "expires_in": 3600}).encode()
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            return True
        if path == "/drip":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100000\r\n\r\n")
            while not self.stop.wait(DRIP_PACE):
                conn.sendall(b" ")
            return False
        if path == "/drip-headers":
            for byte in b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"x" * 10000:
                if self.stop.wait(DRIP_PACE):
                    break
                conn.sendall(bytes([byte]))
            return False
        if path == "/endless":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
            while not self.stop.is_set():
                conn.sendall(chunk)
            return False
        if path == "/big":
            status = b"400 Bad Request" if "status=400" in query else b"200 OK"
            piece = b" " * 65536
            if "length=1" in query:
                conn.sendall(b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n" % (status, BIG))
                for _ in range(BIG // len(piece)):
                    conn.sendall(piece)
            else:
                conn.sendall(b"HTTP/1.1 %s\r\nTransfer-Encoding: chunked\r\n\r\n" % status)
                for _ in range(BIG // len(piece)):
                    conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                conn.sendall(b"0\r\n\r\n")
            return True
        if path == "/garbled":  # gzip announced, garbage sent
            status = query.partition("status=")[2] or "200"
            body = b"\x1f\x8b\x08\x00 this is no gzip stream at all" * 4
            conn.sendall(b"HTTP/1.1 %s Status\r\nContent-Type: application/json\r\n"
                         b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
                         % (status.encode(), len(body), body))
            return True
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        return True

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        for conn in self.connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self.threads:
            thread.join(DEADLINE)


@pytest.fixture
def raw() -> Iterator[RawServer]:
    server = RawServer()
    try:
        yield server
    finally:
        server.close()


SYNC_FLAVOURS = ["requests", "httpx-sync", "httpx2-sync"]
ASYNC_FLAVOURS = ["httpx-async", "httpx2-async"]


def flavours(fast: tuple[str, ...] | None = None) -> list[Any]:
    """Parameters ``(flavour, anyio_backend)`` for every flavour, with the ids ``requests``,
    ``httpx-sync``... ``httpx-asyncio``, ``httpx2-trio``: the sync flavours on one event loop
    (they run in a worker thread of it), the async ones on each. Those not in *fast* (ids) are
    marked slow; all are fast if it is None."""
    params = [(flavour, "asyncio", flavour) for flavour in SYNC_FLAVOURS] + [
        (flavour, backend, flavour.replace("async", backend))
        for backend in BACKENDS for flavour in ASYNC_FLAVOURS
    ]
    return [
        pytest.param(flavour, backend, id=name,
                     marks=() if fast is None or name in fast else pytest.mark.slow)
        for flavour, backend, name in params
    ]


def make_auth(flavour: str, url: str, **options: Any) -> Any:
    options.setdefault("cache", MemoryCache())
    cls = {"requests": RequestsAuth, "httpx": HttpxAuth, "httpx2": Httpx2Auth}[
        flavour.split("-")[0]
    ]
    return cls("id", "secret", token_url=url, **options)


def get_token_sync(auth: Any) -> Any:
    """``auth.get_token()``: the token or the exception; *auth* is closed after."""
    try:
        return auth.get_token()
    except Exception as exc:
        return exc
    finally:
        auth.close()


async def get_token(flavour: str, auth: Any) -> Any:
    """``get_token()`` through *flavour*: the token or the exception. A sync flavour runs in a
    worker thread (its auth object closed after), an async one on this event loop."""
    if flavour.endswith("-async"):
        try:
            return await auth.aget_token()
        except Exception as exc:
            return exc
    return await anyio.to_thread.run_sync(get_token_sync, auth)


async def wait_for(raw: RawServer, predicate: Callable[[], bool]) -> bool:
    """``raw.wait_for`` in a worker thread: the event loop goes on closing connections."""
    return await anyio.to_thread.run_sync(raw.wait_for, predicate)


class TestWholeRequestDeadline:
    """``timeout=`` bounds a token request answered at any pace, for every flavour."""

    # A dripping answer costs the timeout of each attempt in wall-clock time: the default run
    # keeps one flavour of each of the two dripping tests, a sync one and an async one.

    @pytest.mark.anyio
    @pytest.mark.parametrize(("flavour", "anyio_backend"), flavours(fast=("requests",)))
    async def test_a_dripping_answer_times_out(self, raw: RawServer, flavour: str) -> None:
        timeout, attempts = 0.5, 2
        auth = make_auth(flavour, f"{raw.base}/drip", timeout=timeout, max_retries=1, backoff=0)
        started = time.monotonic()
        result = await get_token(flavour, auth)
        elapsed = time.monotonic() - started
        assert isinstance(result, oauth_cc_auth.TokenEndpointError), result
        assert "2 attempt(s)" in str(result)
        assert "timeout=0.5 s" in str(result)
        # Each attempt waits for its deadline, no longer. Fudge factor 3: a busy 2-core box.
        assert timeout * attempts * 0.9 <= elapsed < 3 * timeout * attempts
        assert raw.paths == ["/drip", "/drip"]
        # Both connections were closed by the client, not kept in a pool.
        assert await wait_for(raw, lambda: raw.ended == 2)

    @pytest.mark.anyio
    @pytest.mark.parametrize(("flavour", "anyio_backend"), flavours(fast=("httpx2-asyncio",)))
    async def test_dripping_status_line_and_headers_time_out(
        self, raw: RawServer, flavour: str
    ) -> None:
        timeout, attempts = 0.5, 2
        auth = make_auth(flavour, f"{raw.base}/drip-headers", timeout=timeout, max_retries=1,
                         backoff=0)
        started = time.monotonic()
        result = await get_token(flavour, auth)
        elapsed = time.monotonic() - started
        assert isinstance(result, oauth_cc_auth.TokenEndpointError), result
        assert "timeout=0.5 s" in str(result)
        # Each attempt waits for its deadline, no longer. Fudge factor 3: a busy 2-core box.
        assert timeout * attempts * 0.9 <= elapsed < 3 * timeout * attempts
        assert raw.paths == ["/drip-headers", "/drip-headers"]

    @pytest.mark.anyio
    @pytest.mark.parametrize(("flavour", "anyio_backend"), flavours())
    async def test_an_endless_answer_stops_at_the_size_cap(
        self, raw: RawServer, flavour: str
    ) -> None:
        auth = make_auth(flavour, f"{raw.base}/endless", timeout=10, max_retries=0)
        tracemalloc.start()
        try:
            started = time.monotonic()
            result = await get_token(flavour, auth)
            elapsed = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert isinstance(result, oauth_cc_auth.TokenResponseError), result
        assert "max_response_bytes=1048576" in str(result)
        assert result.status_code == 200
        assert peak < 8 * 1024 * 1024  # the default cap is 1 MiB; never the whole stream
        assert elapsed < 10  # stopped at the cap, not at the deadline
        assert raw.paths == ["/endless"]  # not retried
        assert await wait_for(raw, lambda: raw.ended == 1)  # the connection was closed

    @pytest.mark.anyio
    @pytest.mark.parametrize(("flavour", "anyio_backend"), flavours())
    @pytest.mark.parametrize(
        ("status", "error"),
        [(200, oauth_cc_auth.TokenResponseError), (400, oauth_cc_auth.TokenRequestError)],
    )
    @pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
    async def test_a_5mb_answer_is_the_error_its_status_says(
        self, raw: RawServer, flavour: str, status: int, error: type[Exception], declared: bool
    ) -> None:
        url = f"{raw.base}/big?status={status}&length={int(declared)}"
        auth = make_auth(flavour, url, timeout=10, max_retries=2, max_response_bytes=100_000)
        tracemalloc.start()
        try:
            result = await get_token(flavour, auth)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert isinstance(result, error)
        assert result.status_code == status
        assert "max_response_bytes=100000" in str(result)
        assert peak < BIG / 2
        assert len(raw.paths) == 1  # a refusal is not retried
        assert await wait_for(raw, lambda: raw.ended == 1)

    @pytest.mark.anyio
    @pytest.mark.parametrize(("flavour", "anyio_backend"), flavours())
    @pytest.mark.parametrize(
        ("status", "error", "attempts"),
        [(200, oauth_cc_auth.TokenResponseError, 1), (401, oauth_cc_auth.TokenRequestError, 1),
         (503, oauth_cc_auth.TokenEndpointError, 2)],
    )
    # httpx's decoder fails inside its own async generators, which it leaves unfinished; trio
    # (unlike asyncio) warns when they are collected, which is after the test's body: once the
    # error, whose traceback holds them, is gone, trio closes them one by one in tasks of its own.
    @pytest.mark.filterwarnings("ignore:Async generator .* was garbage collected:ResourceWarning")
    async def test_an_undecodable_content_encoding_is_the_error_its_status_says(
        self, raw: RawServer, flavour: str, status: int, error: type[Exception], attempts: int
    ) -> None:
        auth = make_auth(flavour, f"{raw.base}/garbled?status={status}", max_retries=1,
                         backoff=0)
        result = await get_token(flavour, auth)
        assert isinstance(result, error), result
        assert result.status_code == status
        if status != 503:
            assert "Content-Encoding cannot be decoded" in str(result)
        assert len(raw.paths) == attempts  # only a 5xx is tried again

    @pytest.mark.anyio
    @pytest.mark.parametrize(("flavour", "anyio_backend"), flavours())
    async def test_an_answer_within_the_cap_is_a_token(
        self, raw: RawServer, flavour: str
    ) -> None:
        auth = make_auth(flavour, f"{raw.base}/token", max_response_bytes=200)
        token = await get_token(flavour, auth)
        assert not isinstance(token, Exception), token
        assert token.access_token == "tok"


class TestWaiters:
    """Callers waiting on another caller's token request are released when it is bounded."""

    def test_threads_waiting_on_a_dripping_request_share_its_timeout(
        self, raw: RawServer
    ) -> None:
        timeout = 0.5
        auth = make_auth("requests", f"{raw.base}/drip", timeout=timeout, max_retries=0)
        results: list[Any] = []

        def work() -> None:
            try:
                results.append(auth.get_token())
            except Exception as exc:
                results.append(exc)

        owner = threading.Thread(target=work)
        started = time.monotonic()
        owner.start()
        assert raw.wait_for(lambda: raw.paths == ["/drip"])
        waiters = [threading.Thread(target=work) for _ in range(4)]
        for thread in waiters:
            thread.start()
        for thread in [owner, *waiters]:
            thread.join(DEADLINE)
            assert not thread.is_alive()
        elapsed = time.monotonic() - started
        assert len(results) == 5
        assert all(isinstance(r, oauth_cc_auth.TokenEndpointError) for r in results), results
        assert raw.paths == ["/drip"]  # one token request for all of them
        assert elapsed < 3 * timeout
        auth.close()

    @pytest.mark.anyio
    @pytest.mark.parametrize(
        ("where", "anyio_backend"),
        [pytest.param("thread", "asyncio", id="thread"),
         *(pytest.param("task", backend, id=backend) for backend in BACKENDS)],
    )
    async def test_a_waiter_gives_up_when_the_request_outlives_its_bound(
        self, where: str
    ) -> None:
        # An owner stuck where no deadline of ours reaches (here a user's transport that
        # never answers): a waiter gets a TokenEndpointError after the longest the token
        # request may take: (max_retries + 2) × timeout + backoff caps = 2 × 0.2 s.
        release = threading.Event()
        entered = threading.Event()

        def hang(request: httpx.Request) -> httpx.Response:
            entered.set()
            release.wait(DEADLINE)
            return httpx.Response(503)

        client = httpx.Client(transport=httpx.MockTransport(hang))
        auth = HttpxAuth("id", "s", token_url="https://auth.example/token", client=client,
                         cache=MemoryCache(), timeout=0.2, max_retries=0, max_retry_after=0)
        owner = threading.Thread(target=_swallow_sync, args=(auth.get_token,))
        owner.start()
        try:
            assert await anyio.to_thread.run_sync(entered.wait, DEADLINE)
            started = time.monotonic()
            result: Any
            try:
                if where == "thread":
                    result = await anyio.to_thread.run_sync(auth.get_token)
                else:
                    result = await auth.aget_token()
            except oauth_cc_auth.TokenEndpointError as exc:
                result = exc
            elapsed = time.monotonic() - started
        finally:
            release.set()
            await anyio.to_thread.run_sync(owner.join, DEADLINE)
            client.close()
        assert isinstance(result, oauth_cc_auth.TokenEndpointError), result
        assert "did not end within 0.4 s" in str(result)
        assert 0.35 <= elapsed < 3 * 0.4

    @pytest.mark.anyio
    @pytest.mark.parametrize("anyio_backend", BACKENDS)
    async def test_a_task_waiting_on_a_task_of_its_loop_gives_up_too(self) -> None:
        release = anyio.Event()
        entered = anyio.Event()

        async def hang(request: httpx2.Request) -> httpx2.Response:
            entered.set()
            with anyio.CancelScope(shield=True):  # deaf to the deadline's cancellation
                await release.wait()
            return httpx2.Response(503)

        async_client = httpx2.AsyncClient(transport=httpx2.MockTransport(hang))
        auth = Httpx2Auth("id", "s", token_url="https://auth.example/token",
                          async_client=async_client, cache=MemoryCache(), timeout=0.2,
                          max_retries=0, max_retry_after=0)
        with anyio.fail_after(DEADLINE):
            async with anyio.create_task_group() as tg:
                tg.start_soon(_swallow, auth.aget_token)
                await entered.wait()
                started = time.monotonic()
                try:
                    result: Any = await auth.aget_token()
                except oauth_cc_auth.TokenEndpointError as exc:
                    result = exc
                elapsed = time.monotonic() - started
                release.set()
        await async_client.aclose()
        assert isinstance(result, oauth_cc_auth.TokenEndpointError), result
        assert "did not end within 0.4 s" in str(result)
        assert 0.35 <= elapsed < 3 * 0.4


def _swallow_sync(function: Callable[[], Any]) -> None:
    with contextlib.suppress(oauth_cc_auth.AuthError):
        function()


async def _swallow(function: Callable[[], Any]) -> None:
    with contextlib.suppress(oauth_cc_auth.AuthError):
        await function()


class TestOptions:
    """``max_response_bytes`` is validated and read by ``from_config`` and ``from_env``."""

    def test_default_and_validation(self) -> None:
        auth = RequestsAuth("id", "s", token_url="https://auth.example/token")
        assert auth._config.max_response_bytes == 1048576
        for bad in (0, -1, 1.5, True, "10"):
            with pytest.raises(oauth_cc_auth.ConfigurationError, match="max_response_bytes"):
                RequestsAuth("id", "s", token_url="https://auth.example/token",
                             max_response_bytes=bad)
        with pytest.raises(oauth_cc_auth.ConfigurationError, match="timeout"):
            RequestsAuth("id", "s", token_url="https://auth.example/token",
                         timeout=float("inf"))

    def test_from_config_and_env(self) -> None:
        base = {"client_id": "id", "client_secret": "s", "token_url": "https://a.example/t"}
        auth = HttpxAuth.from_config({**base, "max_response_bytes": 4096})
        assert auth._config.max_response_bytes == 4096
        env = {"OAUTH_CC_" + k.upper(): v for k, v in base.items()}
        auth = Httpx2Auth.from_env({**env, "OAUTH_CC_MAX_RESPONSE_BYTES": "2048"})
        assert auth._config.max_response_bytes == 2048
        with pytest.raises(oauth_cc_auth.ConfigurationError, match="max_response_bytes"):
            RequestsAuth.from_env({**env, "OAUTH_CC_MAX_RESPONSE_BYTES": "lots"})


def test_a_mounted_requests_adapter_that_answers_from_memory() -> None:
    """A transport adapter of the user's that builds its answer in memory (no raw stream)."""
    import requests
    from requests.adapters import BaseAdapter

    class InMemory(BaseAdapter):
        def send(self, request: Any, **kwargs: Any) -> requests.Response:
            response = requests.Response()
            response.status_code = 200
            response.headers["Content-Type"] = "application/json"
            response._content = json.dumps({"access_token": "mem", "expires_in": 60}).encode()
            response.request, response.url = request, request.url
            return response

        def close(self) -> None:
            pass

    session = requests.Session()
    session.mount("https://", InMemory())
    auth = RequestsAuth("id", "secret", token_url="https://auth.example/token",
                        session=session, cache=MemoryCache())
    assert auth.get_token().access_token == "mem"
    too_small = RequestsAuth("id", "secret", token_url="https://auth.example/token",
                             session=session, cache=MemoryCache(), max_response_bytes=10)
    with pytest.raises(oauth_cc_auth.TokenResponseError, match="max_response_bytes=10"):
        too_small.get_token()


def test_requests_through_a_proxy_bounds_dripping_headers(
    raw: RawServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token session's own connections also through an HTTP proxy (the environment's)."""
    monkeypatch.setenv("HTTP_PROXY", raw.base)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    auth = RequestsAuth("id", "secret", token_url="http://auth.example/drip-headers",
                        insecure_transport=True, timeout=0.5, max_retries=0,
                        cache=MemoryCache())
    started = time.monotonic()
    result = get_token_sync(auth)
    assert isinstance(result, oauth_cc_auth.TokenEndpointError), result
    assert time.monotonic() - started < 1.5
    assert raw.paths == ["http://auth.example/drip-headers"]
