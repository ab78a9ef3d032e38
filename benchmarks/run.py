"""Benchmarks of oauth_cc_auth against the floor and the peer libraries.

Run from the repository root::

    python benchmarks/run.py            # full run, about ten minutes on 2 cores
    python benchmarks/run.py --quick    # smoke run, about forty seconds

Prints markdown tables and writes JSON (``benchmarks/results.json`` by default). See
``benchmarks/README.md`` for what is measured.

This module is the command line and the order of a run; each part is measured by a module of
its own (:mod:`timing`, :mod:`concurrency`, :mod:`fleet`, :mod:`imports`), :mod:`tables`
builds the tables and :mod:`verdict` judges the targets.
"""

from __future__ import annotations

import argparse
import dataclasses
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

from concurrency import run_concurrency
from fleet import FleetParams, run_fleets
from impls import (
    FLAVOURS,
    OURS,
    OURS_DPOP,
    PROOF_OURS,
    PROOF_REQUESTS_OAUTH2CLIENT,
    REQUESTS_OAUTH2CLIENT,
    REQUESTS_OAUTH2CLIENT_DPOP,
    STRICT_FLAVOURS,
    authlib_httpx_library,
)
from imports import ImportTarget, import_targets, measure_imports, median_difference
from refresh import RefreshParams, run_refresh
from tables import (
    Table,
    auth_step_table,
    concurrency_table,
    fleet_table,
    import_table,
    per_request_table,
    refresh_table,
    verdict_table,
)
from timing import Rounds, Samples, TimingResult, median_ratio, run_timings
from verdict import MAX_RATIO, STRICT_RATIO, floor_ratio, judge, passed

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results.json"
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
    "aiohttp",
    "aiohttp-oauth2-client",
    "niquests",
    "urllib3-future",
)


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
    refresh: RefreshParams

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
            refresh=RefreshParams(
                seconds=1.6 if quick else 2.0,
                api_latency=args.api_latency,
                repeats=repeats,
            ),
        )


def log(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


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
        choices=("timing", "concurrency", "fleet", "imports", "refresh"),
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
        "--api-latency", type=float, default=0.02,
        help="the API's round trip in the refresh latencies, seconds",
    )
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
    parts = set(args.only or ("timing", "concurrency", "fleet", "imports", "refresh"))
    started = time.monotonic()
    when = datetime.now(UTC).isoformat(timespec="seconds")
    source = _source()

    rounds = Rounds(rounds=p.rounds, warmup=p.warmup, batch=p.batch, step_batch=p.step_batch)
    timings = run_timings(rounds, log) if "timing" in parts else None
    conc = (
        run_concurrency(p.threads, p.tasks, p.latency, p.repeats, log)
        if "concurrency" in parts
        else None
    )
    fleet = run_fleets(p.fleet, log) if "fleet" in parts else None
    refreshes = run_refresh(p.refresh, log) if "refresh" in parts else None
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
        tables.append(
            concurrency_table(
                conc, threads=p.threads, tasks=p.tasks, latency=p.latency, repeats=p.repeats
            )
        )
    if fleet is not None:
        tables.append(fleet_table(fleet, p.fleet))
    if refreshes is not None:
        tables.append(refresh_table(refreshes, p.refresh))
    if times is not None:
        tables.append(import_table(times, targets))
    checks = judge(timings, conc, fleet, times, refreshes)
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
        "dpop": _dpop_json(timings) if timings else None,
        "unavailable": timings.unavailable if timings else None,
        "absent": timings.absent if timings else None,
        "authlib_httpx_library": authlib_httpx_library(),
        "concurrency": conc,
        "multi_process": fleet,
        "refresh_latency": refreshes,
        "imports_ms": _imports_json(times, targets) if times else None,
        "thresholds": {
            flavour: STRICT_RATIO if flavour in STRICT_FLAVOURS else MAX_RATIO
            for flavour in FLAVOURS
        },
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
    if args.check and not passed(checks):
        return 1
    return 0


def _timing_json(by_flavour: dict[str, Samples], *, ratios: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for flavour, samples in by_flavour.items():
        out[flavour] = {}
        for name, values in samples.items():
            entry: dict[str, Any] = {"median": round(statistics.median(values), 3)}
            if ratios:
                entry["ratio_to_floor"] = round(floor_ratio(samples, name), 4)
            entry["rounds"] = [round(v, 3) for v in values]
            out[flavour][name] = entry
    return out


#: Each DPoP row of the timings, and the Bearer row it is compared with.
_DPOP_PAIRS = ((OURS_DPOP, OURS), (REQUESTS_OAUTH2CLIENT_DPOP, REQUESTS_OAUTH2CLIENT))


def _dpop_json(t: TimingResult) -> dict[str, Any]:
    """The DPoP rows, by flavour: per request (µs, and paired ratios to the floor and to the
    same library with Bearer tokens), the bare auth step, and a proof alone (µs)."""
    out: dict[str, Any] = {}
    for flavour, samples in t.per_request.items():
        steps = t.auth_step.get(flavour, {})
        entry: dict[str, Any] = {}
        for name, bearer in _DPOP_PAIRS:
            if name not in samples:
                continue
            entry[name] = {
                "per_request_median": round(statistics.median(samples[name]), 3),
                "ratio_to_floor": round(floor_ratio(samples, name), 4),
                "ratio_to_bearer": round(median_ratio(samples[name], samples[bearer]), 4),
                "auth_step_median": (
                    round(statistics.median(steps[name]), 3) if name in steps else None
                ),
            }
        for name in (PROOF_OURS, PROOF_REQUESTS_OAUTH2CLIENT):
            if name in steps:
                entry[name] = {"median": round(statistics.median(steps[name]), 3)}
        if entry:
            out[flavour] = entry
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
