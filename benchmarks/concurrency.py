"""How many token requests an implementation makes when many callers need a token at once.

Two moments: *cold start* (a new auth object, no token yet) and *at expiry* (one token was
fetched, then it became due for renewal). Threads start together behind a barrier; asyncio
tasks start together in one ``gather``. The token endpoint answers after a latency that
stands for the network round trip, so callers overlap as they would in production.
:func:`run_concurrency` counts every case of every implementation that has it.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import threading
from collections.abc import Callable
from typing import Any

from impls import FLOOR, STATIC_AUTH, Impl, Setup, absent, all_impls
from transports import token_endpoint

__all__ = [
    "MOMENTS",
    "ConcurrencyResult",
    "Outcome",
    "count_async",
    "count_sync",
    "run_concurrency",
]

MOMENTS = ("cold", "expiry")
MOMENT_LABELS = {"cold": "cold start", "expiry": "at expiry"}

#: flavour -> implementation -> {moment: {"na": reason} | {"outcomes": [...]}, "note"?: text}
ConcurrencyResult = dict[str, dict[str, dict[str, Any]]]

_JOIN_TIMEOUT = 60.0


@dataclasses.dataclass(frozen=True)
class Outcome:
    """Token requests made in one case, and the callers that failed (by exception name)."""

    token_requests: int
    callers: int
    errors: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def _threads(setup: Setup, n: int) -> dict[str, int]:
    barrier = threading.Barrier(n)
    errors: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        try:
            setup.request()
        except Exception as exc:
            with lock:
                errors[type(exc).__name__] += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(_JOIN_TIMEOUT)
    if any(thread.is_alive() for thread in threads):
        errors["Timeout"] += sum(thread.is_alive() for thread in threads)
    return dict(errors)


def count_sync(impl: Impl, moment: str, n: int, latency: float) -> Outcome:
    """Token requests made when *n* threads need a token at *moment* (cold or expiry)."""
    endpoint = token_endpoint(latency)
    setup = impl.build(endpoint, True)
    if moment == "expiry":
        setup.prime()
        expire: Callable[[], object] | None = setup.expire
        if expire is None:
            raise ValueError(f"{impl.name} cannot be expired")
        expire()
        endpoint.reset_counters()
    errors = _threads(setup, n)
    if setup.close is not None:
        setup.close()
    return Outcome(endpoint.token_requests.total(), n, errors)


async def _tasks(setup: Setup, n: int) -> dict[str, int]:
    errors: collections.Counter[str] = collections.Counter()

    async def one() -> None:
        try:
            await setup.request()
        except Exception as exc:
            errors[type(exc).__name__] += 1

    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n))), _JOIN_TIMEOUT)
    return dict(errors)


async def count_async(impl: Impl, moment: str, n: int, latency: float) -> Outcome:
    """Token requests made when *n* asyncio tasks need a token at *moment*."""
    endpoint = token_endpoint(latency)
    setup = impl.build(endpoint, True)  # inside the running event loop
    if moment == "expiry":
        await setup.prime()
        if setup.expire is None:
            raise ValueError(f"{impl.name} cannot be expired")
        setup.expire()
        endpoint.reset_counters()
    errors = await _tasks(setup, n)
    if setup.close is not None:
        await setup.close()
    return Outcome(endpoint.token_requests.total(), n, errors)


def run_concurrency(
    threads: int,
    tasks: int,
    latency: float,
    repeats: int,
    log: Callable[[str], None] | None = None,
) -> ConcurrencyResult:
    """Every case, *repeats* times: *threads* threads (sync flavours) or *tasks* tasks (async
    flavours) needing a token from an endpoint that answers after *latency* seconds; "na"
    with the reason for a case an implementation cannot have."""
    result: ConcurrencyResult = {}
    for flavour, per in absent().items():
        for name, why in per.items():
            result.setdefault(flavour, {})[name] = {moment: {"na": why} for moment in MOMENTS}
    for impl in all_impls():
        if impl.name in (FLOOR, STATIC_AUTH):
            continue
        cell = result.setdefault(impl.flavour, {}).setdefault(impl.name, {})
        if impl.note is not None:
            cell["note"] = impl.note
        for moment in MOMENTS:
            na = impl.cold_na if moment == "cold" else impl.expiry_na
            if na is not None:
                cell[moment] = {"na": na}
                continue
            if log is not None:
                log(f"concurrency: {impl.flavour}, {impl.name}, {MOMENT_LABELS[moment]}")
            outcomes: list[Outcome] = []
            for _ in range(repeats):
                if impl.aio:
                    outcomes.append(asyncio.run(count_async(impl, moment, tasks, latency)))
                else:
                    outcomes.append(count_sync(impl, moment, threads, latency))
            cell[moment] = {"outcomes": [o.as_dict() for o in outcomes]}
    return result
