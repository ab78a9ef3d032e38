"""Per-request and bare auth-step timings, interleaved across implementations.

Each round runs one batch per implementation, in an order rotated from round to round, and
records nanoseconds per call; a statistic is the median over rounds. Ratios to the floor are
the median of per-round ratios (each implementation against the floor's batch of the same
round), which cancels the slow drifts of a noisy shared machine.

:func:`run_timings` times every implementation of each flavour, this package also with a
file cache and with a Redis cache (a redis-server of its own), and with DPoP (so does
requests-oauth2client, and a DPoP proof alone is timed in the bare auth-step rounds), and
counts what they asked of their token endpoint and shared cache meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import statistics
import tempfile
from collections.abc import Callable, Mapping, Sequence
from time import perf_counter_ns
from typing import Any

import _repo  # noqa: F401 - for `tests`
from impls import (
    ASYNC_FLAVOURS,
    FLAVOURS,
    OURS_FILE,
    OURS_REDIS,
    CountingCache,
    Impl,
    Setup,
    absent,
    all_impls,
    dpop_impls,
    shared_cache_impls,
)
from transports import token_endpoint

from oauth_cc_auth import FileCache, RedisCache, TokenCache
from oauth_cc_auth.testing import Emulator
from tests.redis_server import RedisUnavailable, redis_server

__all__ = [
    "Bench",
    "Rounds",
    "Samples",
    "TimingResult",
    "median_ratio",
    "run_async_rounds",
    "run_sync_rounds",
    "run_timings",
]

#: Microseconds per call, one value per round, by implementation name.
Samples = dict[str, list[float]]


@dataclasses.dataclass(frozen=True)
class Bench:
    """One thing to time: *call* applied to each of ``inputs(batch)``, or called *batch* times
    (for :func:`run_async_rounds`, *call* returns an awaitable)."""

    call: Callable[..., Any]
    inputs: Callable[[int], Sequence[Any]] | None = None
    #: Calls per batch, instead of the rounds' own (for calls that sign: fewer).
    batch: int | None = None


def _rotation(names: Sequence[str], round_no: int) -> list[str]:
    k = round_no % len(names)
    return [*names[k:], *names[:k]]


def _batch_sync(bench: Bench, batch: int) -> float:
    call = bench.call
    batch = bench.batch or batch
    if bench.inputs is None:
        start = perf_counter_ns()
        for _ in range(batch):
            call()
        elapsed = perf_counter_ns() - start
    else:
        inputs = bench.inputs(batch)
        start = perf_counter_ns()
        for item in inputs:
            call(item)
        elapsed = perf_counter_ns() - start
    return elapsed / batch / 1000.0


async def _batch_async(bench: Bench, batch: int) -> float:
    call = bench.call
    batch = bench.batch or batch
    if bench.inputs is None:
        start = perf_counter_ns()
        for _ in range(batch):
            await call()
        elapsed = perf_counter_ns() - start
    else:
        inputs = bench.inputs(batch)
        start = perf_counter_ns()
        for item in inputs:
            await call(item)
        elapsed = perf_counter_ns() - start
    return elapsed / batch / 1000.0


def run_sync_rounds(
    benches: Mapping[str, Bench], *, rounds: int, batch: int, warmup: int
) -> Samples:
    """Interleaved rounds of *benches*; the first *warmup* rounds are not recorded."""
    names = list(benches)
    samples: Samples = {name: [] for name in names}
    for round_no in range(warmup + rounds if names else 0):
        for name in _rotation(names, round_no):
            value = _batch_sync(benches[name], batch)
            if round_no >= warmup:
                samples[name].append(value)
    return samples


async def run_async_rounds(
    benches: Mapping[str, Bench], *, rounds: int, batch: int, warmup: int
) -> Samples:
    """The async counterpart of :func:`run_sync_rounds`, in the running event loop."""
    names = list(benches)
    samples: Samples = {name: [] for name in names}
    for round_no in range(warmup + rounds if names else 0):
        for name in _rotation(names, round_no):
            value = await _batch_async(benches[name], batch)
            if round_no >= warmup:
                samples[name].append(value)
        await asyncio.sleep(0)
    return samples


def median_ratio(values: Sequence[float], floor: Sequence[float]) -> float:
    """Median over rounds of ``values[i] / floor[i]``."""
    return statistics.median(v / f for v, f in zip(values, floor, strict=True))


# -- every implementation, per flavour -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Rounds:
    """How long :func:`run_timings` measures: *rounds* interleaved rounds after *warmup*
    unrecorded ones, each timing *batch* requests or *step_batch* bare auth steps per
    implementation (*batch* bare auth steps for those that sign: DPoP)."""

    rounds: int
    warmup: int
    batch: int
    step_batch: int


def _sent_headers(response: Any) -> Any:
    """The headers *response*'s request went out with (aiohttp: its ``request_info``)."""
    info = getattr(response, "request_info", None)
    return info.headers if info is not None else response.request.headers


