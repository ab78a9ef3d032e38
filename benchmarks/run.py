"""Benchmarks of oauth_cc_auth against the floor and the peer libraries.

Run from the repository root::

    python benchmarks/run.py            # full run, about two minutes on 2 cores
    python benchmarks/run.py --quick    # smoke run, about twenty seconds

Prints markdown tables and writes JSON (``benchmarks/results.json`` by default). See
``benchmarks/README.md`` for what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from concurrency import Outcome, count_async, count_sync
from fleet import CACHES, FleetParams, run_fleets
from impls import (
    ASYNC_FLAVOURS,
    AUTHLIB,
    FLAVOURS,
    FLOOR,
    HTTPX_AUTH,
    OURS,
    OURS_FILE,
    OURS_REDIS,
    REQUESTS_AUTH,
    REQUESTS_OAUTH2CLIENT,
    REQUESTS_OAUTHLIB,
    CountingCache,
    Impl,
    Setup,
    absent,
    all_impls,
    authlib_httpx_library,
    shared_cache_impls,
)
from imports import ImportTarget, import_targets, measure_imports, median_difference
from redis_server import RedisUnavailable, redis_server
from report import Footnotes, Table
from timing import Bench, Samples, median_ratio, run_async_rounds, run_sync_rounds
from transports import token_endpoint

from oauth_cc_auth import FileCache, RedisCache, TokenCache
from oauth_cc_auth.testing import Emulator

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results.json"
MOMENTS = ("cold", "expiry")
MOMENT_LABELS = {"cold": "cold start", "expiry": "at expiry"}
ROW_ORDER = (
    FLOOR,
    OURS,
    OURS_FILE,
    OURS_REDIS,
    AUTHLIB,
    REQUESTS_OAUTHLIB,
    REQUESTS_OAUTH2CLIENT,
    REQUESTS_AUTH,
    HTTPX_AUTH,
)
PACKAGES = (
    "oauth-cc-auth",
    "Authlib",
    "requests",
    "httpx",
    "httpx2",
    "anyio",
    "requests-oauthlib",
    "oauthlib",
    "requests-oauth2client",
    "requests-auth",
    "httpx-auth",
    "redis",
)
#: This package's rows: by default, and with each shared cache.
OUR_NAMES = (OURS, OURS_FILE, OURS_REDIS)
#: The shared-cache rows of the timings, and what the targets call them.
SHARED_ROWS = {OURS_FILE: "file", OURS_REDIS: "Redis"}
FLEET_LABELS = {
    "memory": "memory (default)",
    "file": "file (`file:///tmp-dir`)",
    "redis": "Redis (`redis://127.0.0.1:port/0`)",
}

#: The issue's targets.
MAX_RATIO = 1.10
MAX_IMPORT_MS = 10.0


@dataclasses.dataclass(frozen=True)
class Params:
    """What a run measures and how long it spends on it."""

    rounds: int
    warmup: int
    batch: int
    step_batch: int
    threads: int
    tasks: int
    latency: float
    repeats: int
    import_runs: int
    fleet: FleetParams

    @classmethod
    def of(cls, args: argparse.Namespace) -> Params:
        quick = args.quick
        repeats = args.repeats or (1 if quick else 3)
        processes, threads = args.fleet or ((4, 4) if quick else (8, 16))
        return cls(
            rounds=args.rounds or (15 if quick else 401),
            warmup=2 if quick else 10,
            batch=args.batch or (10 if quick else 20),
            step_batch=(args.batch or (10 if quick else 20)) * 10,
            threads=args.threads,
            tasks=args.tasks,
            latency=args.latency if args.latency is not None else (0.02 if quick else 0.05),
            repeats=repeats,
            import_runs=args.import_runs or (3 if quick else 15),
            fleet=FleetParams(
                processes=processes,
                threads=threads,
                latency=0.2 if quick else 0.3,
                lifetime=2.0 if quick else 3.0,
                repeats=repeats,
            ),
        )


def log(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


# -- checks that each setup really authenticates ---------------------------------------------------


def _authorization_of(response: Any) -> str:
    return str(response.request.headers.get("Authorization", ""))


def _check_sent(name: str, flavour: str, response: Any) -> None:
    value = _authorization_of(response)
    if not value.startswith("Bearer "):
        raise RuntimeError(f"{name} ({flavour}) sent no bearer token: {value!r}")


# -- per-request cost and bare auth step -----------------------------------------------------------


@dataclasses.dataclass
class TimingResult:
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


def _time_sync_flavour(flavour: str, impls: Sequence[Impl], p: Params, out: TimingResult) -> None:
    setups: Setups = {}
    for impl in impls:
        endpoint = token_endpoint()
        setup = impl.build(endpoint, False)
        setup.prime()
        _check_sent(impl.name, flavour, setup.request())
        endpoint.reset_counters()
        setups[impl.name] = (setup, endpoint)
    _time_setups(flavour, setups, p, out, run_sync_rounds)


def _time_async_flavour(flavour: str, impls: Sequence[Impl], p: Params, out: TimingResult) -> None:
    async def ready() -> Setups:
        setups: Setups = {}
        for impl in impls:
            endpoint = token_endpoint()
            setup = impl.build(endpoint, False)
            await setup.prime()
            _check_sent(impl.name, flavour, await setup.request())
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


def _time_setups(
    flavour: str,
    setups: Setups,
    p: Params,
    out: TimingResult,
    run_rounds: Callable[..., Samples],
) -> None:
    """Time one request and the bare auth step of primed *setups* in interleaved rounds
    (*run_rounds*: :func:`run_sync_rounds`, or the async flavours' counterpart), and record
    the token requests and shared-cache calls they made meanwhile."""
    calls = out.shared_setup_calls[flavour] = _shared_calls(setups)
    gc.collect()
    out.per_request[flavour] = run_rounds(
        {name: Bench(s.request) for name, (s, _) in setups.items()},
        rounds=p.rounds,
        batch=p.batch,
        warmup=p.warmup,
    )
    gc.collect()
    out.auth_step[flavour] = run_rounds(
        {name: Bench(s.step, s.inputs) for name, (s, _) in setups.items() if s.step},
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


def run_timings(p: Params) -> TimingResult:
    out = TimingResult(absent=absent())
    with contextlib.ExitStack() as stack:
        shared = _shared_cache_impls(stack, out)
        impls = [*all_impls(), *shared]
        for flavour in FLAVOURS:
            log(f"per-request cost: {flavour}")
            mine = [i for i in impls if i.flavour == flavour]
            if flavour in ASYNC_FLAVOURS:
                _time_async_flavour(flavour, mine, p, out)
            else:
                _time_sync_flavour(flavour, mine, p, out)
    return out


# -- concurrent token requests ---------------------------------------------------------------------

#: flavour -> implementation -> {moment: {"na": reason} | {"outcomes": [...]}, "note"?: text}
ConcurrencyResult = dict[str, dict[str, dict[str, Any]]]


def run_concurrency(p: Params) -> ConcurrencyResult:
    result: ConcurrencyResult = {}
    for flavour, per in absent().items():
        for name, why in per.items():
            result.setdefault(flavour, {})[name] = {moment: {"na": why} for moment in MOMENTS}
    for impl in all_impls():
        if impl.name == FLOOR:
            continue
        cell = result.setdefault(impl.flavour, {}).setdefault(impl.name, {})
        if impl.note is not None:
            cell["note"] = impl.note
        for moment in MOMENTS:
            na = impl.cold_na if moment == "cold" else impl.expiry_na
            if na is not None:
                cell[moment] = {"na": na}
                continue
            log(f"concurrency: {impl.flavour}, {impl.name}, {MOMENT_LABELS[moment]}")
            outcomes: list[Outcome] = []
            for _ in range(p.repeats):
                if impl.aio:
                    outcomes.append(asyncio.run(count_async(impl, moment, p.tasks, p.latency)))
                else:
                    outcomes.append(count_sync(impl, moment, p.threads, p.latency))
            cell[moment] = {"outcomes": [o.as_dict() for o in outcomes]}
    return result


# -- tables ----------------------------------------------------------------------------------------


def _names(by_flavour: dict[str, Any], also: Sequence[str] = ()) -> list[str]:
    present = {name for per in by_flavour.values() for name in per} | set(also)
    return [name for name in ROW_ORDER if name in present]


def _label(name: str) -> str:
    """This package's rows in bold."""
    return name.replace(OURS, f"**{OURS}**", 1) if name in OUR_NAMES else name


def _shared_note(t: TimingResult) -> str:
    setup = sorted(n for per in t.shared_setup_calls.values() for n in per.values())
    calls = sum(n for per in t.shared_calls.values() for n in per.values())
    first = (
        "none" if not setup else f"{setup[0]}–{setup[-1]}" if setup[0] != setup[-1] else setup[0]
    )
    return (
        "file cache, Redis cache: the same auth object given `cache=FileCache(dir)` or "
        "`cache=RedisCache(url)` (a redis-server of the benchmark's own, on loopback); its "
        "memory cache stays in front. Calls to its shared cache while it fetched its first "
        f"token: {first} each; during the timed rounds: {calls} in all."
    )


def _timing_rows(
    t: TimingResult,
    by_flavour: dict[str, Samples],
    width: int,
    cells: Callable[[Samples, str], list[str]],
    notes: Footnotes,
) -> list[list[str]]:
    """A row per implementation: in each flavour its *width* cells, from *cells*, or "n/a"
    (not timed, or not in that flavour; the reason a footnote) or "—" (no such flavour)."""
    absent = [name for per in t.absent.values() for name in per]
    rows: list[list[str]] = []
    for name in _names(by_flavour, [*t.unavailable, *absent]):
        row = [_label(name)]
        if name in t.unavailable:
            rows.append(row + [f"n/a {notes.ref(t.unavailable[name])}"] * width * len(FLAVOURS))
            continue
        for flavour in FLAVOURS:
            samples = by_flavour.get(flavour, {})
            if name in t.absent.get(flavour, {}):
                row += [f"n/a {notes.ref(t.absent[flavour][name])}"] * width
            elif name in samples:
                row += cells(samples, name)
            else:
                row += ["—"] * width
        rows.append(row)
    return rows


def per_request_table(t: TimingResult) -> Table:
    def cells(samples: Samples, name: str) -> list[str]:
        ratio = median_ratio(samples[name], samples[FLOOR])
        return [f"{statistics.median(samples[name]):.1f}", f"{ratio:.3f}"]

    notes = Footnotes()
    rows = _timing_rows(t, t.per_request, 2, cells, notes)
    headers = ["implementation"]
    for flavour in FLAVOURS:
        headers += [f"{flavour} µs", "× floor"]
    return Table(
        "Per-request cost, warm token (median µs per request; ratio to the floor)",
        headers,
        rows,
        [
            "floor: a static `Authorization: Bearer` header set on the request, no auth object.",
            "— : the library has no such flavour.",
            _shared_note(t),
            *notes.lines(),
        ],
    )


def auth_step_table(t: TimingResult) -> Table:
    def cells(samples: Samples, name: str) -> list[str]:
        return [f"{statistics.median(samples[name]):.2f}"]

    notes = Footnotes()
    rows = _timing_rows(t, t.auth_step, 1, cells, notes)
    return Table(
        "Bare auth step, warm token (median µs per call)",
        ["implementation", *[f"{flavour} µs" for flavour in FLAVOURS]],
        rows,
        [
            "The plugin's own work on one request and its 200 answer, without the HTTP "
            "client; the floor sets the header.",
            "— : the library has no such flavour.",
            *notes.lines(),
        ],
    )


def _concurrency_cell(entry: dict[str, Any], notes: Footnotes) -> str:
    if "na" in entry:
        return "n/a " + notes.ref(entry["na"])
    outcomes = entry["outcomes"]
    counts = sorted({o["token_requests"] for o in outcomes})
    errors: dict[str, int] = {}
    for o in outcomes:
        for kind, n in o["errors"].items():
            errors[kind] = errors.get(kind, 0) + n
    text = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    if errors:
        callers = sum(o["callers"] for o in outcomes)
        failed = sum(errors.values())
        what = ", ".join(f"{kind} ×{n}" for kind, n in sorted(errors.items()))
        note = notes.ref(f"callers failed ({failed} of {callers}): {what}")
        return f"n/a {note}" if failed == callers else f"{text} {note}"
    return text


def concurrency_table(c: ConcurrencyResult, p: Params) -> Table:
    notes = Footnotes()
    headers = ["implementation"]
    for flavour in FLAVOURS:
        who = f"{p.tasks} tasks" if flavour in ASYNC_FLAVOURS else f"{p.threads} threads"
        headers += [f"{flavour}, {who}: cold", "at expiry"]
    rows: list[list[str]] = []
    for name in _names(c):
        row = [f"**{name}**" if name == OURS else name]
        for flavour in FLAVOURS:
            entry = c.get(flavour, {}).get(name)
            if entry is None:
                row += ["—", "—"]
                continue
            cells = [_concurrency_cell(entry[moment], notes) for moment in MOMENTS]
            if "note" in entry:
                cells = [f"{cell} {notes.ref(entry['note'])}" for cell in cells]
            row += cells
        rows.append(row)
    return Table(
        f"Token requests when many callers need a token at once (token endpoint latency "
        f"{p.latency * 1000:g} ms; {p.repeats} repeat(s), range shown if they differ)",
        headers,
        rows,
        ["— : the library has no such flavour.", *notes.lines()],
    )


def _fleet_cell(entry: dict[str, Any], moment: str, notes: Footnotes) -> str:
    if "na" in entry:
        return f"n/a ({entry['na']})"
    outcomes = entry["outcomes"]
    failed = [o["failed"] for o in outcomes if "failed" in o]
    waves = [o[moment] for o in outcomes if "failed" not in o]
    failures = " ".join(notes.ref(f"the fleet failed: {why}") for why in failed)
    if not waves:
        return f"n/a {failures}"
    cell = _concurrency_cell({"outcomes": waves}, notes)
    return f"{cell} {failures}" if failures else cell


def fleet_table(fleet: dict[str, dict[str, Any]], p: Params) -> Table:
    f = p.fleet
    notes = Footnotes()
    memory = notes.ref("each process has its own memory cache, so fetches its own token.")
    rows = [
        [
            FLEET_LABELS[kind] + (f" {memory}" if kind == "memory" else ""),
            f"{f.processes} x {f.threads}",
            *[_fleet_cell(fleet[kind], moment, notes) for moment in MOMENTS],
        ]
        for kind in CACHES
    ]
    return Table(
        f"Token requests from a fleet of processes (the `Emulator` on loopback; token endpoint "
        f"answering after {f.latency * 1000:g} ms, tokens living {f.lifetime:g} s; "
        f"{f.repeats} repeat(s), range shown if they differ)",
        ["cache", "processes x threads", "token requests cold", "at expiry"],
        rows,
        notes.lines(),
    )


def import_table(times: dict[str, list[float]], targets: Sequence[ImportTarget]) -> Table:
    rows: list[list[str]] = []
    for target in targets:
        values = times[target.label]
        over = "—"
        if target.baseline is not None:
            over = f"{median_difference(values, times[target.baseline]):+.1f} vs {target.baseline}"
        label = f"**{target.label}**" if target.label.startswith("oauth_cc_auth") else target.label
        rows.append([label, f"{statistics.median(values):.1f}", over])
    return Table(
        "Import time in a fresh interpreter (median ms)",
        ["import", "ms", "difference (median of paired runs, ms)"],
        rows,
    )


# -- the verdict -----------------------------------------------------------------------------------


def _shared_check(t: TimingResult, flavour: str) -> dict[str, Any]:
    """Per-request cost with a shared cache: the ratios to the floor, and no cache calls."""
    samples = t.per_request[flavour]
    ratios = {
        label: median_ratio(samples[name], samples[FLOOR])
        for name, label in SHARED_ROWS.items()
        if name in samples
    }
    calls = sum(t.shared_calls.get(flavour, {}).values())
    # The shared cache was in use: the first token went through it.
    used = all(n > 0 for n in t.shared_setup_calls.get(flavour, {}).values())
    parts = [f"{label} {ratio:.3f}x" for label, ratio in ratios.items()]
    parts += [f"{SHARED_ROWS[name]} n/a ({why})" for name, why in t.unavailable.items()]
    parts.append(f"{calls} shared-cache calls while warm")
    fast = bool(ratios) and all(r <= MAX_RATIO for r in ratios.values())
    return {"pass": fast and calls == 0 and used, "detail": ", ".join(parts)}


def _fleet_check(fleet: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Exactly one token request in every wave of every fleet with a shared cache."""
    bad: list[str] = []
    parts: list[str] = []
    waves = 0
    for kind, label in (("file", "file"), ("redis", "Redis")):
        entry = fleet[kind]
        if "na" in entry:
            parts.append(f"{label} n/a ({entry['na']})")
            continue
        counts: list[int] = []
        for outcome in entry["outcomes"]:
            if "failed" in outcome:
                bad.append(f"{label}: the fleet failed")
                continue
            for moment in MOMENTS:
                wave = outcome[moment]
                counts.append(wave["token_requests"])
                if wave["token_requests"] != 1 or wave["errors"]:
                    bad.append(f"{label} {moment}: {wave['token_requests']} {wave['errors']}")
        waves += len(counts)
        parts.append(f"{label}: {', '.join(map(str, counts))}")
    return {"pass": not bad and waves > 0, "detail": "; ".join(bad or parts)}


def verdict(
    t: TimingResult | None,
    c: ConcurrencyResult | None,
    fleet: dict[str, dict[str, Any]] | None,
    times: dict[str, list[float]] | None,
) -> dict[str, dict[str, Any]]:
    checks: dict[str, dict[str, Any]] = {}
    if t is not None:
        for flavour in FLAVOURS:
            samples = t.per_request[flavour]
            ratio = median_ratio(samples[OURS], samples[FLOOR])
            checks[f"per-request {flavour}: at most {MAX_RATIO:.2f}x the floor"] = {
                "pass": ratio <= MAX_RATIO,
                "detail": f"{ratio:.3f}x",
            }
            checks[
                f"per-request {flavour}, file and Redis caches: at most {MAX_RATIO:.2f}x the floor"
            ] = _shared_check(t, flavour)
            # Paired, like the ratios to the floor: median over rounds of ours / peer.
            versus = {
                name: median_ratio(samples[OURS], values)
                for name, values in samples.items()
                if name != FLOOR and name not in OUR_NAMES
            }
            gone = [f"{name} n/a" for name in t.absent.get(flavour, {})]
            checks[f"per-request {flavour}: lower than every peer"] = {
                "pass": bool(versus) and all(r < 1.0 for r in versus.values()),
                "detail": ", ".join([*(f"{r:.3f}x {name}" for name, r in versus.items()), *gone]),
            }
            warm = {n: k for n, k in t.warm_token_requests[flavour].items() if k}
            if warm:
                checks[f"per-request {flavour}: no token requests with a warm token"] = {
                    "pass": not any(name in warm for name in OUR_NAMES),
                    "detail": ", ".join(f"{n}: {k}" for n, k in warm.items()),
                }
    if c is not None:
        bad: list[str] = []
        for flavour, per in c.items():
            for moment, entry in per.get(OURS, {}).items():
                for o in entry.get("outcomes", []):
                    if o["token_requests"] != 1 or o["errors"]:
                        bad.append(f"{flavour} {moment}: {o['token_requests']} {o['errors']}")
        checks["concurrency: exactly one token request in every case"] = {
            "pass": not bad,
            "detail": "; ".join(bad) or "all 1",
        }
    if fleet is not None:
        checks["multi-process: exactly one token request per wave with file and Redis caches"] = (
            _fleet_check(fleet)
        )
    if times is not None:
        over = median_difference(times["oauth_cc_auth"], times["authlib.oauth2"])
        checks[f"import oauth_cc_auth: at most {MAX_IMPORT_MS:g} ms over authlib.oauth2"] = {
            "pass": over <= MAX_IMPORT_MS,
            "detail": f"{over:+.1f} ms",
        }
    return checks


def verdict_table(checks: dict[str, dict[str, Any]]) -> Table:
    rows = [[name, "pass" if v["pass"] else "**FAIL**", v["detail"]] for name, v in checks.items()]
    return Table("Targets of the issue", ["target", "result", "measured"], rows)


# -- main ------------------------------------------------------------------------------------------


def _reproduce(argv: Sequence[str]) -> str:
    """The command line that measures the same again (where the output goes left out)."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--json", "--rst"):
            skip = True
        elif not arg.startswith(("--json=", "--rst=")):
            kept.append(arg)
    return " ".join(["python benchmarks/run.py", *kept])


def _source() -> dict[str, str | None]:
    """Which oauth_cc_auth was measured: its directory, and the git commit of its tree."""
    import oauth_cc_auth

    package = Path(oauth_cc_auth.__file__).resolve().parent
    found: dict[str, str | None] = {
        "version": oauth_cc_auth.__version__,
        "package": str(package),
        "commit": None,
        "modified": None,
    }
    try:
        git = ["git", "-C", str(package.parent)]
        commit = subprocess.run(  # noqa: S603 - a fixed git command
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        status = subprocess.run(  # noqa: S603 - a fixed git command
            [*git, "status", "--porcelain", "--", str(package)],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return found
    found["commit"] = commit.stdout.strip()
    found["modified"] = "yes" if status.stdout.strip() else "no"
    return found


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _fleet_size(text: str) -> tuple[int, int]:
    processes, _, threads = text.lower().partition("x")
    try:
        size = int(processes), int(threads)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not PROCESSESxTHREADS: {text!r}") from None
    if min(size) < 1:
        raise argparse.ArgumentTypeError("at least one process and one thread")
    return size


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    parser.add_argument("--rst", type=Path, help="also write the tables as reStructuredText")
    parser.add_argument(
        "--only",
        choices=("timing", "concurrency", "fleet", "imports"),
        action="append",
        help="run only these parts (repeatable)",
    )
    parser.add_argument("--rounds", type=int, help="interleaved timing rounds")
    parser.add_argument("--batch", type=int, help="requests per implementation per round")
    parser.add_argument("--threads", type=int, default=32, help="threads needing a token")
    parser.add_argument("--tasks", type=int, default=200, help="asyncio tasks needing a token")
    parser.add_argument("--latency", type=float, help="token endpoint latency, seconds")
    parser.add_argument(
        "--repeats", type=int, help="repeats of each concurrency and multi-process case"
    )
    parser.add_argument(
        "--fleet",
        type=_fleet_size,
        metavar="PxT",
        help="processes x threads of the multi-process case (default 8x16; quick 4x4)",
    )
    parser.add_argument("--import-runs", type=int, help="fresh interpreters per import")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a target of the issue is missed"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Deprecation warnings of the libraries measured are not what is measured. (Authlib's, for
    # its httpx fallback, are silenced where it is asked which library it is built on.)
    warnings.simplefilter("ignore", DeprecationWarning)
    p = Params.of(args)
    parts = set(args.only or ("timing", "concurrency", "fleet", "imports"))
    started = time.monotonic()
    when = datetime.now(UTC).isoformat(timespec="seconds")
    source = _source()

    timings = run_timings(p) if "timing" in parts else None
    conc = run_concurrency(p) if "concurrency" in parts else None
    fleet = run_fleets(p.fleet, log) if "fleet" in parts else None
    targets = import_targets(authlib_httpx_library())
    if "imports" in parts:
        log("import times")
        times = measure_imports(targets, p.import_runs)
    else:
        times = None

    tables: list[Table] = []
    if timings is not None:
        tables += [per_request_table(timings), auth_step_table(timings)]
    if conc is not None:
        tables.append(concurrency_table(conc, p))
    if fleet is not None:
        tables.append(fleet_table(fleet, p))
    if times is not None:
        tables.append(import_table(times, targets))
    checks = verdict(timings, conc, fleet, times)
    tables.append(verdict_table(checks))
    duration = time.monotonic() - started

    command = _reproduce(sys.argv[1:] if argv is None else list(argv))
    header = (
        f"## oauth_cc_auth benchmarks ({when}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPU, {duration:.0f} s)\n\nReproduce: `{command}`\n\n"
        f"Measured: oauth_cc_auth {source['version']} from {source['package']}"
        + (
            f" (commit {source['commit']}, modified: {source['modified']})"
            if source["commit"]
            else ""
        )
    )
    print(header)
    for table in tables:
        print()
        print(table.markdown())

    result = {
        "meta": {
            "started": when,
            "duration_s": round(duration, 1),
            "command": command,
            "python": sys.version,
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "source": source,
            "versions": _versions(),
            "params": dataclasses.asdict(p),
        },
        "per_request_us": _timing_json(timings.per_request) if timings else None,
        "auth_step_us": _timing_json(timings.auth_step, ratios=False) if timings else None,
        "warm_token_requests": timings.warm_token_requests if timings else None,
        "shared_cache_calls_first_token": timings.shared_setup_calls if timings else None,
        "shared_cache_calls_warm": timings.shared_calls if timings else None,
        "unavailable": timings.unavailable if timings else None,
        "absent": timings.absent if timings else None,
        "authlib_httpx_library": authlib_httpx_library(),
        "concurrency": conc,
        "multi_process": fleet,
        "imports_ms": _imports_json(times, targets) if times else None,
        "targets": checks,
        "markdown": "\n\n".join(t.markdown() for t in tables),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    log(f"wrote {args.json}")
    if args.rst is not None:
        args.rst.write_text(
            "\n\n".join(t.rst() for t in tables[:-1]) + "\n\nReproduce with ``" + command + "``.\n",
            encoding="utf-8",
        )
        log(f"wrote {args.rst}")
    if args.check and not all(v["pass"] for v in checks.values()):
        return 1
    return 0


def _timing_json(by_flavour: dict[str, Samples], *, ratios: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for flavour, samples in by_flavour.items():
        out[flavour] = {}
        for name, values in samples.items():
            entry: dict[str, Any] = {"median": round(statistics.median(values), 3)}
            if ratios:
                entry["ratio_to_floor"] = round(median_ratio(values, samples[FLOOR]), 4)
            entry["rounds"] = [round(v, 3) for v in values]
            out[flavour][name] = entry
    return out


def _imports_json(times: dict[str, list[float]], targets: Sequence[ImportTarget]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for target in targets:
        values = times[target.label]
        entry: dict[str, Any] = {
            "modules": list(target.modules),
            "median": round(statistics.median(values), 2),
            "runs": [round(v, 2) for v in values],
        }
        if target.baseline is not None:
            entry["baseline"] = target.baseline
            entry["over_baseline"] = round(median_difference(values, times[target.baseline]), 2)
        out[target.label] = entry
    return out


if __name__ == "__main__":
    sys.exit(main())
