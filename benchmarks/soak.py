"""Soak: threads and asyncio tasks call the emulator's API for a minute while the emulator
revokes every token every 0.7 s and tokens live 3 s (so refreshes race revocations). Every
API request must succeed: a 401 is recovered by one retry with a token requested after it.

    python benchmarks/soak.py                      # 60 s, 16 threads + 60 tasks
    python benchmarks/soak.py --seconds 20 --threads 48 --tasks 150

Prints the API requests, their failures (anything but a 200 after the library's one retry,
or an exception), their latency, token requests, revocations, and, from the emulator's notes,
the retries that broke the 401 rule (their token issued before the first 401 answered to
the token they replace) and those that met a later revocation (legitimate when the latency nears the
revocation interval); exits 1 if any API request failed or any retry broke the rule.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import sys
import threading
import time
from typing import Any

import httpx
import requests

from oauth_cc_auth import MemoryCache
from oauth_cc_auth.httpx import ClientCredentialsAuth as HttpxAuth
from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth
from oauth_cc_auth.testing import Emulator

PROVIDER = "rfc6749"


class ObservedEmulator(Emulator):
    """The emulator, noting when each token was issued and each API call's answers (by its
    ``X-Call`` header, the same on a call's retry): what the 401 rule is checked against."""

    def __init__(self) -> None:
        super().__init__()
        self.notes_lock = threading.Lock()
        self.issued: dict[str, float] = {}
        self.calls: dict[str, list[tuple[float, str, str]]] = collections.defaultdict(list)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        status: list[str] = []

        def recording(line: str, headers: Any, *rest: Any) -> Any:
            status.append(line)
            return start_response(line, headers, *rest)

        body = super().__call__(environ, recording)
        now = time.monotonic()
        call = environ.get("HTTP_X_CALL")
        with self.notes_lock:
            if environ.get("PATH_INFO", "").endswith("/token") and status[0].startswith("200"):
                self.issued[json.loads(b"".join(body))["access_token"]] = now
            elif call is not None:
                token = environ.get("HTTP_AUTHORIZATION", "")[len("Bearer "):]
                self.calls[call].append((now, token, status[0][:3]))
        return body

    def violations(self) -> tuple[int, int]:
        """(retries whose token was issued before the first 401 answered to the token they
        retried — the library's rule —, retries that met a later revocation)."""
        early = late = 0
        with self.notes_lock:
            first_401: dict[str, float] = {}
            for answers in self.calls.values():
                for at, token, status in answers:
                    if status == "401" and at < first_401.get(token, float("inf")):
                        first_401[token] = at
            for answers in self.calls.values():
                if len(answers) < 2:
                    continue
                (_, refused, _), (_, retry_token, retry_status) = answers[0], answers[1]
                issued = self.issued.get(retry_token)
                if issued is not None and issued < first_401[refused]:
                    early += 1
                elif retry_status == "401":
                    late += 1
        return early, late


class Tally:
    """What every caller saw, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = 0
        self.failures: collections.Counter[str] = collections.Counter()
        self.latencies: list[float] = []

    def saw(self, outcome: str | None, seconds: float) -> None:
        with self.lock:
            self.done += 1
            self.latencies.append(seconds)
            if outcome is not None:
                self.failures[outcome] += 1


def _outcome(status: int) -> str | None:
    return None if status == 200 else f"HTTP {status}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=16, help="sync callers (half requests, "
                        "half httpx)")
    parser.add_argument("--tasks", type=int, default=60, help="asyncio tasks (httpx)")
    parser.add_argument("--revoke-every", type=float, default=0.7)
    parser.add_argument("--lifetime", type=float, default=3.0)
    args = parser.parse_args()

    tally = Tally()
    calls = itertools.count()
    with ObservedEmulator() as emulator:
        emulator.set_lifetime(PROVIDER, args.lifetime)
        client = emulator.client(PROVIDER)
        url = emulator.resource_url(PROVIDER)
        cache = MemoryCache()  # one token for every caller of the process, as by default

        def options() -> dict[str, Any]:
            return {"token_url": emulator.token_url(PROVIDER), "cache": cache,
                    **client.options()}

        requests_auth = RequestsAuth(client.client_id, client.client_secret, **options())
        httpx_auth = HttpxAuth(client.client_id, client.client_secret, **options())
        stop = threading.Event()
        revocations = 0

        def revoker() -> None:
            nonlocal revocations
            while not stop.wait(args.revoke_every):
                emulator.revoke_all()
                revocations += 1

        def sync_caller(n: int) -> None:
            if n % 2:
                session = requests.Session()
                call = lambda: session.get(  # noqa: E731
                    url, auth=requests_auth, timeout=30, headers={"X-Call": str(next(calls))}
                )
            else:
                http = httpx.Client(timeout=30)
                call = lambda: http.get(  # noqa: E731
                    url, auth=httpx_auth, headers={"X-Call": str(next(calls))}
                )
            while not stop.is_set():
                started = time.monotonic()
                try:
                    outcome = _outcome(call().status_code)
                except Exception as exc:
                    outcome = type(exc).__name__
                tally.saw(outcome, time.monotonic() - started)

        async def tasks() -> None:
            async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(
                    max_connections=args.tasks)) as http:

                async def caller() -> None:
                    while not stop.is_set():
                        started = time.monotonic()
                        try:
                            response = await http.get(
                                url, auth=httpx_auth, headers={"X-Call": str(next(calls))}
                            )
                            outcome = _outcome(response.status_code)
                        except Exception as exc:
                            outcome = type(exc).__name__
                        tally.saw(outcome, time.monotonic() - started)

                await asyncio.gather(*(caller() for _ in range(args.tasks)))
            await httpx_auth.aclose()

        workers = [threading.Thread(target=sync_caller, args=(n,), daemon=True)
                   for n in range(args.threads)]
        workers.append(threading.Thread(target=lambda: asyncio.run(tasks()), daemon=True))
        workers.append(threading.Thread(target=revoker, daemon=True))
        start = time.monotonic()
        for worker in workers:
            worker.start()
        stop.wait(args.seconds)
        stop.set()
        for worker in workers:
            worker.join(60)
        elapsed = time.monotonic() - start
        token_requests = emulator.token_requests[PROVIDER]
        early, late = emulator.violations()
        requests_auth.close()
        httpx_auth.close()

    failed = sum(tally.failures.values())
    latencies = sorted(tally.latencies) or [0.0]
    median, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    print(f"{elapsed:.0f} s, {args.threads} threads + {args.tasks} tasks: "
          f"{tally.done} API requests, {failed} failed {dict(tally.failures) or ''}; "
          f"latency median {median * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms; "
          f"{token_requests} token requests for {revocations} revocations "
          f"(every {args.revoke_every} s, tokens living {args.lifetime} s); "
          f"retries with a token issued before their 401: {early}; retries that met a later "
          f"revocation: {late}")
    return 1 if failed or early else 0


if __name__ == "__main__":
    sys.exit(main())