def _authorization_of(response: Any) -> str:
    return str(_sent_headers(response).get("Authorization", ""))


def _check_sent(impl: Impl, response: Any) -> None:
    """That a setup really authenticates: its request went out with a token of its scheme
    (``Bearer``; ``DPoP``, then with a ``DPoP`` proof too)."""
    value = _authorization_of(response)
    if not value.startswith(f"{impl.scheme} "):
        raise RuntimeError(f"{impl.name} ({impl.flavour}) sent no {impl.scheme} token: {value!r}")
    if impl.scheme == "DPoP" and not _sent_headers(response).get("DPoP"):
        raise RuntimeError(f"{impl.name} ({impl.flavour}) sent no DPoP proof")


@dataclasses.dataclass
class TimingResult:
    """Per-request cost and bare auth step (µs per call, by flavour and implementation), and
    what the timed implementations asked of their token endpoint and shared cache."""

    per_request: dict[str, Samples] = dataclasses.field(default_factory=dict)
    auth_step: dict[str, Samples] = dataclasses.field(default_factory=dict)
    #: Token requests made while the token was warm (should be none), by flavour and name.
    warm_token_requests: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    #: Calls to the shared cache while the first token was fetched, by flavour and name.
    shared_setup_calls: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    #: Calls to the shared cache during the timed rounds (should be none), by flavour, name.
    shared_calls: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    #: Implementations that could not be timed, and why (no redis-server, say).
    unavailable: dict[str, str] = dataclasses.field(default_factory=dict)
    #: Implementations not in a flavour, and why (Authlib in the library it is not built on).
    absent: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)


#: Each implementation's setup and token endpoint, by name.
Setups = dict[str, tuple[Setup, Emulator]]


def _time_sync_flavour(flavour: str, impls: Sequence[Impl], p: Rounds, out: TimingResult) -> None:
    setups: Setups = {}
    for impl in impls:
        endpoint = token_endpoint()
        setup = impl.build(endpoint, False)
        setup.prime()
        if setup.request is not None:
            _check_sent(impl, setup.request())
        endpoint.reset_counters()
        setups[impl.name] = (setup, endpoint)
    _time_setups(flavour, setups, p, out, run_sync_rounds)
    for setup, _ in setups.values():
        if setup.close is not None:
            setup.close()


def _time_async_flavour(flavour: str, impls: Sequence[Impl], p: Rounds, out: TimingResult) -> None:
    async def ready() -> Setups:
        setups: Setups = {}
        for impl in impls:
            endpoint = token_endpoint()
            setup = impl.build(endpoint, False)
            await setup.prime()
            if setup.request is not None:
                _check_sent(impl, await setup.request())
            endpoint.reset_counters()
            setups[impl.name] = (setup, endpoint)
        return setups

    # One event loop for the flavour, as its clients are bound to it: the setups are built
    # and primed in it, then timed in it.
    with asyncio.Runner() as runner:
        setups = runner.run(ready())

        def run_rounds(benches: dict[str, Bench], **options: int) -> Samples:
            return runner.run(run_async_rounds(benches, **options))

        _time_setups(flavour, setups, p, out, run_rounds)

        async def close() -> None:
            for setup, _ in setups.values():
                if setup.close is not None:
                    await setup.close()

        runner.run(close())


