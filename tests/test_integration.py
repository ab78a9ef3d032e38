"""Every adapter against the emulator over loopback sockets, many threads and tasks at once,
while the emulator expires and revokes tokens: no request may fail."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import httpx
import httpx2
import pytest
import requests

from oauth_cc_auth import MemoryCache
from oauth_cc_auth.httpx import ClientCredentialsAuth as HttpxAuth
from oauth_cc_auth.httpx2 import ClientCredentialsAuth as Httpx2Auth
from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth
from oauth_cc_auth.testing import Emulator
from tests._anyio import BACKENDS

# Refreshed every 1.5 s: enough for the answer to a request sent with a token about to be
# refreshed to arrive before the emulator expires it, also on a busy 2-core machine where a
# request among 200 concurrent ones can take most of a second.
LIFETIME = 3.0
# A request refused by a revocation is retried once: its 401, the new token and the retry's
# answer must all come before the next revocation, else the retry is refused too (a second 401
# is returned as it is). On a busy 2-core machine each of the three can take 0.75 s among 200
# concurrent requests (1.6 s between revocations failed there): 3 s apart.
RUN = 5.0
REVOKE_AT = (1.0, 4.0)
# One token to start, a refresh per half-lifetime, one per revocation, and slack for timing.
MAX_TOKEN_REQUESTS = 1 + int(RUN / (LIFETIME / 2)) + len(REVOKE_AT) + 2


@dataclasses.dataclass
class Tally:
    """What one thread or task saw: answers, and anything but a 200."""

    done: int = 0
    failures: list[str] = dataclasses.field(default_factory=list)

    def answered(self, status: int) -> None:
        self.done += 1
        if status != 200:
            self.failures.append(str(status))


def make_auth(emulator: Emulator, cls: Any, provider: str) -> Any:
    client = emulator.client(provider)
    return cls(client.client_id, client.client_secret, token_url=emulator.token_url(provider),
               cache=MemoryCache(), **client.options())


def revoker(emulator: Emulator) -> threading.Thread:
    def run() -> None:
        start = time.monotonic()
        for at in REVOKE_AT:
            time.sleep(max(0.0, start + at - time.monotonic()))
            emulator.revoke_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


#: Each flavour: its adapter and its HTTP library (requests: none, a session per thread).
FLAVOURS: dict[str, tuple[Any, Any]] = {
    "requests": (RequestsAuth, None),
    "httpx": (HttpxAuth, httpx),
    "httpx2": (Httpx2Auth, httpx2),
}


#: Each case runs for RUN seconds of wall-clock time: one case with threads stays in the default
#: run, the others are slow (single flight among tasks is in the default run with
#: tests/test_concurrency.py).
#: Every flavour, provider and backend is in a case, not every combination of them (each case
#: is RUN seconds): the dialects are tested through every flavour in tests/test_providers.py.
#: The DPoP cases: an rfc6749 client whose tokens are DPoP-bound, every proof verified.
THREAD_CASES = [
    pytest.param(flavour, provider, dpop, id=f"{provider}-{flavour}" + ("-dpop" if dpop else ""),
                 marks=() if (flavour, provider) == ("requests", "fcc_finance")
                 else pytest.mark.slow)
    for flavour, provider, dpop in (
        ("requests", "fcc_finance", False), ("requests", "fincalc", False),
        ("httpx", "fincalc", False), ("httpx2", "fcc_finance", False),
        ("requests", "rfc6749", True),
    )
]
TASK_CASES = [
    pytest.param(flavour, provider, dpop, backend,
                 id=f"{provider}-{flavour}-{backend}" + ("-dpop" if dpop else ""),
                 marks=pytest.mark.slow)
    for flavour, provider, dpop, backend in (
        ("httpx", "fcc_finance", False, BACKENDS[0]), ("httpx2", "figure", False, BACKENDS[0]),
        ("httpx", "figure", False, BACKENDS[-1]), ("httpx2", "fcc_finance", False, BACKENDS[-1]),
        ("httpx2", "rfc6749", True, BACKENDS[0]),
    )
]


def bind_with_dpop(emulator: Emulator, provider: str, dpop: bool) -> None:
    """With *dpop*, the emulator's client of *provider* gets DPoP-bound tokens only (and its
    ``options()`` say ``dpop=True``)."""
    if dpop:
        emulator.register_client(
            dataclasses.replace(emulator.client(provider), dpop_bound=True))


def assert_no_proof_refused(emulator: Emulator) -> None:
    """No proof was refused: none replayed, stale, or for another key, URL or token (the
    revoked and expired tokens are refused as ``invalid_token``, and renewed)."""
    refused = {error: n for error, n in emulator.dpop_refusals.items()
               if error not in ("invalid_token", "token")}
    assert refused == {}


@pytest.mark.parametrize(("flavour", "provider", "dpop"), THREAD_CASES)
def test_32_threads_through_expiry_and_revocation(
    flavour: str, provider: str, dpop: bool
) -> None:
    with Emulator() as emulator:
        emulator.set_lifetime(provider, LIFETIME)
        bind_with_dpop(emulator, provider, dpop)
        cls, lib = FLAVOURS[flavour]
        auth = make_auth(emulator, cls, provider)
        url = emulator.resource_url(provider)
        barrier = threading.Barrier(32)
        shared = lib.Client(auth=auth, timeout=10) if lib is not None else None

        def worker() -> Tally:
            session = requests.Session()
            get: Callable[[], Any] = (
                (lambda: session.get(url, auth=auth, timeout=10)) if shared is None
                else (lambda: shared.get(url))
            )
            tally = Tally()
            barrier.wait()
            end = time.monotonic() + RUN
            while time.monotonic() < end:
                try:
                    tally.answered(get().status_code)
                except Exception as exc:
                    tally.failures.append(repr(exc))
                time.sleep(0.01)
            session.close()
            return tally

        revoking = revoker(emulator)
        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(lambda _: worker(), range(32)))
        revoking.join()
        if shared is not None:
            shared.close()
        failures = [f for tally in results for f in tally.failures]
        assert failures == []
        assert sum(tally.done for tally in results) > 32 * 5
        assert 3 <= emulator.token_requests[provider] <= MAX_TOKEN_REQUESTS
        assert_no_proof_refused(emulator)


class Barrier:
    """Releases the tasks waiting on it once *parties* of them wait."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.all_arrived = anyio.Event()

    async def wait(self) -> None:
        self.arrived += 1
        if self.arrived == self.parties:
            self.all_arrived.set()
        await self.all_arrived.wait()


