"""Token requests made by a fleet of processes, each with many threads, needing a token at once.

Unlike :mod:`concurrency`, this runs over real sockets: the package's ``Emulator`` serves the
token endpoint and a protected resource on loopback, in this process, and counts the token
requests it receives. *processes* workers (``tests/fleet_worker.py``, which the tests run
too) each build one auth object with the cache under test and *threads* threads; they start
together (ready and go files), in two waves:

- **cold start**: no process has a token, the shared cache is empty;
- **at expiry**: every process holds the token of the first wave, now due for renewal.

Tokens are issued with a short lifetime; the second wave starts once every process's token
is due (with the default leeway, halfway through its life). The token endpoint answers after
*latency* seconds, so that all processes overlap with the first token request.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _repo  # noqa: F401 - for `tests`

from oauth_cc_auth.testing import Emulator
from tests.fleet_worker import Fleet, FleetError, Spec
from tests.redis_server import RedisUnavailable, redis_server

__all__ = ["CACHES", "FleetParams", "Wave", "run_fleets"]

PROVIDER = "rfc6749"
#: The caches compared, by the name the tables use.
CACHES = ("memory", "file", "redis")
MOMENTS = ("cold", "expiry")

_START_TIMEOUT = 60.0
_WAVE_TIMEOUT = 120.0
#: Slack after the moment every process's token is due, before the second wave.
_DUE_MARGIN = 0.2


@dataclasses.dataclass(frozen=True)
class FleetParams:
    """The fleet's size and the token endpoint's behaviour."""

    processes: int
    threads: int
    #: Seconds the token endpoint takes to answer.
    latency: float
    #: Lifetime of issued tokens, seconds.
    lifetime: float
    repeats: int


@dataclasses.dataclass(frozen=True)
class Wave:
    """Token requests the emulator received in one wave, and the callers that failed."""

    token_requests: int
    callers: int
    errors: dict[str, int]
    #: From the go signal to the last worker's report.
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def _fleet(
    emulator: Emulator, cache: str | None, directory: Path, p: FleetParams
) -> dict[str, Wave]:
    """Run the two waves of one fleet using *cache* (``None``: the default memory cache)."""
    client = emulator.client(PROVIDER)
    spec = Spec(
        token_url=emulator.token_url(PROVIDER),
        url=emulator.resource_url(PROVIDER),
        client_id=client.client_id,
        client_secret=client.client_secret,
        options=client.options(),
        cache=cache,
        callers=p.threads,
        waves=len(MOMENTS),
    )
    # Every token request is slow (the fleet can make at most this many), and short-lived.
    emulator.slow_next(p.processes * p.threads * len(MOMENTS), p.latency)
    emulator.set_lifetime(PROVIDER, p.lifetime)
    waves: dict[str, Wave] = {}
    # After both waves the workers exit by themselves; after a failure, they are killed.
    with Fleet(directory, spec, p.processes) as fleet:
        fleet.wait_ready(_START_TIMEOUT)
        finished = 0.0
        for number, moment in enumerate(MOMENTS):
            if moment == "expiry":
                # Every token was requested before its process finished the first wave, and
                # is due for renewal half its lifetime later (the leeway, 60 s, is longer).
                time.sleep(max(0.0, finished + p.lifetime / 2 + _DUE_MARGIN - time.monotonic()))
            emulator.reset_counters()
            fleet.go(number)
            started = time.monotonic()
            done = fleet.wait_done(number, _WAVE_TIMEOUT, f"finish the {moment} wave")
            finished = time.monotonic()
            errors: dict[str, int] = {}
            callers = 0
            for result in done:
                callers += result["callers"]
                for kind, n in result["errors"].items():
                    errors[kind] = errors.get(kind, 0) + n
            waves[moment] = Wave(
                emulator.token_requests[PROVIDER], callers, errors, round(finished - started, 3)
            )
    return waves


def _one(kind: str, p: FleetParams) -> dict[str, Wave]:
    # Created 0700: the spec in it holds the (emulator's) client secret.
    with tempfile.TemporaryDirectory(prefix="oauth-cc-bench-fleet-") as name:
        directory = Path(name)
        with Emulator() as emulator:
            if kind == "memory":
                return _fleet(emulator, None, directory, p)
            if kind == "file":
                return _fleet(emulator, f"file://{directory / 'cache'}", directory, p)
            # A new server for every fleet: a cold start finds Redis empty.
            with redis_server() as url:
                return _fleet(emulator, url, directory, p)


def run_fleets(
    p: FleetParams, log: Callable[[str], None] | None = None
) -> dict[str, dict[str, Any]]:
    """For each cache: ``{"outcomes": [{moment: wave}, ...]}`` or ``{"na": reason}``."""
    result: dict[str, dict[str, Any]] = {kind: {"outcomes": []} for kind in CACHES}
    for repeat in range(p.repeats):
        for kind in CACHES:
            if "na" in result[kind]:
                continue
            if log is not None:
                log(
                    f"multi-process: {kind} cache, {p.processes} x {p.threads}, "
                    f"repeat {repeat + 1}/{p.repeats}"
                )
            try:
                waves = _one(kind, p)
            except RedisUnavailable as exc:
                result[kind] = {"na": str(exc)}
                continue
            except FleetError as exc:
                result[kind]["outcomes"].append({"failed": str(exc)})
                continue
            result[kind]["outcomes"].append({m: w.as_dict() for m, w in waves.items()})
    return result
