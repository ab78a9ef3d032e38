"""Refresh ahead (DESIGN §7 "Renewal"): while the cached token is valid no API request waits
for a token request; the refresh runs in the background, and never outlives ``close()``.

First the sans-IO flow stepped by hand, then every adapter over loopback against an emulator
whose token endpoint is slow, with each request's latency measured."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import httpx
import httpx2
import niquests
import pytest
import requests

from oauth_cc_auth import MemoryCache, TokenRequestError
from oauth_cc_auth._actions import Send, Spawn, Wait, Waited
from oauth_cc_auth._config import build_config
from oauth_cc_auth._drivers import run_sync
from oauth_cc_auth._flow import TokenManager
from oauth_cc_auth._messages import TokenHTTPResponse
from oauth_cc_auth.httpx import ClientCredentialsAuth as HttpxAuth
from oauth_cc_auth.httpx2 import ClientCredentialsAuth as Httpx2Auth
from oauth_cc_auth.niquests import AsyncClientCredentialsAuth as NiquestsAsyncAuth
from oauth_cc_auth.niquests import ClientCredentialsAuth as NiquestsAuth
from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth
from oauth_cc_auth.testing import Emulator, FakeClock, Gate, wait_for_refresh
from tests._contention import DEADLINE

URL = "https://auth.example/token"


def manager(clock: FakeClock, **options: Any) -> TokenManager:
    config = build_config("id", "secret", token_url=URL, **options)
    return TokenManager(config, cache=MemoryCache(), clock=clock, rng=lambda: 1.0)


def issued(access_token: str, expires_in: float = 100) -> TokenHTTPResponse:
    body = {"access_token": access_token, "expires_in": expires_in}
    return TokenHTTPResponse(200, {}, json.dumps(body).encode())


def first_token(m: TokenManager) -> Any:
    return run_sync(m.obtain(), lambda request: issued("t1"))


def due(**options: Any) -> tuple[FakeClock, TokenManager, Any]:
    """A manager whose token ``t1`` (100 s) is due: 50 s old, past half its life."""
    clock = FakeClock()
    m = manager(clock, **options)
    t1 = first_token(m)
    clock.advance(50)
    return clock, m, t1


def spawned(m: TokenManager) -> Spawn:
    """A refresh ahead started, as by a driver that runs it in the background."""
    flow = m.obtain()
    spawn = next(flow)
    assert isinstance(spawn, Spawn)
    with pytest.raises(StopIteration):
        flow.send(True)
    return spawn


class TestTheFlow:
    """What ``TokenManager.obtain`` yields and returns around a token's refresh time."""

    def test_a_due_token_is_returned_while_its_refresh_is_spawned(self) -> None:
        _, m, t1 = due()  # refresh_at: half of 100 s (leeway 60 s is more)
        flow = m.obtain()
        spawn = next(flow)
        assert isinstance(spawn, Spawn)
        with pytest.raises(StopIteration) as stop:
            flow.send(True)  # the driver runs it in the background
        assert stop.value.value is t1
        # Meanwhile every other caller gets the due token at once: no Send, no Wait.
        with pytest.raises(StopIteration) as other:
            next(m.obtain())
        assert other.value.value is t1
        assert m.slot.statistics().in_flight
        # The background work: one token request, and its token is the slot's.
        t2 = run_sync(spawn.work, lambda request: issued("t2"))
        assert t2.access_token == "t2"
        assert m.fresh_token() is t2
        assert not m.slot.statistics().in_flight

    def test_no_background_means_the_first_caller_refreshes_inline(self) -> None:
        _, m, _ = due()
        flow = m.obtain()
        assert isinstance(next(flow), Spawn)
        assert isinstance(flow.send(False), Send)  # trio: this caller does the request...
        with pytest.raises(StopIteration) as other:
            next(m.obtain())  # ...while another keeps the valid token
        assert other.value.value.access_token == "t1"
        with pytest.raises(StopIteration) as stop:
            flow.send(issued("t2"))
        assert stop.value.value.access_token == "t2"

    def test_run_sync_without_a_spawner_refreshes_inline(self) -> None:
        _, m, _ = due()
        assert run_sync(m.obtain(), lambda request: issued("t2")).access_token == "t2"

    def test_an_expired_token_is_waited_for_as_before(self) -> None:
        clock = FakeClock()
        m = manager(clock)
        first_token(m)
        clock.advance(100)  # expired: nothing valid to serve
        owner = m.obtain()
        assert isinstance(next(owner), Send)
        waiter = m.obtain()
        assert isinstance(next(waiter), Wait)
        with pytest.raises(StopIteration):
            owner.send(issued("t2"))
        with pytest.raises(StopIteration) as stop:
            waiter.send(Waited.ENDED)
        assert stop.value.value.access_token == "t2"

    def test_refresh_ahead_off_makes_every_caller_wait(self) -> None:
        _, m, _ = due(refresh_ahead=False)
        owner = m.obtain()
        assert isinstance(next(owner), Send)
        assert isinstance(next(m.obtain()), Wait)

    def test_background_work_that_never_ran_is_abandoned_and_started_again(self) -> None:
        _, m, _ = due()
        spawn = spawned(m)
        spawn.abandon()  # its task was cancelled before it started
        assert not m.slot.statistics().in_flight
        again = m.obtain()
        assert isinstance(next(again), Spawn)  # the next caller starts another
        spawn.abandon()  # abandoning an ended flight again changes nothing
        assert m.slot.statistics().in_flight

    def test_a_401_during_the_refresh_is_renewed_by_a_token_requested_after_it(self) -> None:
        _, m, t1 = due()
        background = spawned(m).work
        assert isinstance(next(background), Send)  # t2 requested...
        after = m.invalidate(t1)  # ...then the resource server refuses t1 (a revocation)
        retry = m.obtain(min_generation=after)
        assert isinstance(next(retry), Wait)  # the retry waits for the refresh in flight...
        with pytest.raises(StopIteration) as landed:
            background.send(issued("t2"))
        assert landed.value.value.access_token == "t2"
        # ...whose token, requested before the 401, is neither the retry's nor kept.
        assert m.slot.token is None
        assert isinstance(retry.send(Waited.ENDED), Send)
        with pytest.raises(StopIteration) as renewed:
            retry.send(issued("t3"))
        assert renewed.value.value.access_token == "t3"
        assert m.fresh_token() is not None
        assert m.fresh_token().access_token == "t3"

    def test_a_failed_refresh_ahead_keeps_the_valid_token_and_tries_later(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        clock, m, t1 = due()
        spawn = spawned(m)
        refused = TokenHTTPResponse(401, {}, b'{"error": "invalid_client"}')
        kept = run_sync(spawn.work, lambda request: refused)
        assert kept.access_token == "t1"
        assert kept.expires_at == t1.expires_at
        assert kept.refresh_at == pytest.approx(clock() + 25)  # half the 50 s left
        assert m.fresh_token() is kept
        assert "invalid_client" in caplog.text
        # Expired, the refusal is the caller's.
        clock.advance(50)
        with pytest.raises(TokenRequestError):
            run_sync(m.obtain(), lambda request: refused)


# -- over loopback: latency while tokens are refreshed ------------------------------------------

#: Tokens live this long (refreshed half-way, at 1 s)...
LIFETIME = 2.0
#: ...and every token request is answered this late: a request that waited for one takes
#: at least as long, so no request may (the bound: ten times the slowest loopback request
#: seen on a busy 2-core machine running the suite).
DELAY = 0.6
#: Each case sends requests for this long after its first token: two refreshes or so.
RUN = 2.6
THREADS = 8
TASKS = 20


def make_auth(emulator: Emulator, cls: Any, **options: Any) -> Any:
    client = emulator.client("rfc6749")
    options.setdefault("cache", MemoryCache())
    return cls(client.client_id, client.client_secret, token_url=emulator.token_url("rfc6749"),
               **options)


def slowed(emulator: Emulator) -> None:
    emulator.set_lifetime("rfc6749", LIFETIME)
    emulator.slow_next(100_000, DELAY)


def judge(latencies: list[float], statuses: list[int], emulator: Emulator,
          waited_allowed: int = 0) -> None:
    """No request failed; none but *waited_allowed* took as long as a token request; the
    tokens were refreshed about once per half-lifetime."""
    assert set(statuses) == {200}, statuses
    assert len(latencies) > 20
    ordered = sorted(latencies)
    summary = (f"{len(ordered)} requests: p50 {ordered[len(ordered) // 2] * 1000:.1f} ms, "
               f"max {ordered[-1] * 1000:.1f} ms")
    waited = [latency for latency in latencies if latency >= DELAY]
    assert len(waited) <= waited_allowed, summary
    refreshes = emulator.token_requests["rfc6749"] - 1
    assert 1 <= refreshes <= RUN / (LIFETIME / 2) + 1, (refreshes, summary)


def run_threads(get: Callable[[], int]) -> tuple[list[float], list[int]]:
    barrier = threading.Barrier(THREADS, timeout=DEADLINE)
    latencies: list[float] = []
    statuses: list[int] = []

    def worker() -> None:
        barrier.wait()
        end = time.monotonic() + RUN
        while time.monotonic() < end:
            started = time.monotonic()
            status = get()
            latencies.append(time.monotonic() - started)
            statuses.append(status)
            time.sleep(0.005)  # pacing, not ordering

    with ThreadPoolExecutor(THREADS) as pool:
        for future in [pool.submit(worker) for _ in range(THREADS)]:
            future.result(timeout=DEADLINE)
    return latencies, statuses


async def run_tasks(get: Callable[[], Awaitable[int]]) -> tuple[list[float], list[int]]:
    latencies: list[float] = []
    statuses: list[int] = []

    async def worker() -> None:
        end = time.monotonic() + RUN
        while time.monotonic() < end:
            started = time.monotonic()
            status = await get()
            latencies.append(time.monotonic() - started)
            statuses.append(status)
            await anyio.sleep(0.005)  # pacing, not ordering

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as group:
            for _ in range(TASKS):
                group.start_soon(worker)
    return latencies, statuses


def sync_flavour(name: str, auth_of: Callable[..., Any], url: str) -> tuple[Any, Any]:
    """An auth object of flavour *name* and a ``get()`` sending one request with it (a
    session per thread for requests and niquests, one client for httpx and httpx2)."""
    if name in ("requests", "niquests"):
        lib, cls = (requests, RequestsAuth) if name == "requests" else (niquests, NiquestsAuth)
        auth = auth_of(cls)
        local = threading.local()

        def get() -> int:
            if not hasattr(local, "session"):
                local.session = lib.Session()
            return int(local.session.get(url, auth=auth, timeout=10).status_code or 0)

        return auth, get
    lib, cls = {"httpx": (httpx, HttpxAuth), "httpx2": (httpx2, Httpx2Auth)}[name]
    auth = auth_of(cls)
    client = lib.Client(auth=auth, timeout=10)
    return auth, lambda: client.get(url).status_code


SYNC = [
    "requests",
    pytest.param("httpx", marks=pytest.mark.slow),
    pytest.param("httpx2", marks=pytest.mark.slow),
    pytest.param("niquests", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("flavour", SYNC)
def test_threads_never_wait_for_a_refresh(flavour: str) -> None:
    with Emulator() as emulator:
        slowed(emulator)
        url = emulator.resource_url("rfc6749")
        auth, get = sync_flavour(flavour, lambda cls: make_auth(emulator, cls), url)
        assert get() == 200  # the first token: waited for, as it must be
        latencies, statuses = run_threads(get)
        judge(latencies, statuses, emulator)
        auth.close()
        assert auth._background.running == 0


async def async_flavour(name: str, emulator: Emulator, stack: contextlib.AsyncExitStack,
                        ) -> tuple[Any, Callable[[], Awaitable[int]]]:
    url = emulator.resource_url("rfc6749")
    if name == "aiohttp":
        import aiohttp

        from oauth_cc_auth.aiohttp import ClientCredentialsAuth as AiohttpAuth

        auth = make_auth(emulator, AiohttpAuth)
        session = await stack.enter_async_context(aiohttp.ClientSession(middlewares=(auth,)))

        async def aget() -> int:
            async with session.get(url) as response:
                await response.read()
                return response.status

        return auth, aget
    if name == "niquests":
        auth = make_auth(emulator, NiquestsAsyncAuth)
        nsession = await stack.enter_async_context(niquests.AsyncSession())
        nsession.auth = auth

        async def nget() -> int:
            return int((await nsession.get(url, timeout=10)).status_code or 0)

        return auth, nget
    lib, cls = {"httpx": (httpx, HttpxAuth), "httpx2": (httpx2, Httpx2Auth)}[name]
    auth = make_auth(emulator, cls)
    client = await stack.enter_async_context(lib.AsyncClient(auth=auth, timeout=10))

    async def get() -> int:
        return int((await client.get(url)).status_code)

    return auth, get


ASYNC = [
    pytest.param("httpx", "asyncio"),
    pytest.param("httpx", "trio", marks=pytest.mark.slow),
    pytest.param("httpx2", "asyncio", marks=pytest.mark.slow),
    pytest.param("aiohttp", "asyncio", marks=pytest.mark.slow),
    pytest.param("niquests", "asyncio", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("flavour", "anyio_backend"), ASYNC)
@pytest.mark.anyio
async def test_tasks_never_wait_for_a_refresh(flavour: str, anyio_backend: str) -> None:
    with Emulator() as emulator:
        slowed(emulator)
        async with contextlib.AsyncExitStack() as stack:
            auth, get = await async_flavour(flavour, emulator, stack)
            assert await get() == 200
            latencies, statuses = await run_tasks(get)
            await auth.aclose()
        if anyio_backend == "trio":
            # No background without a nursery: the first caller of each refresh makes it
            # inline, the others keep the valid token.
            judge(latencies, statuses, emulator,
                  waited_allowed=emulator.token_requests["rfc6749"] - 1)
        else:
            judge(latencies, statuses, emulator)
        assert auth._background.running == 0


# -- revocation, close() and exit while a refresh is in flight ----------------------------------


def await_waiters(slot: Any, count: int) -> None:
    """Poll until *count* callers wait for the slot's token request (or fail at DEADLINE)."""
    deadline = time.monotonic() + DEADLINE
    while slot.statistics().waiters < count:
        assert time.monotonic() < deadline, slot.statistics()
        time.sleep(0.002)  # polling the condition, not ordering anything


def held_refresh(emulator: Emulator, flavour: str) -> tuple[Any, Callable[[], int], Any]:
    """An auth object of *flavour* with a token, a ``get()``, and the gate at which the
    refresh ahead of that token, now due, is held (the request that started it returned)."""
    clock = FakeClock()
    url = emulator.resource_url("rfc6749")
    auth, get = sync_flavour(flavour, lambda cls: make_auth(emulator, cls, clock=clock), url)
    assert get() == 200
    clock.advance(3550)  # due: 50 s before expiry
    gate = emulator.gate(limit=DEADLINE)
    assert get() == 200  # at once, on the valid token; its refresh waits at the gate
    assert gate.wait_for(1, DEADLINE)
    return auth, get, gate


@pytest.mark.parametrize("flavour", ["requests", pytest.param("httpx", marks=pytest.mark.slow)])
def test_a_revocation_during_a_background_refresh_ends_in_200s(flavour: str) -> None:
    with Emulator() as emulator:
        auth, get, gate = held_refresh(emulator, flavour)
        emulator.revoke_all()  # the token in use is refused from now on
        with ThreadPoolExecutor(THREADS) as pool:
            futures = [pool.submit(get) for _ in range(THREADS)]
            # Each got its 401 and waits for a token: the refresh in flight was requested
            # before the refusal, so they will not take its token but request one more.
            await_waiters(auth._manager.slot, THREADS)
            gate.open()
            assert [future.result(timeout=DEADLINE) for future in futures] == [200] * THREADS
        # The first token, the refresh in flight, and one renewal after the revocation.
        assert emulator.token_requests["rfc6749"] == 3
        auth.close()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_a_revocation_during_a_background_task_refresh_ends_in_200s() -> None:
    with Emulator() as emulator:
        clock = FakeClock()
        auth = make_auth(emulator, HttpxAuth, clock=clock)
        async with httpx.AsyncClient(auth=auth, timeout=10) as client:
            url = emulator.resource_url("rfc6749")
            assert (await client.get(url)).status_code == 200
            clock.advance(3550)
            gate = emulator.gate(limit=DEADLINE)
            assert (await client.get(url)).status_code == 200
            assert await anyio.to_thread.run_sync(gate.wait_for, 1, DEADLINE)
            emulator.revoke_all()
            statuses: list[int] = []

            async def get() -> None:
                statuses.append((await client.get(url)).status_code)

            with anyio.fail_after(DEADLINE):
                async with anyio.create_task_group() as group:
                    for _ in range(TASKS):
                        group.start_soon(get)
                    while auth._manager.slot.statistics().waiters < TASKS:
                        await anyio.sleep(0.002)  # polling the condition
                    gate.open()
            assert statuses == [200] * TASKS
            assert emulator.token_requests["rfc6749"] == 3
        await auth.aclose()


@pytest.mark.parametrize("flavour", ["requests", "httpx", "httpx2", "niquests"])
def test_close_stops_a_refresh_in_flight_at_once(flavour: str) -> None:
    with Emulator() as emulator:
        auth, get, gate = held_refresh(emulator, flavour)  # only close() can end it now
        first = auth.token
        started = time.monotonic()
        auth.close()
        assert time.monotonic() - started < 1.0
        assert auth._background.running == 0
        assert not auth._manager.slot.statistics().in_flight  # ended, without a token
        assert auth.token is first
        gate.open()
        # The object still works after close(), as before: the next due request refreshes.
        assert get() == 200
        wait_for_refresh(auth)
        assert auth.token is not first
        auth.close()


EXIT_SCRIPT = """
import asyncio, sys
from oauth_cc_auth.testing import FakeClock

client_id, secret, token_url, url, flavour = sys.argv[1:]
clock = FakeClock()
if flavour == "requests":
    import requests
    from oauth_cc_auth.requests import ClientCredentialsAuth

    auth = ClientCredentialsAuth(client_id, secret, token_url=token_url, clock=clock)
    session = requests.Session()
    assert session.get(url, auth=auth).status_code == 200
    print("ready", flush=True)
    sys.stdin.readline()
    clock.advance(3550)
    assert session.get(url, auth=auth).status_code == 200
    print("served", flush=True)
    sys.stdin.readline()  # once its refresh is held at the gate: exit without close()
else:
    import httpx
    from oauth_cc_auth.httpx import ClientCredentialsAuth

    async def main():
        asyncio.get_running_loop().slow_callback_duration = 10.0  # a first import is slow
        auth = ClientCredentialsAuth(client_id, secret, token_url=token_url, clock=clock)
        async with httpx.AsyncClient(auth=auth) as client:
            assert (await client.get(url)).status_code == 200
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
            clock.advance(3550)
            assert (await client.get(url)).status_code == 200
            print("served", flush=True)
            await asyncio.to_thread(sys.stdin.readline)  # its refresh held at the gate

    asyncio.run(main())  # ends its refresh task: cancelled, its client closed
"""


@pytest.mark.parametrize("flavour", ["requests", "httpx-asyncio"])
def test_a_refresh_in_flight_never_keeps_the_process_from_exiting(flavour: str) -> None:
    with Emulator() as emulator:
        client = emulator.client("rfc6749")
        command = [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c",
                   EXIT_SCRIPT, client.client_id, str(client.client_secret),
                   emulator.token_url("rfc6749"), emulator.resource_url("rfc6749"), flavour]
        process = subprocess.Popen(  # noqa: S603 - this interpreter, our own script
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        gate: Gate | None = None
        try:
            assert process.stdout is not None
            assert process.stdin is not None
            assert process.stdout.readline() == "ready\n"
            gate = emulator.gate(limit=DEADLINE)
            process.stdin.write("go\n")
            process.stdin.flush()
            assert process.stdout.readline() == "served\n"
            assert gate.wait_for(1, DEADLINE)  # its refresh is held at the gate...
            out, err = process.communicate("exit\n", timeout=DEADLINE / 2)  # ...it exits
        finally:
            if gate is not None:
                gate.open()
            if process.poll() is None:
                process.kill()
                process.communicate()  # its pipes closed
        assert process.returncode == 0, err
        assert out == ""
        assert err == ""


def test_a_fleet_sharing_a_cache_refreshes_ahead_once(tmp_path: Any) -> None:
    from oauth_cc_auth._slots import TokenSlot

    with Emulator() as emulator:
        # The file cache keeps wall-clock expiry times: real time passes here, not a fake one.
        emulator.set_lifetime("rfc6749", 4.0)
        url = emulator.resource_url("rfc6749")
        processes = [make_auth(emulator, RequestsAuth, cache=f"file:{tmp_path}")
                     for _ in range(3)]
        for auth in processes:
            auth._manager.slot = TokenSlot()  # a process of its own: its own memory
        with requests.Session() as session:
            for auth in processes:
                assert session.get(url, auth=auth, timeout=10).status_code == 200
            assert emulator.token_requests["rfc6749"] == 1
            first = processes[0].token
            assert first is not None
            due = max(auth.token.refresh_at for auth in processes) - time.monotonic()
            time.sleep(max(0.0, due) + 0.05)  # until every copy is due (2 s of the 4 s)
            for auth in processes:
                assert session.get(url, auth=auth, timeout=10).status_code == 200
                wait_for_refresh(auth)
            # One refreshed ahead for the fleet; the others took its token from the cache.
            assert emulator.token_requests["rfc6749"] == 2
            tokens = {auth.token.access_token for auth in processes}
            assert len(tokens) == 1
            assert tokens != {first.access_token}
        for auth in processes:
            auth.close()


def test_a_refresh_task_of_a_loop_closed_without_cancelling_it_holds_nobody_up() -> None:
    import asyncio
    import warnings

    with Emulator() as emulator:
        clock = FakeClock()
        auth = make_auth(emulator, HttpxAuth, clock=clock)
        url = emulator.resource_url("rfc6749")

        async def get() -> int:
            async with httpx.AsyncClient(auth=auth, timeout=10) as client:
                return int((await client.get(url)).status_code)

        loop = asyncio.new_event_loop()
        assert loop.run_until_complete(get()) == 200
        clock.advance(3550)
        gate = emulator.gate(limit=DEADLINE)
        assert loop.run_until_complete(get()) == 200  # its refresh task is left pending...
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            loop.close()  # ...and never runs again: the legacy run_until_complete, close
        gate.open()
        clock.advance(60)  # expired: the next caller needs a token, and gets one at once
        started = time.monotonic()
        assert asyncio.run(asyncio.wait_for(get(), DEADLINE)) == 200
        assert time.monotonic() - started < DEADLINE / 2
        assert auth._background.running == 0


def test_a_socket_handed_over_after_the_interrupt_is_shut_down_at_once() -> None:
    # close() can come between the request's sending and the adapter learning its socket
    # (before the answer is read): the socket is shut as soon as it is handed over.
    import socket

    from oauth_cc_auth._limits import Interrupter, SocketHolder

    interrupter = Interrupter()
    holder = SocketHolder()
    ours, theirs = socket.socketpair()
    with ours, theirs, interrupter.guarding(holder.stop):
        interrupter.interrupt()  # nothing to shut yet
        holder.sock = ours  # the adapter learns the socket: shut down now
        ours.settimeout(DEADLINE)
        assert ours.recv(1) == b""  # a read returns at once, as at the peer's close