def _time_setups(
    flavour: str,
    setups: Setups,
    p: Rounds,
    out: TimingResult,
    run_rounds: Callable[..., Samples],
) -> None:
    """Time one request and the bare auth step of primed *setups* in interleaved rounds
    (*run_rounds*: :func:`run_sync_rounds`, or the async flavours' counterpart), and record
    the token requests and shared-cache calls they made meanwhile."""
    calls = out.shared_setup_calls[flavour] = _shared_calls(setups)
    gc.collect()
    out.per_request[flavour] = run_rounds(
        {name: Bench(s.request) for name, (s, _) in setups.items() if s.request},
        rounds=p.rounds,
        batch=p.batch,
        warmup=p.warmup,
    )
    gc.collect()
    out.auth_step[flavour] = run_rounds(
        {
            name: Bench(s.step, s.inputs, p.batch if s.signs else None)
            for name, (s, _) in setups.items()
            if s.step
        },
        rounds=p.rounds,
        batch=p.step_batch,
        warmup=p.warmup,
    )
    out.warm_token_requests[flavour] = {
        name: e.token_requests.total() for name, (_, e) in setups.items()
    }
    out.shared_calls[flavour] = {n: k - calls[n] for n, k in _shared_calls(setups).items()}


def _shared_calls(setups: Setups) -> dict[str, int]:
    """Calls made so far to the shared cache of each setup that has one."""
    return {name: s.shared_calls() for name, (s, _) in setups.items() if s.shared_calls}


def _shared_cache_impls(stack: contextlib.ExitStack, out: TimingResult) -> list[Impl]:
    """oauth_cc_auth with a file cache (in a temporary directory) and with a Redis cache (a
    redis-server of our own), in every flavour; both are cleaned up when *stack* closes."""
    directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="oauth-cc-bench-cache-"))
    kinds: list[tuple[str, str, Callable[[], TokenCache]]] = [
        (OURS_FILE, "file", lambda: FileCache(directory))
    ]
    try:
        url = stack.enter_context(redis_server())
    except RedisUnavailable as exc:
        out.unavailable[OURS_REDIS] = str(exc)
    else:
        kinds.append((OURS_REDIS, "redis", lambda: RedisCache(url)))
    opened: list[CountingCache] = []

    def close_all() -> None:
        for cache in opened:
            cache.close()

    stack.callback(close_all)  # before the server stops

    def counting(make: Callable[[], TokenCache]) -> Callable[[], CountingCache]:
        def open_one() -> CountingCache:
            opened.append(CountingCache(make()))
            return opened[-1]

        return open_one

    impls: list[Impl] = []
    for name, kind, make in kinds:
        impls += shared_cache_impls(name, kind, counting(make))
    return impls


def run_timings(p: Rounds, log: Callable[[str], None] | None = None) -> TimingResult:
    """Every implementation of every flavour, timed in the flavour's interleaved rounds."""
    out = TimingResult(absent=absent())
    with contextlib.ExitStack() as stack:
        shared = _shared_cache_impls(stack, out)
        impls = [*all_impls(), *shared, *dpop_impls()]
        for flavour in FLAVOURS:
            if log is not None:
                log(f"per-request cost: {flavour}")
            mine = [i for i in impls if i.flavour == flavour]
            if flavour in ASYNC_FLAVOURS:
                _time_async_flavour(flavour, mine, p, out)
            else:
                _time_sync_flavour(flavour, mine, p, out)
    return out
