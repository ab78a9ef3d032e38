"""API latency across token refreshes: does any request wait for the token endpoint?

Each implementation sends API requests from several callers (threads, or asyncio tasks) for
a while, twice: once with no refresh at all, once with its token made due for refresh every
:data:`INTERVAL` seconds (oauth_cc_auth: moved into its refresh window, still valid; a peer:
expired, as its own leeway would have it). The token endpoint answers after
:data:`TOKEN_LATENCY` (300 ms), the API after a round trip of ``api_latency``. A library that
refreshes inline puts the token request into the latency of the requests that wait for it;
refresh ahead keeps p99 and max where they are without refreshes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from impls import FLOOR, OURS, STATIC_AUTH, Impl, Setup, absent, all_impls
from transports import API, token_endpoint

__all__ = ["INTERVAL", "TOKEN_LATENCY", "RefreshParams", "RefreshResult", "ours_ratios",
           "run_refresh"]

#: How long the token endpoint takes to answer each token request.
TOKEN_LATENCY = 0.3
#: A refresh is made due this often (a token request and then some fit in between).
INTERVAL = 0.8

#: flavour -> implementation -> {"na": reason} | {"none": stats, "refresh": stats}: each
#: stats the medians of :func:`summary` over the repeats (errors: their sum), and ``runs``.
RefreshResult = dict[str, dict[str, dict[str, Any]]]


@dataclasses.dataclass(frozen=True)
class RefreshParams:
    """The shape of the runs: callers, duration of each run, the API's round trip, and how
    many times each run is repeated (each statistic is the median over the repeats: a
    maximum of one run on a shared machine is mostly noise)."""

    threads: int = 4
    tasks: int = 8
    seconds: float = 2.0
    api_latency: float = 0.02
    repeats: int = 3


def summary(latencies: list[float], token_requests: int, errors: int) -> dict[str, Any]:
    """p50, p99 and max of *latencies*, in milliseconds, with the counts."""
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "token_requests": token_requests,
        "errors": errors,
    }


def _due(setup: Setup) -> Callable[[], object]:
    due = setup.due or setup.expire
    if due is None:
        raise ValueError("cannot be made due")
    return due


def _run_sync(setup: Setup, callers: int, seconds: float, refresh: bool) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    barrier = threading.Barrier(callers + 1)
    end = 0.0

    def caller() -> None:
        nonlocal errors
        barrier.wait()
        while time.monotonic() < end:
            started = time.monotonic()
            try:
                setup.request()
            except Exception:
                with lock:
                    errors += 1
            with lock:
                latencies.append(time.monotonic() - started)

    threads = [threading.Thread(target=caller, daemon=True) for _ in range(callers)]
    for thread in threads:
        thread.start()
    end = time.monotonic() + seconds
    barrier.wait()
    if refresh:
        due = _due(setup)
        at = time.monotonic() + INTERVAL / 2
        while at < end - INTERVAL / 2:
            time.sleep(max(0.0, at - time.monotonic()))
            due()
            at += INTERVAL
    for thread in threads:
        thread.join(seconds + 60)
    return latencies, errors


async def _run_async(
    setup: Setup, callers: int, seconds: float, refresh: bool
) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    end = time.monotonic() + seconds

    async def caller() -> None:
        nonlocal errors
        while time.monotonic() < end:
            started = time.monotonic()
            try:
                await setup.request()
            except Exception:
                errors += 1
            latencies.append(time.monotonic() - started)

    async def refresher() -> None:
        due = _due(setup)
        at = time.monotonic() + INTERVAL / 2
        while at < end - INTERVAL / 2:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            due()
            at += INTERVAL

    await asyncio.gather(*(caller() for _ in range(callers)), *([refresher()] if refresh else []))
    return latencies, errors


def _measure_sync(impl: Impl, p: RefreshParams, refresh: bool) -> dict[str, Any]:
    endpoint = token_endpoint(TOKEN_LATENCY)
    setup = impl.build(endpoint, True)
    setup.prime()
    endpoint.reset_counters()
    latencies, errors = _run_sync(setup, p.threads, p.seconds, refresh)
    if setup.close is not None:
        setup.close()
    return summary(latencies, endpoint.token_requests.total(), errors)


async def _measure_async(impl: Impl, p: RefreshParams, refresh: bool) -> dict[str, Any]:
    endpoint = token_endpoint(TOKEN_LATENCY)
    setup = impl.build(endpoint, True)
    await setup.prime()
    endpoint.reset_counters()
    latencies, errors = await _run_async(setup, p.tasks, p.seconds, refresh)
    if setup.close is not None:
        await setup.close()
    return summary(latencies, endpoint.token_requests.total(), errors)


def run_refresh(p: RefreshParams, log: Callable[[str], None] | None = None) -> RefreshResult:
    """Both runs of every implementation that can be made due; "na" for the others."""
    result: RefreshResult = {}
    for flavour, per in absent().items():
        for name, why in per.items():
            result.setdefault(flavour, {})[name] = {"na": why}
    previous = API.latency
    API.latency = p.api_latency
    try:
        for impl in all_impls():
            if impl.name in (FLOOR, STATIC_AUTH) or impl.name in result.get(impl.flavour, {}):
                continue
            cell = result.setdefault(impl.flavour, {}).setdefault(impl.name, {})
            if impl.expiry_na is not None:
                cell["na"] = impl.expiry_na
                continue
            if log is not None:
                log(f"refresh latency: {impl.flavour}, {impl.name}")
            runs: dict[str, list[dict[str, Any]]] = {"none": [], "refresh": []}
            for _ in range(p.repeats):
                for run, measured in runs.items():  # interleaved: the same noise for both
                    if impl.aio:
                        measured.append(asyncio.run(_measure_async(impl, p, run == "refresh")))
                    else:
                        measured.append(_measure_sync(impl, p, run == "refresh"))
            for run, measured in runs.items():
                cell[run] = {key: statistics.median(m[key] for m in measured)
                             for key in measured[0]}
                cell[run]["errors"] = sum(m["errors"] for m in measured)
                cell[run]["runs"] = measured
    finally:
        API.latency = previous
    return result


def ours_ratios(result: RefreshResult) -> dict[str, dict[str, float]]:
    """flavour -> {"p99": ratio, "max": ratio} of oauth_cc_auth with refreshes to without."""
    out: dict[str, dict[str, float]] = {}
    for flavour, per in result.items():
        cell = per.get(OURS, {})
        if "none" in cell and "refresh" in cell:
            out[flavour] = {
                stat: cell["refresh"][f"{stat}_ms"] / cell["none"][f"{stat}_ms"]
                for stat in ("p99", "max")
            }
    return out
