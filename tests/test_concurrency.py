"""Single flight: however many threads or tasks need a token at once, one token request."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import httpx
import pytest
import requests
import trio

import oauth_cc_auth
from tests.conftest import API_URL, HttpxAsyncHarness, Reply

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
    if harness.name == "requests":
        session = requests.Session()
        session.auth = auth
        return lambda: session.get(API_URL).status_code
    client = httpx.Client(auth=auth)
    return lambda: client.get(API_URL).status_code


@pytest.mark.parametrize("harness", ["requests", "httpx-sync"], indirect=True)
class TestThreads:
    """32 threads behind a barrier against a slow token endpoint."""

    def test_cold_start_makes_one_token_request(self, harness: Any) -> None:
        harness.server.delay = 0.3
        auth = harness.auth()
        results = _in_threads(THREADS, _sync_get(harness, auth))
        assert results == [200] * THREADS
        assert len(harness.server.token_requests) == 1
        assert len(harness.server.api_requests) == THREADS

    def test_expiry_makes_one_token_request(self, harness: Any) -> None:
        auth = harness.auth()
        get = _sync_get(harness, auth)
        assert get() == 200
        harness.clock.advance(3600)
        harness.server.delay = 0.3
        assert _in_threads(THREADS, get) == [200] * THREADS
        assert len(harness.server.token_requests) == 2

    def test_waiters_share_the_failure(self, harness: Any) -> None:
        harness.server.delay = 0.3
        harness.server.token_replies.append(Reply(400, json={"error": "invalid_client"}))
        results = _in_threads(THREADS, _sync_get(harness, harness.auth()))
        assert all(isinstance(r, oauth_cc_auth.TokenRequestError) for r in results), results
        assert len(harness.server.token_requests) == 1
        # Only a caller arriving after the failure starts a new token request.
        assert _sync_get(harness, harness.auth())() == 200
        assert len(harness.server.token_requests) == 2

    def test_concurrent_401s_fetch_one_new_token(self, harness: Any) -> None:
        auth = harness.auth()
        get = _sync_get(harness, auth)
        assert get() == 200
        harness.server.revoke_all()
        harness.server.delay = 0.3
        assert _in_threads(THREADS, get) == [200] * THREADS
        # One new token for all: a 401 on a token already replaced throws nothing away.
        assert len(harness.server.token_requests) == 2


@pytest.mark.parametrize("harness", ["httpx-async"], indirect=True)
class TestAsyncTasks:
    """200 tasks behind a barrier against a slow token endpoint."""

    def test_asyncio_cold_start_makes_one_token_request(self, harness: HttpxAsyncHarness) -> None:
        harness.server.delay = 0.3
        auth = harness.auth()

        async def main() -> list[int]:
            barrier = asyncio.Barrier(TASKS)
            async with httpx.AsyncClient(auth=auth) as client:

                async def one() -> int:
                    await barrier.wait()
                    return (await client.get(API_URL)).status_code

                return await asyncio.gather(*(one() for _ in range(TASKS)))

        assert asyncio.run(main()) == [200] * TASKS
        assert len(harness.server.token_requests) == 1
        assert len(harness.server.api_requests) == TASKS

    def test_asyncio_waiters_share_the_failure(self, harness: HttpxAsyncHarness) -> None:
        harness.server.delay = 0.3
        harness.server.token_replies.append(Reply(503))
        auth = harness.auth(max_retries=0)

        async def main() -> list[Any]:
            barrier = asyncio.Barrier(TASKS)
            async with httpx.AsyncClient(auth=auth) as client:

                async def one() -> Any:
                    await barrier.wait()
                    return (await client.get(API_URL)).status_code

                return await asyncio.gather(*(one() for _ in range(TASKS)), return_exceptions=True)

        results = asyncio.run(main())
        assert all(isinstance(r, oauth_cc_auth.TokenEndpointError) for r in results)
        assert len(harness.server.token_requests) == 1

    def test_trio_tasks_make_one_token_request(self, harness: HttpxAsyncHarness) -> None:
        harness.server.delay = 0.3
        auth = harness.auth()
        statuses: list[int] = []

        async def main() -> None:
            ready = trio.Event()
            async with httpx.AsyncClient(auth=auth) as client:

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
        assert len(harness.server.token_requests) == 1

    def test_cancelled_fetch_lets_a_waiter_take_over(self, harness: HttpxAsyncHarness) -> None:
        harness.server.delay = 0.5
        auth = harness.auth()

        async def main() -> int:
            async with httpx.AsyncClient(auth=auth) as client:
                owner = asyncio.create_task(client.get(API_URL))
                await asyncio.sleep(0.1)  # the owner is now waiting on the token endpoint
                waiter = asyncio.create_task(client.get(API_URL))
                await asyncio.sleep(0.1)
                owner.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await owner
                return (await waiter).status_code

        assert asyncio.run(main()) == 200
        assert len(harness.server.token_requests) == 2

    def test_threads_and_tasks_share_one_token_request(self, harness: HttpxAsyncHarness) -> None:
        harness.server.delay = 0.3
        auth = harness.auth()
        barrier = threading.Barrier(2)

        def in_thread() -> int:
            with httpx.Client(auth=auth) as client:
                barrier.wait()
                return client.get(API_URL).status_code

        async def tasks() -> list[int]:
            async with httpx.AsyncClient(auth=auth) as client:
                await anyio.to_thread.run_sync(barrier.wait)
                return await asyncio.gather(*(client.get(API_URL) for _ in range(20)))

        with ThreadPoolExecutor(1) as pool:
            thread_result = pool.submit(in_thread)
            responses = asyncio.run(tasks())
        assert thread_result.result() == 200
        assert [r.status_code for r in responses] == [200] * 20
        assert len(harness.server.token_requests) == 1
