"""Single flight: however many threads or tasks need a token at once, one token request;
through every flavour, and across httpx and httpx2 in one process."""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import pytest
import requests
import trio

import oauth_cc_auth
from oauth_cc_auth import MemoryCache
from oauth_cc_auth.testing import Emulator, FakeClock, Reply
from tests.conftest import (
    API_URL,
    ASYNC,
    SYNC,
    Httpx2AsyncHarness,
    Httpx2SyncHarness,
    HttpxAsyncHarness,
    HttpxFamilyHarness,
    HttpxSyncHarness,
    RequestsHarness,
)

THREADS = 32
TASKS = 200


def _in_threads(n: int, work: Callable[[], Any]) -> list[Any]:
    """Run *work* in *n* threads released together by a barrier; results or exceptions."""
    barrier = threading.Barrier(n)

    def run() -> Any:
        barrier.wait()
        try:
            return work()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: run(), range(n)))


def _sync_get(harness: Any, auth: Any) -> Callable[[], int]:
    if isinstance(harness, RequestsHarness):
        session = requests.Session()
        session.auth = auth
        return lambda: session.get(API_URL).status_code
    client = harness.client(auth)
    return lambda: client.get(API_URL).status_code


@pytest.mark.parametrize("harness", SYNC, indirect=True)
class TestThreads:
    """32 threads behind a barrier against a slow token endpoint."""

    def test_cold_start_makes_one_token_request(self, harness: Any) -> None:
        harness.server.delay = 0.3
        auth = harness.auth()
        results = _in_threads(THREADS, _sync_get(harness, auth))
        assert results == [200] * THREADS
        assert len(harness.server.received_at("token")) == 1
        assert len(harness.server.received_at("resource")) == THREADS

    def test_expiry_makes_one_token_request(self, harness: Any) -> None:
        auth = harness.auth()
        get = _sync_get(harness, auth)
        assert get() == 200
        harness.clock.advance(3600)
        harness.server.delay = 0.3
        assert _in_threads(THREADS, get) == [200] * THREADS
        assert len(harness.server.received_at("token")) == 2

    def test_waiters_share_the_failure(self, harness: Any) -> None:
        harness.server.delay = 0.3
        harness.server.answer_next(Reply(400, json={"error": "invalid_client"}))
        results = _in_threads(THREADS, _sync_get(harness, harness.auth()))
        assert all(isinstance(r, oauth_cc_auth.TokenRequestError) for r in results), results
        assert len(harness.server.received_at("token")) == 1
        # Only a caller arriving after the failure starts a new token request.
        assert _sync_get(harness, harness.auth())() == 200
        assert len(harness.server.received_at("token")) == 2

    def test_concurrent_401s_fetch_one_new_token(self, harness: Any) -> None:
        auth = harness.auth()
        get = _sync_get(harness, auth)
        assert get() == 200
        harness.server.revoke_all()
        harness.server.delay = 0.3
        assert _in_threads(THREADS, get) == [200] * THREADS
        # One new token for all: a 401 on a token already replaced throws nothing away.
        assert len(harness.server.received_at("token")) == 2


