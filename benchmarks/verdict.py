"""What a run concludes: the issue's targets, judged from the measurements.

Ratios are paired, as everywhere in the timings (:func:`timing.median_ratio`: the median over
rounds of per-round ratios): an implementation to the floor, and this package to each peer.
Each target is ``{"pass": bool, "detail": text}``, by a name that says the target; a case that
could not run (no redis-server, a peer absent from a flavour) says so in its detail and is
left out of the judgment, the rest of the target must still be met.
"""

from __future__ import annotations

from typing import Any

from concurrency import MOMENTS, ConcurrencyResult
from impls import (
    DPOP_NAMES,
    FLAVOURS,
    FLOOR,
    OURS,
    OURS_DPOP,
    OURS_FILE,
    OURS_REDIS,
    STATIC_AUTH,
    STRICT_FLAVOURS,
)
from imports import median_difference
from refresh import RefreshResult, ours_ratios
from timing import Samples, TimingResult, median_ratio

__all__ = [
    "MAX_IMPORT_MS",
    "MAX_RATIO",
    "MAX_REFRESH_RATIO",
    "OUR_NAMES",
    "STRICT_RATIO",
    "Checks",
    "floor_ratio",
    "judge",
    "max_ratio",
    "passed",
]

#: The issue's targets: per-request cost at most this many times the floor's...
MAX_RATIO = 1.10
#: ...at most this many times in the flavours of issue 17 (aiohttp, niquests sync and async)...
STRICT_RATIO = 1.05
#: ...and ``import oauth_cc_auth`` at most this many ms over ``import authlib.oauth2``.
MAX_IMPORT_MS = 10.0
#: API latency across refreshes (p99 and max) at most this many times that of no refresh.
MAX_REFRESH_RATIO = 1.2

#: This package's rows: by default, with each shared cache, and with DPoP. Every other row
#: but the floor and the DPoP rows (reported, not judged: :data:`impls.DPOP_NAMES`) is a peer.
OUR_NAMES = (OURS, OURS_FILE, OURS_REDIS, OURS_DPOP)
#: The shared-cache rows of the timings, and what the targets call them.
SHARED_ROWS = {OURS_FILE: "file", OURS_REDIS: "Redis"}

#: Each target's ``{"pass": bool, "detail": str}``, by what it says.
Checks = dict[str, dict[str, Any]]


def max_ratio(flavour: str) -> float:
    """The highest per-request ratio to the floor allowed in *flavour*."""
    return STRICT_RATIO if flavour in STRICT_FLAVOURS else MAX_RATIO


def floor_ratio(samples: Samples, name: str) -> float:
    """*name*'s per-round cost as a ratio to the floor's in the same rounds (median)."""
    return median_ratio(samples[name], samples[FLOOR])


def _peer_ratios(samples: Samples) -> dict[str, float]:
    """This package's cost as a ratio to each peer's in the same rounds (median)."""
    return {
        name: median_ratio(samples[OURS], values)
        for name, values in samples.items()
        if name not in (FLOOR, STATIC_AUTH) and name not in OUR_NAMES and name not in DPOP_NAMES
    }


def _shared_check(t: TimingResult, flavour: str) -> dict[str, Any]:
    """Per-request cost with a shared cache: the ratios to the floor, and no cache calls."""
    samples = t.per_request[flavour]
    ratios = {
        label: floor_ratio(samples, name) for name, label in SHARED_ROWS.items() if name in samples
    }
    calls = sum(t.shared_calls.get(flavour, {}).values())
    # The shared cache was in use: the first token went through it.
    used = all(n > 0 for n in t.shared_setup_calls.get(flavour, {}).values())
    parts = [f"{label} {ratio:.3f}x" for label, ratio in ratios.items()]
    parts += [f"{SHARED_ROWS[name]} n/a ({why})" for name, why in t.unavailable.items()]
    parts.append(f"{calls} shared-cache calls while warm")
    fast = bool(ratios) and all(r <= MAX_RATIO for r in ratios.values())
    return {"pass": fast and calls == 0 and used, "detail": ", ".join(parts)}


