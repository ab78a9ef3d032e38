"""Single flight: however many threads or tasks need a token at once, one token request;
through every flavour, and across httpx and httpx2 in one process.

The callers are made to overlap, never assumed to: the emulator holds the token request at a
gate until the slot counts every other caller waiting for that request
(``TokenSlot.statistics().waiters``); only then is the gate opened. A test whose callers do
not overlap fails instead of passing by luck, and no test depends on how busy the machine is.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.to_thread
import pytest
import requests
import requests_mock

import oauth_cc_auth
from oauth_cc_auth import MemoryCache
from oauth_cc_auth._slots import TokenSlot
from oauth_cc_auth.testing import Answered, EmulatedClient, Emulator, FakeClock, Reply
from tests._contention import DEADLINE, acontend, contend
from tests.conftest import (
    API_URL,
    ASYNC,
    SECRET,
    SYNC,
    Harness,
    Httpx2AsyncHarness,
    Httpx2SyncHarness,
    HttpxAsyncHarness,
    HttpxFamilyHarness,
    HttpxSyncHarness,
    RequestsHarness,
    is_token_url,
)
from tests.test_dpop import read_proof

THREADS = 32
TASKS = 200

# requests-mock serializes every Session.send of the process through one lock: a caller
# inside send would keep the others out. The API sessions here send as requests does,
# through requests-mock's adapter mounted on them; the auth objects' token requests still
# go through the harness's mocker (only the one owning the flight sends one).
_SEND = requests.Session.send
assert _SEND.__module__ == "requests.sessions", "requests-mock was active at import"


class _UnlockedSession(requests.Session):
    send = _SEND


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    # Both async adapters of the httpx family run on anyio, so on trio as well as asyncio.
    return str(request.param)


def _slot_of(auth: Any) -> TokenSlot:
    """The slot of *auth*'s cache key: its token, and the flight fetching the next one."""
    slot: TokenSlot = auth._manager.slot
    return slot


def _aget(client: Any) -> Callable[[], Awaitable[int]]:
    """A function making one API request with the async *client*: its status."""

    async def get() -> int:
        return int((await client.get(API_URL)).status_code)

    return get


def _hold_resource_requests(monkeypatch: pytest.MonkeyPatch, server: Emulator, n: int) -> None:
    """Answer none of the next *n* resource requests until all *n* have come: their callers
    all sent the token they had before any of them saw a 401."""
    barrier = threading.Barrier(n, timeout=DEADLINE)
    held = itertools.count()
    handle = server.handle

    def holding(method: str, url: str, headers: Any, body: bytes = b"") -> Answered:
        if not is_token_url(url) and next(held) < n:
            barrier.wait()
        return handle(method, url, headers, body)

    monkeypatch.setattr(server, "handle", holding)


def _authorizations(server: Emulator) -> list[str]:
    return [r.headers["authorization"] for r in server.received_at("resource")]


def _proof_ids(server: Emulator) -> int:
    """How many different DPoP proofs (by ``jti``) the resource received."""
    return len({read_proof(r.headers["dpop"])[1]["jti"] for r in server.received_at("resource")})


@pytest.fixture
def get(harness: Harness) -> Iterator[Callable[[Any], Callable[[], int]]]:
    """``get(auth)``: a function making one API request through *auth* in *harness*'s sync
    flavour (with a session or client closed at the end of the test)."""
    with contextlib.ExitStack() as stack:

        def make(auth: Any) -> Callable[[], int]:
            if isinstance(harness, RequestsHarness):
                adapter = requests_mock.Adapter()
                adapter.register_uri(
                    requests_mock.ANY, requests_mock.ANY, content=harness._callback
                )
                session = stack.enter_context(_UnlockedSession())
                session.mount("https://", adapter)
                session.auth = auth
                return lambda: session.get(API_URL, timeout=DEADLINE).status_code
            assert isinstance(harness, HttpxFamilyHarness)
            client = stack.enter_context(harness.client(auth, timeout=DEADLINE))
            return lambda: int(client.get(API_URL).status_code)

        yield make


