"""Import times, each measured in a fresh interpreter.

Each run starts ``python -c`` and times the ``import`` statement itself with
``time.perf_counter_ns`` inside that new process, so interpreter start-up is left out and
nothing is cached in ``sys.modules``. Runs are interleaved across targets; the difference
between two targets is the median of the per-run differences.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import statistics
import subprocess
import sys

__all__ = ["ImportTarget", "import_targets", "measure_imports", "median_difference"]

_CODE = (
    "import time, warnings\n"
    "warnings.simplefilter('ignore')\n"
    "t = time.perf_counter_ns()\n"
    "import {modules}\n"
    "print(time.perf_counter_ns() - t)\n"
)


@dataclasses.dataclass(frozen=True)
class ImportTarget:
    """Modules imported together in one statement; *baseline* names the target compared."""

    label: str
    modules: tuple[str, ...]
    baseline: str | None = None


def import_targets(authlib_httpx: str) -> tuple[ImportTarget, ...]:
    """What is timed; *authlib_httpx* is the library Authlib's httpx integration is built on
    (``"httpx2"`` or ``"httpx"``), the baseline of ``authlib.integrations.httpx_client``."""
    return (
        ImportTarget("oauth_cc_auth", ("oauth_cc_auth",), baseline="authlib.oauth2"),
        ImportTarget(
            "oauth_cc_auth.requests",
            ("oauth_cc_auth.requests",),
            baseline="authlib.oauth2, requests",
        ),
        ImportTarget(
            "oauth_cc_auth.httpx", ("oauth_cc_auth.httpx",), baseline="authlib.oauth2, httpx"
        ),
        ImportTarget(
            "oauth_cc_auth.httpx2", ("oauth_cc_auth.httpx2",), baseline="authlib.oauth2, httpx2"
        ),
        ImportTarget(
            "oauth_cc_auth.aiohttp", ("oauth_cc_auth.aiohttp",), baseline="authlib.oauth2, aiohttp"
        ),
        *(
            (
                ImportTarget(
                    "oauth_cc_auth.niquests",
                    ("oauth_cc_auth.niquests",),
                    baseline="authlib.oauth2, niquests",
                ),
            )
            if importlib.util.find_spec("oauth_cc_auth.niquests") is not None
            else ()
        ),
        ImportTarget("authlib.oauth2", ("authlib.oauth2",)),
        ImportTarget("authlib.oauth2, requests", ("authlib.oauth2", "requests")),
        ImportTarget("authlib.oauth2, httpx", ("authlib.oauth2", "httpx")),
        ImportTarget("authlib.oauth2, httpx2", ("authlib.oauth2", "httpx2")),
        ImportTarget("authlib.oauth2, aiohttp", ("authlib.oauth2", "aiohttp")),
        ImportTarget("authlib.oauth2, niquests", ("authlib.oauth2", "niquests")),
        ImportTarget(
            "authlib.integrations.requests_client",
            ("authlib.integrations.requests_client",),
            baseline="authlib.oauth2, requests",
        ),
        ImportTarget(
            "authlib.integrations.httpx_client",
            ("authlib.integrations.httpx_client",),
            baseline=f"authlib.oauth2, {authlib_httpx}",
        ),
        ImportTarget("requests_oauthlib", ("requests_oauthlib",)),
        ImportTarget("requests_oauth2client", ("requests_oauth2client",)),
        ImportTarget("requests_auth", ("requests_auth",)),
        ImportTarget("httpx_auth", ("httpx_auth",)),
        ImportTarget(
            "aiohttp_oauth2_client",
            ("aiohttp_oauth2_client.grant.client_credentials", "aiohttp_oauth2_client.middleware"),
            baseline="authlib.oauth2, aiohttp",
        ),
    )


def _once(target: ImportTarget) -> float:
    """Milliseconds the import of *target* takes in a new interpreter."""
    code = _CODE.format(modules=", ".join(target.modules))
    done = subprocess.run(  # noqa: S603 - our own interpreter, our own code
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        timeout=60,
    )
    return int(done.stdout.strip().splitlines()[-1]) / 1e6


def measure_imports(targets: tuple[ImportTarget, ...], runs: int) -> dict[str, list[float]]:
    """Import times in milliseconds, *runs* per target, interleaved; after one unrecorded run
    per target (which also writes the bytecode caches)."""
    for target in targets:
        _once(target)
    times: dict[str, list[float]] = {target.label: [] for target in targets}
    for run in range(runs):
        k = run % len(targets)
        for target in (*targets[k:], *targets[:k]):
            times[target.label].append(_once(target))
    return times


def median_difference(values: list[float], baseline: list[float]) -> float:
    """Median of the per-run differences ``values[i] - baseline[i]``."""
    return statistics.median(v - b for v, b in zip(values, baseline, strict=True))
