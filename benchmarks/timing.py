"""Per-request and bare auth-step timings, interleaved across implementations.

Each round runs one batch per implementation, in an order rotated from round to round, and
records nanoseconds per call; a statistic is the median over rounds. Ratios to the floor are
the median of per-round ratios (each implementation against the floor's batch of the same
round), which cancels the slow drifts of a noisy shared machine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
from collections.abc import Callable, Mapping, Sequence
from time import perf_counter_ns
from typing import Any

__all__ = [
    "Bench",
    "Samples",
    "median_ratio",
    "run_async_rounds",
    "run_sync_rounds",
]

#: Microseconds per call, one value per round, by implementation name.
Samples = dict[str, list[float]]


@dataclasses.dataclass(frozen=True)
class Bench:
    """One thing to time: *call* applied to each of ``inputs(batch)``, or called *batch* times
    (for :func:`run_async_rounds`, *call* returns an awaitable)."""

    call: Callable[..., Any]
    inputs: Callable[[int], Sequence[Any]] | None = None


def _rotation(names: Sequence[str], round_no: int) -> list[str]:
    k = round_no % len(names)
    return [*names[k:], *names[:k]]


def _batch_sync(bench: Bench, batch: int) -> float:
    call = bench.call
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
    for round_no in range(warmup + rounds):
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
    for round_no in range(warmup + rounds):
        for name in _rotation(names, round_no):
            value = await _batch_async(benches[name], batch)
            if round_no >= warmup:
                samples[name].append(value)
        await asyncio.sleep(0)
    return samples


def median_ratio(values: Sequence[float], floor: Sequence[float]) -> float:
    """Median over rounds of ``values[i] / floor[i]``."""
    return statistics.median(v / f for v, f in zip(values, floor, strict=True))