def _timing_checks(t: TimingResult) -> Checks:
    checks: Checks = {}
    for flavour in FLAVOURS:
        samples = t.per_request.get(flavour, {})
        limit = max_ratio(flavour)
        target = f"per-request {flavour}: at most {limit:.2f}x the floor"
        if OURS not in samples:  # oauth_cc_auth.niquests not in the tree measured
            why = t.absent.get(flavour, {}).get(OURS, "not measured")
            checks[target] = {"pass": False, "detail": f"n/a ({why})"}
            continue
        ratio = floor_ratio(samples, OURS)
        checks[target] = {"pass": ratio <= limit, "detail": f"{ratio:.3f}x"}
        if any(name in samples for name in SHARED_ROWS):
            checks[
                f"per-request {flavour}, file and Redis caches: at most {limit:.2f}x the floor"
            ] = _shared_check(t, flavour)
        versus = _peer_ratios(samples)
        gone = [f"{name} n/a" for name in t.absent.get(flavour, {}) if name != OURS]
        if versus or gone:  # niquests has no peer
            checks[f"per-request {flavour}: lower than every peer"] = {
                "pass": bool(versus) and all(r < 1.0 for r in versus.values()),
                "detail": ", ".join([*(f"{r:.3f}x {name}" for name, r in versus.items()), *gone]),
            }
        warm = {n: k for n, k in t.warm_token_requests.get(flavour, {}).items() if k}
        if warm:
            checks[f"per-request {flavour}: no token requests with a warm token"] = {
                "pass": not any(name in warm for name in OUR_NAMES),
                "detail": ", ".join(f"{n}: {k}" for n, k in warm.items()),
            }
    return checks


def _concurrency_check(c: ConcurrencyResult) -> dict[str, Any]:
    """Exactly one token request, and no failed caller, in every case of this package."""
    bad: list[str] = []
    for flavour, per in c.items():
        for moment, entry in per.get(OURS, {}).items():
            if moment == "note":
                continue
            if "na" in entry:  # oauth_cc_auth.niquests not in the tree measured
                bad.append(f"{flavour} {moment}: n/a ({entry['na']})")
            for o in entry.get("outcomes", []):
                if o["token_requests"] != 1 or o["errors"]:
                    bad.append(f"{flavour} {moment}: {o['token_requests']} {o['errors']}")
    return {"pass": not bad, "detail": "; ".join(bad) or "all 1"}


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


def _import_check(times: dict[str, list[float]]) -> dict[str, Any]:
    over = median_difference(times["oauth_cc_auth"], times["authlib.oauth2"])
    return {"pass": over <= MAX_IMPORT_MS, "detail": f"{over:+.1f} ms"}


def _refresh_check(r: RefreshResult) -> dict[str, Any]:
    """oauth_cc_auth's p99 and max across refreshes within the ratio of no refresh, in
    every flavour, with no failed request."""
    ratios = ours_ratios(r)
    bad = [f"{flavour} n/a ({per[OURS]['na']})" for flavour, per in r.items()
           if "na" in per.get(OURS, {})]
    bad += [f"{flavour}: {per[OURS]['refresh']['errors'] + per[OURS]['none']['errors']} failed"
            for flavour, per in r.items()
            if "refresh" in per.get(OURS, {})
            and per[OURS]["refresh"]["errors"] + per[OURS]["none"]["errors"]]
    parts = [f"{flavour} {x['p99']:.2f}x/{x['max']:.2f}x" for flavour, x in ratios.items()]
    fast = bool(ratios) and all(v <= MAX_REFRESH_RATIO for x in ratios.values()
                                for v in x.values())
    return {"pass": fast and not bad, "detail": "; ".join([*bad, *parts])}


def judge(
    t: TimingResult | None,
    c: ConcurrencyResult | None,
    fleet: dict[str, dict[str, Any]] | None,
    times: dict[str, list[float]] | None,
    refresh: RefreshResult | None = None,
) -> Checks:
    """The targets of the parts that ran (``None``: a part that did not)."""
    checks: Checks = {}
    if t is not None:
        checks.update(_timing_checks(t))
    if c is not None:
        checks["concurrency: exactly one token request in every case"] = _concurrency_check(c)
    if fleet is not None:
        checks["multi-process: exactly one token request per wave with file and Redis caches"] = (
            _fleet_check(fleet)
        )
    if times is not None:
        checks[f"import oauth_cc_auth: at most {MAX_IMPORT_MS:g} ms over authlib.oauth2"] = (
            _import_check(times)
        )
    if refresh is not None:
        checks[f"refresh ahead: API p99 and max at most {MAX_REFRESH_RATIO:g}x those of no "
               "refresh (p99/max)"] = _refresh_check(refresh)
    return checks


def passed(checks: Checks) -> bool:
    """Whether every target was met (what ``--check`` exits with)."""
    return all(check["pass"] for check in checks.values())