@pytest.mark.parametrize("harness", SYNC, indirect=True)
class TestThreads:
    """32 threads needing a token at once, the token request held until all wait for it."""

    def test_cold_start_makes_one_token_request(
        self, harness: Harness, get: Callable[[Any], Callable[[], int]]
    ) -> None:
        auth = harness.auth()
        results = contend(harness.server, _slot_of(auth), [get(auth)] * THREADS)
        assert results == [200] * THREADS
        assert len(harness.server.received_at("token")) == 1
        assert _authorizations(harness.server) == ["Bearer tok-1"] * THREADS

    def test_dpop_cold_start_makes_one_token_request(
        self, harness: Harness, get: Callable[[Any], Callable[[], int]]
    ) -> None:
        auth = harness.auth(dpop=True)
        results = contend(harness.server, _slot_of(auth), [get(auth)] * THREADS)
        assert results == [200] * THREADS  # each proof checked by the emulator
        assert len(harness.server.received_at("token")) == 1
        assert _authorizations(harness.server) == ["DPoP tok-1"] * THREADS
        assert _proof_ids(harness.server) == THREADS
        assert not harness.server.dpop_refusals

    def test_expiry_makes_one_token_request(
        self, harness: Harness, get: Callable[[Any], Callable[[], int]]
    ) -> None:
        auth = harness.auth()
        one = get(auth)
        assert one() == 200
        harness.clock.advance(3600)
        assert contend(harness.server, _slot_of(auth), [one] * THREADS) == [200] * THREADS
        assert len(harness.server.received_at("token")) == 2
        assert _authorizations(harness.server) == ["Bearer tok-1"] + ["Bearer tok-2"] * THREADS

    def test_waiters_share_the_failure(
        self, harness: Harness, get: Callable[[Any], Callable[[], int]]
    ) -> None:
        harness.server.answer_next(Reply(400, json={"error": "invalid_client"}))
        auth = harness.auth()
        results = contend(harness.server, _slot_of(auth), [get(auth)] * THREADS)
        assert all(isinstance(r, oauth_cc_auth.TokenRequestError) for r in results), results
        assert len(harness.server.received_at("token")) == 1
        # Only a caller arriving after the failure starts a new token request.
        assert get(harness.auth())() == 200
        assert len(harness.server.received_at("token")) == 2

    def test_concurrent_401s_fetch_one_new_token(
        self,
        harness: Harness,
        get: Callable[[Any], Callable[[], int]],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        auth = harness.auth()
        one = get(auth)
        assert one() == 200
        harness.server.revoke_all()
        # Every thread sends tok-1 and is refused before the renewal: 32 refusals of one
        # token, of which 31 wait for the renewal the first one started.
        _hold_resource_requests(monkeypatch, harness.server, THREADS)
        assert contend(harness.server, _slot_of(auth), [one] * THREADS) == [200] * THREADS
        # One new token for all: a 401 on a token already replaced throws nothing away.
        assert len(harness.server.received_at("token")) == 2
        assert _authorizations(harness.server) == (
            ["Bearer tok-1"] * (THREADS + 1) + ["Bearer tok-2"] * THREADS
        )


@pytest.mark.anyio
@pytest.mark.parametrize("harness", ASYNC, indirect=True)
class TestAsyncTasks:
    """200 tasks of one event loop (asyncio or trio) needing a token at once."""

    async def test_cold_start_makes_one_token_request(self, harness: HttpxFamilyHarness) -> None:
        auth = harness.auth()
        async with harness.async_client(auth, timeout=DEADLINE) as client:
            results = await acontend(harness.server, _slot_of(auth), [_aget(client)] * TASKS)
        assert results == [200] * TASKS
        assert len(harness.server.received_at("token")) == 1
        assert _authorizations(harness.server) == ["Bearer tok-1"] * TASKS

    async def test_dpop_cold_start_makes_one_token_request(
        self, harness: HttpxFamilyHarness
    ) -> None:
        auth = harness.auth(dpop=True)
        async with harness.async_client(auth, timeout=DEADLINE) as client:
            results = await acontend(harness.server, _slot_of(auth), [_aget(client)] * TASKS)
        assert results == [200] * TASKS  # each proof checked by the emulator
        assert len(harness.server.received_at("token")) == 1
        assert _authorizations(harness.server) == ["DPoP tok-1"] * TASKS
        assert _proof_ids(harness.server) == TASKS
        assert not harness.server.dpop_refusals

    async def test_waiters_share_the_failure(self, harness: HttpxFamilyHarness) -> None:
        harness.server.answer_next(Reply(503))
        auth = harness.auth(max_retries=0)
        async with harness.async_client(auth, timeout=DEADLINE) as client:
            results = await acontend(harness.server, _slot_of(auth), [_aget(client)] * TASKS)
        assert all(isinstance(r, oauth_cc_auth.TokenEndpointError) for r in results), results
        assert len(harness.server.received_at("token")) == 1

    async def test_cancelled_fetch_lets_a_waiter_take_over(
        self, harness: HttpxFamilyHarness
    ) -> None:
        server = harness.server
        auth = harness.auth()
        slot = _slot_of(auth)
        first = server.gate(limit=DEADLINE)
        owner = anyio.CancelScope()
        statuses: list[int] = []

        async def until(condition: Callable[[], bool]) -> None:
            while not condition():
                await anyio.sleep(0.002)  # polling the condition

        with anyio.fail_after(DEADLINE):
            async with harness.async_client(auth, timeout=DEADLINE) as client:

                async def get(scope: anyio.CancelScope | None = None) -> None:
                    with scope or anyio.CancelScope():
                        statuses.append((await client.get(API_URL)).status_code)

                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(get, owner)
                    await until(lambda: first.arrived == 1)  # the owner's request is held
                    tasks.start_soon(get)
                    await until(lambda: slot.statistics().waiters == 1)
                    # The next token request passes; the owner's stays held until the end.
                    second = server.gate(limit=DEADLINE)
                    second.open()
                    owner.cancel()
                # The waiter took the flight over: its own token request was answered while
                # the cancelled owner's was still held.
                assert owner.cancelled_caught
                assert statuses == [200]
                assert first.waiting == 1
                first.open()
        assert second.arrived == 1
        assert len(server.received_at("token")) == 2
        assert _authorizations(server) == ["Bearer tok-1"]

    async def test_threads_and_tasks_share_one_token_request(
        self, harness: HttpxFamilyHarness
    ) -> None:
        auth = harness.auth()

        def in_thread() -> int:
            with harness.client(auth, timeout=DEADLINE) as client:
                return int(client.get(API_URL).status_code)

        async def thread() -> int:
            return await anyio.to_thread.run_sync(in_thread)

        async with harness.async_client(auth, timeout=DEADLINE) as client:
            calls = [thread, *[_aget(client)] * 20, thread]
            results = await acontend(harness.server, _slot_of(auth), calls)
        assert results == [200] * 22
        assert len(harness.server.received_at("token")) == 1


class TestHttpxAndHttpx2InOneProcess:
    """A codebase half-way through its migration: httpx and httpx2 clients with the same
    credentials share one token, and one token request."""

    @pytest.fixture
    def pair(
        self, server: Emulator, cache: MemoryCache, clock: FakeClock
    ) -> Iterator[tuple[HttpxFamilyHarness, HttpxFamilyHarness]]:
        old, new = HttpxSyncHarness(server, cache, clock), Httpx2SyncHarness(server, cache, clock)
        with old.mocked(), new.mocked():
            yield old, new

    @pytest.fixture
    def async_pair(
        self, server: Emulator, cache: MemoryCache, clock: FakeClock
    ) -> Iterator[tuple[HttpxFamilyHarness, HttpxFamilyHarness]]:
        old = HttpxAsyncHarness(server, cache, clock)
        new = Httpx2AsyncHarness(server, cache, clock)
        with old.mocked(), new.mocked():
            yield old, new

    def test_one_token_request_for_both_libraries(
        self, pair: tuple[HttpxFamilyHarness, HttpxFamilyHarness], server: Emulator
    ) -> None:
        old, new = pair
        assert old.get(old.auth()).status_code == 200
        assert new.get(new.auth()).status_code == 200
        assert old.get(old.auth()).status_code == 200
        assert len(server.received_at("token")) == 1
        assert _authorizations(server) == ["Bearer tok-1"] * 3

    def test_the_process_wide_default_cache_is_shared(
        self, pair: tuple[HttpxFamilyHarness, HttpxFamilyHarness], server: Emulator
    ) -> None:
        old, new = pair
        client_id = f"client-{uuid.uuid4()}"  # a key of its own in the process-wide cache
        server.register_client(EmulatedClient("rfc6749", client_id, SECRET))
        assert old.get(old.auth(client_id=client_id, cache=None)).status_code == 200
        assert new.get(new.auth(client_id=client_id, cache=None)).status_code == 200
        assert len(server.received_at("token")) == 1

    def test_a_401_seen_by_one_library_renews_the_token_for_both(
        self, pair: tuple[HttpxFamilyHarness, HttpxFamilyHarness], server: Emulator
    ) -> None:
        old, new = pair
        old_auth, new_auth = old.auth(), new.auth()
        assert old.get(old_auth).status_code == 200
        server.revoke_all()
        response = new.get(new_auth)
        assert response.status_code == 200
        assert [r.status_code for r in response.history] == [401]
        assert old.get(old_auth).status_code == 200
        assert len(server.received_at("token")) == 2
        assert _authorizations(server) == [
            "Bearer tok-1",
            "Bearer tok-1",
            "Bearer tok-2",
            "Bearer tok-2",
        ]

    def test_threads_of_both_libraries_make_one_token_request(
        self, pair: tuple[HttpxFamilyHarness, HttpxFamilyHarness], server: Emulator
    ) -> None:
        old, new = pair
        old_auth, new_auth = old.auth(), new.auth()
        assert _slot_of(old_auth) is _slot_of(new_auth)
        with old.client(old_auth, timeout=DEADLINE) as a, new.client(new_auth) as b:
            gets = [lambda: a.get(API_URL).status_code, lambda: b.get(API_URL).status_code]
            results = contend(server, _slot_of(old_auth), gets * (THREADS // 2))
        assert results == [200] * THREADS
        assert len(server.received_at("token")) == 1
        assert _authorizations(server) == ["Bearer tok-1"] * THREADS

    @pytest.mark.anyio
    async def test_tasks_of_both_libraries_make_one_token_request(
        self, async_pair: tuple[HttpxFamilyHarness, HttpxFamilyHarness], server: Emulator
    ) -> None:
        old, new = async_pair
        old_auth, new_auth = old.auth(), new.auth()
        assert _slot_of(old_auth) is _slot_of(new_auth)
        async with (
            old.async_client(old_auth, timeout=DEADLINE) as a,
            new.async_client(new_auth, timeout=DEADLINE) as b,
        ):
            calls = [_aget(a), _aget(b)] * (TASKS // 2)
            results = await acontend(server, _slot_of(old_auth), calls)
        assert results == [200] * TASKS
        assert len(server.received_at("token")) == 1
        assert _authorizations(server) == ["Bearer tok-1"] * TASKS