@pytest.mark.anyio
@pytest.mark.parametrize(("flavour", "provider", "dpop", "anyio_backend"), TASK_CASES)
async def test_200_tasks_through_expiry_and_revocation(
    flavour: str, provider: str, dpop: bool
) -> None:
    cls, lib = FLAVOURS[flavour]
    with Emulator() as emulator:
        emulator.set_lifetime(provider, LIFETIME)
        bind_with_dpop(emulator, provider, dpop)
        options: dict[str, Any] = {}
        if provider == "figure":  # its answers carry no expires_in: tell the client
            from oauth_cc_auth import get_provider

            options["provider"] = dataclasses.replace(
                get_provider("figure"), default_lifetime=LIFETIME
            )
        client = emulator.client(provider)
        auth = cls(client.client_id, client.client_secret,
                   token_url=emulator.token_url(provider), cache=MemoryCache(),
                   **{**client.options(), **options})
        url = emulator.resource_url(provider)
        barrier = Barrier(200)
        results: list[Tally] = []

        async def task(http: Any) -> None:
            tally = Tally()
            await barrier.wait()
            end = time.monotonic() + RUN
            while time.monotonic() < end:
                try:
                    tally.answered((await http.get(url)).status_code)
                except Exception as exc:
                    tally.failures.append(repr(exc))
                await anyio.sleep(0.01)
            results.append(tally)

        revoking = revoker(emulator)
        limits = lib.Limits(max_connections=200)
        async with (lib.AsyncClient(auth=auth, timeout=10, limits=limits) as http,
                    anyio.create_task_group() as tasks):
            for _ in range(200):
                tasks.start_soon(task, http)
        await anyio.to_thread.run_sync(revoking.join)
        assert len(results) == 200
        failures = [f for tally in results for f in tally.failures]
        assert failures == []
        assert sum(tally.done for tally in results) > 200
        assert 3 <= emulator.token_requests[provider] <= MAX_TOKEN_REQUESTS
        assert_no_proof_refused(emulator)
