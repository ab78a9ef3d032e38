"""Benchmarks of oauth_cc_auth against the floor and the peer libraries.

Run from the repository root::

    python benchmarks/run.py            # full run, about a minute on 2 cores
    python benchmarks/run.py --quick    # smoke run, about ten seconds

Prints markdown tables and writes JSON (``benchmarks/results.json`` by default). See
``benchmarks/README.md`` for what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from concurrency import Outcome, count_async, count_sync
from impls import (
    AUTHLIB,
    FLAVOURS,
    FLOOR,
    HTTPX_AUTH,
    OURS,
    REQUESTS_AUTH,
    REQUESTS_OAUTH2CLIENT,
    REQUESTS_OAUTHLIB,
    AsyncImpl,
    AsyncSetup,
    SyncImpl,
    SyncSetup,
    async_impls,
    sync_impls,
)
from imports import TARGETS, measure_imports, median_difference
from report import Footnotes, Table
from timing import (
    AsyncBench,
    Samples,
    SyncBench,
    median_ratio,
    run_async_rounds,
    run_sync_rounds,
)
from transports import TokenEndpoint

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results.json"
MOMENTS = ("cold", "expiry")
MOMENT_LABELS = {"cold": "cold start", "expiry": "at expiry"}
ROW_ORDER = (
    FLOOR,
    OURS,
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
    "anyio",
    "requests-oauthlib",
    "oauthlib",
    "requests-oauth2client",
    "requests-auth",
    "httpx-auth",
)

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

    @classmethod
    def of(cls, args: argparse.Namespace) -> Params:
        quick = args.quick
        return cls(
            rounds=args.rounds or (15 if quick else 401),
            warmup=2 if quick else 10,
            batch=args.batch or (10 if quick else 20),
            step_batch=(args.batch or (10 if quick else 20)) * 10,
            threads=args.threads,
            tasks=args.tasks,
            latency=args.latency if args.latency is not None else (0.02 if quick else 0.05),
            repeats=args.repeats or (1 if quick else 3),
            import_runs=args.import_runs or (3 if quick else 15),
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


def _time_sync_flavour(
    flavour: str, impls: Sequence[SyncImpl], p: Params, out: TimingResult
) -> None:
    setups: dict[str, tuple[SyncSetup, TokenEndpoint]] = {}
    for impl in impls:
        endpoint = TokenEndpoint()
        setup = impl.build(endpoint, False)
        setup.prime()
        _check_sent(impl.name, flavour, setup.request())
        endpoint.reset()
        setups[impl.name] = (setup, endpoint)
    gc.collect()
    out.per_request[flavour] = run_sync_rounds(
        {name: SyncBench(s.request) for name, (s, _) in setups.items()},
        rounds=p.rounds,
        batch=p.batch,
        warmup=p.warmup,
    )
    gc.collect()
    out.auth_step[flavour] = run_sync_rounds(
        {name: SyncBench(s.step, s.inputs) for name, (s, _) in setups.items() if s.step},
        rounds=p.rounds,
        batch=p.step_batch,
        warmup=p.warmup,
    )
    out.warm_token_requests[flavour] = {name: e.count for name, (_, e) in setups.items()}


async def _time_async_flavour(
    flavour: str, impls: Sequence[AsyncImpl], p: Params, out: TimingResult
) -> None:
    setups: dict[str, tuple[AsyncSetup, TokenEndpoint]] = {}
    for impl in impls:
        endpoint = TokenEndpoint()
        setup = await impl.build(endpoint, False)
        await setup.prime()
        _check_sent(impl.name, flavour, await setup.request())
        endpoint.reset()
        setups[impl.name] = (setup, endpoint)
    gc.collect()
    out.per_request[flavour] = await run_async_rounds(
        {name: AsyncBench(s.request) for name, (s, _) in setups.items()},
        rounds=p.rounds,
        batch=p.batch,
        warmup=p.warmup,
    )
    gc.collect()
    out.auth_step[flavour] = await run_async_rounds(
        {name: AsyncBench(s.step, s.inputs) for name, (s, _) in setups.items() if s.step},
        rounds=p.rounds,
        batch=p.step_batch,
        warmup=p.warmup,
    )
    out.warm_token_requests[flavour] = {name: e.count for name, (_, e) in setups.items()}


def run_timings(p: Params) -> TimingResult:
    out = TimingResult()
    sync = sync_impls()
    for flavour in FLAVOURS[:2]:
        log(f"per-request cost: {flavour}")
        _time_sync_flavour(flavour, [i for i in sync if i.flavour == flavour], p, out)
    log(f"per-request cost: {FLAVOURS[2]}")
    asyncio.run(_time_async_flavour(FLAVOURS[2], async_impls(), p, out))
    return out


# -- concurrent token requests ---------------------------------------------------------------------

#: flavour -> implementation -> {moment: {"na": reason} | {"outcomes": [...]}, "note"?: text}
ConcurrencyResult = dict[str, dict[str, dict[str, Any]]]


def run_concurrency(p: Params) -> ConcurrencyResult:
    result: ConcurrencyResult = {}
    impls: list[SyncImpl | AsyncImpl] = [*sync_impls(), *async_impls()]
    for impl in impls:
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
                if isinstance(impl, SyncImpl):
                    outcomes.append(count_sync(impl, moment, p.threads, p.latency))
                else:
                    outcomes.append(asyncio.run(count_async(impl, moment, p.tasks, p.latency)))
            cell[moment] = {"outcomes": [o.as_dict() for o in outcomes]}
    return result


# -- tables ----------------------------------------------------------------------------------------


def _names(by_flavour: dict[str, Any]) -> list[str]:
    present = {name for per in by_flavour.values() for name in per}
    return [name for name in ROW_ORDER if name in present]


def per_request_table(t: TimingResult) -> Table:
    rows: list[list[str]] = []
    for name in _names(t.per_request):
        row = [f"**{name}**" if name == OURS else name]
        for flavour in FLAVOURS:
            samples = t.per_request.get(flavour, {})
            if name not in samples:
                row += ["—", "—"]
                continue
            row.append(f"{statistics.median(samples[name]):.1f}")
            row.append(f"{median_ratio(samples[name], samples[FLOOR]):.3f}")
        rows.append(row)
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
        ],
    )


def auth_step_table(t: TimingResult) -> Table:
    rows: list[list[str]] = []
    for name in _names(t.auth_step):
        row = [f"**{name}**" if name == OURS else name]
        for flavour in FLAVOURS:
            samples = t.auth_step.get(flavour, {})
            row.append(f"{statistics.median(samples[name]):.2f}" if name in samples else "—")
        rows.append(row)
    return Table(
        "Bare auth step, warm token (median µs per call)",
        ["implementation", *[f"{flavour} µs" for flavour in FLAVOURS]],
        rows,
        [
            "The plugin's own work on one request and its 200 answer, without the HTTP "
            "client; the floor sets the header.",
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
        who = f"{p.tasks} tasks" if flavour == FLAVOURS[2] else f"{p.threads} threads"
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
        notes.lines(),
    )


def import_table(times: dict[str, list[float]]) -> Table:
    rows: list[list[str]] = []
    for target in TARGETS:
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


def verdict(
    t: TimingResult | None, c: ConcurrencyResult | None, times: dict[str, list[float]] | None
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
            # Paired, like the ratios to the floor: median over rounds of ours / peer.
            versus = {
                name: median_ratio(samples[OURS], values)
                for name, values in samples.items()
                if name not in (FLOOR, OURS)
            }
            checks[f"per-request {flavour}: lower than every peer"] = {
                "pass": all(r < 1.0 for r in versus.values()),
                "detail": ", ".join(f"{r:.3f}x {name}" for name, r in versus.items()),
            }
            warm = {n: k for n, k in t.warm_token_requests[flavour].items() if k}
            if warm:
                checks[f"per-request {flavour}: no token requests with a warm token"] = {
                    "pass": OURS not in warm,
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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    parser.add_argument("--rst", type=Path, help="also write the tables as reStructuredText")
    parser.add_argument(
        "--only",
        choices=("timing", "concurrency", "imports"),
        action="append",
        help="run only these parts (repeatable)",
    )
    parser.add_argument("--rounds", type=int, help="interleaved timing rounds")
    parser.add_argument("--batch", type=int, help="requests per implementation per round")
    parser.add_argument("--threads", type=int, default=32, help="threads needing a token")
    parser.add_argument("--tasks", type=int, default=200, help="asyncio tasks needing a token")
    parser.add_argument("--latency", type=float, help="token endpoint latency, seconds")
    parser.add_argument("--repeats", type=int, help="repeats of each concurrency case")
    parser.add_argument("--import-runs", type=int, help="fresh interpreters per import")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a target of the issue is missed"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Authlib's httpx integration warns that it prefers httpx2; the benchmark uses httpx.
    warnings.simplefilter("ignore", DeprecationWarning)
    p = Params.of(args)
    parts = set(args.only or ("timing", "concurrency", "imports"))
    started = time.monotonic()
    when = datetime.now(UTC).isoformat(timespec="seconds")
    source = _source()

    timings = run_timings(p) if "timing" in parts else None
    conc = run_concurrency(p) if "concurrency" in parts else None
    if "imports" in parts:
        log("import times")
        times = measure_imports(TARGETS, p.import_runs)
    else:
        times = None

    tables: list[Table] = []
    if timings is not None:
        tables += [per_request_table(timings), auth_step_table(timings)]
    if conc is not None:
        tables.append(concurrency_table(conc, p))
    if times is not None:
        tables.append(import_table(times))
    checks = verdict(timings, conc, times)
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
        "concurrency": conc,
        "imports_ms": _imports_json(times) if times else None,
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


def _imports_json(times: dict[str, list[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for target in TARGETS:
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
