"""Soak: threads and asyncio tasks call the emulator's API for a minute while the emulator
revokes every token every 0.7 s and tokens live 3 s (so refreshes race revocations). Every
API request must succeed: a 401 is recovered by one retry with a token requested after it.

    python benchmarks/soak.py                      # 60 s, 48 threads + 150 tasks
    python benchmarks/soak.py --seconds 20 --threads 16 --tasks 50

Prints the API requests, their failures (anything but a 200 after the library's one retry,
or an exception), token requests, revocations; exits 1 if any API request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
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


class Tally:
    """What every caller saw, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = 0
        self.failures: collections.Counter[str] = collections.Counter()

    def saw(self, outcome: str | None) -> None:
        with self.lock:
            self.done += 1
            if outcome is not None:
                self.failures[outcome] += 1


def _outcome(status: int) -> str | None:
    return None if status == 200 else f"HTTP {status}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=48, help="sync callers (half requests, "
                        "half httpx)")
    parser.add_argument("--tasks", type=int, default=150, help="asyncio tasks (httpx)")
    parser.add_argument("--revoke-every", type=float, default=0.7)
    parser.add_argument("--lifetime", type=float, default=3.0)
    args = parser.parse_args()

    tally = Tally()
    with Emulator() as emulator:
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
                call = lambda: session.get(url, auth=requests_auth, timeout=30)  # noqa: E731
            else:
                http = httpx.Client(timeout=30)
                call = lambda: http.get(url, auth=httpx_auth)  # noqa: E731
            while not stop.is_set():
                try:
                    tally.saw(_outcome(call().status_code))
                except Exception as exc:
                    tally.saw(type(exc).__name__)

        async def tasks() -> None:
            async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(
                    max_connections=args.tasks)) as http:

                async def caller() -> None:
                    while not stop.is_set():
                        try:
                            response = await http.get(url, auth=httpx_auth)
                            tally.saw(_outcome(response.status_code))
                        except Exception as exc:
                            tally.saw(type(exc).__name__)

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
        requests_auth.close()
        httpx_auth.close()

    failed = sum(tally.failures.values())
    print(f"{elapsed:.0f} s, {args.threads} threads + {args.tasks} tasks: "
          f"{tally.done} API requests, {failed} failed {dict(tally.failures) or ''}; "
          f"{token_requests} token requests for {revocations} revocations "
          f"(every {args.revoke_every} s, tokens living {args.lifetime} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