@pytest.mark.parametrize("harness", ASYNC, indirect=True)
class TestAsyncTasks:
    """200 tasks behind a barrier against a slow token endpoint."""

    def test_asyncio_cold_start_makes_one_token_request(self, harness: HttpxFamilyHarness) -> None:
        harness.server.delay = 0.3
        auth = harness.auth()

        async def main() -> list[int]:
            barrier = asyncio.Barrier(TASKS)
            async with harness.async_client(auth) as client:

                async def one() -> int:
                    await barrier.wait()
                    return (await client.get(API_URL)).status_code

                return await asyncio.gather(*(one() for _ in range(TASKS)))

        assert asyncio.run(main()) == [200] * TASKS
        assert len(harness.server.received_at("token")) == 1
        assert len(harness.server.received_at("resource")) == TASKS

    def test_asyncio_waiters_share_the_failure(self, harness: HttpxFamilyHarness) -> None:
        harness.server.delay = 0.3
        harness.server.answer_next(Reply(503))
        auth = harness.auth(max_retries=0)

        async def main() -> list[Any]:
            barrier = asyncio.Barrier(TASKS)
            async with harness.async_client(auth) as client:

                async def one() -> Any:
                    await barrier.wait()
                    return (await client.get(API_URL)).status_code

                return await asyncio.gather(*(one() for _ in range(TASKS)), return_exceptions=True)

        results = asyncio.run(main())
        assert all(isinstance(r, oauth_cc_auth.TokenEndpointError) for r in results)
        assert len(harness.server.received_at("token")) == 1

    def test_trio_tasks_make_one_token_request(self, harness: HttpxFamilyHarness) -> None:
        harness.server.delay = 0.3
        auth = harness.auth()
        statuses: list[int] = []

        async def main() -> None:
            ready = trio.Event()
            async with harness.async_client(auth) as client:

                async def one() -> None:
                    await ready.wait()
                    statuses.append((await client.get(API_URL)).status_code)

                async with trio.open_nursery() as nursery:
                    for _ in range(100):
                        nursery.start_soon(one)
                    await trio.sleep(0.05)
                    ready.set()

        trio.run(main)
        assert statuses == [200] * 100
        assert len(harness.server.received_at("token")) == 1

    def test_cancelled_fetch_lets_a_waiter_take_over(self, harness: HttpxFamilyHarness) -> None:
        harness.server.delay = 0.5
        auth = harness.auth()

        async def main() -> int:
            async with harness.async_client(auth) as client:
                owner = asyncio.create_task(client.get(API_URL))
                await asyncio.sleep(0.1)  # the owner is now waiting on the token endpoint
                waiter = asyncio.create_task(client.get(API_URL))
                await asyncio.sleep(0.1)
                owner.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await owner
                return (await waiter).status_code

        assert asyncio.run(main()) == 200
        assert len(harness.server.received_at("token")) == 2

    def test_threads_and_tasks_share_one_token_request(self, harness: HttpxFamilyHarness) -> None:
        harness.server.delay = 0.3
        auth = harness.auth()
        barrier = threading.Barrier(2)

        def in_thread() -> int:
            with harness.client(auth) as client:
                barrier.wait()
                return client.get(API_URL).status_code

        async def tasks() -> list[int]:
            async with harness.async_client(auth) as client:
                await anyio.to_thread.run_sync(barrier.wait)
                return await asyncio.gather(*(client.get(API_URL) for _ in range(20)))

        with ThreadPoolExecutor(1) as pool:
            thread_result = pool.submit(in_thread)
            responses = asyncio.run(tasks())
        assert thread_result.result() == 200
        assert [r.status_code for r in responses] == [200] * 20
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
        assert [r.headers["authorization"] for r in server.received_at("resource")] == ["Bearer tok-1"] * 3

    def test_the_process_wide_default_cache_is_shared(
        self, pair: tuple[HttpxFamilyHarness, HttpxFamilyHarness], server: Emulator
    ) -> None:
        old, new = pair
        client_id = f"client-{uuid.uuid4()}"  # a key of its own in the process-wide cache
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
        assert [r.headers["authorization"] for r in server.received_at("resource")] == [
            "Bearer tok-1",
            "Bearer tok-1",
            "Bearer tok-2",
            "Bearer tok-2",
        ]

    def test_threads_of_both_libraries_make_one_token_request(
        self, pair: tuple[HttpxFamilyHarness, HttpxFamilyHarness], server: Emulator
    ) -> None:
        old, new = pair
        server.delay = 0.3
        gets = [_sync_get(old, old.auth()), _sync_get(new, new.auth())]
        turn = itertools.count()
        results = _in_threads(THREADS, lambda: gets[next(turn) % 2]())
        assert results == [200] * THREADS
        assert len(server.received_at("token")) == 1
        assert len(server.received_at("resource")) == THREADS

    def test_asyncio_tasks_of_both_libraries_make_one_token_request(
        self, async_pair: tuple[HttpxFamilyHarness, HttpxFamilyHarness], server: Emulator
    ) -> None:
        old, new = async_pair
        server.delay = 0.3

        async def main() -> list[int]:
            barrier = asyncio.Barrier(TASKS)
            async with old.async_client(old.auth()) as a, new.async_client(new.auth()) as b:

                async def one(client: Any) -> int:
                    await barrier.wait()
                    return (await client.get(API_URL)).status_code

                return await asyncio.gather(*(one((a, b)[n % 2]) for n in range(TASKS)))

        assert asyncio.run(main()) == [200] * TASKS
        assert len(server.received_at("token")) == 1
        assert len(server.received_at("resource")) == TASKS
