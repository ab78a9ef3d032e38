"""One process of a fleet (run by tests/test_caches.py): waits for a go signal, then makes
API requests from many threads or tasks through one auth object with a shared cache, and
prints what it saw as JSON."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


def main() -> None:
    spec: dict[str, Any] = json.loads(sys.argv[1])
    ready, go = Path(spec["ready"]), Path(spec["go"])
    n, url = spec["n"], spec["url"]
    options = {"cache": spec["cache"], "token_url": spec["token_url"], **spec["options"]}
    if spec["mode"] == "threads":
        import requests

        from oauth_cc_auth.requests import ClientCredentialsAuth

        auth = ClientCredentialsAuth(spec["client_id"], spec["secret"], **options)
        ready.touch()
        _wait_for(go)
        barrier = threading.Barrier(n)

        def one() -> int:
            with requests.Session() as session:
                barrier.wait()
                return session.get(url, auth=auth, timeout=60).status_code

        with ThreadPoolExecutor(n) as pool:
            statuses = list(pool.map(lambda _: one(), range(n)))
    else:
        import httpx

        from oauth_cc_auth.httpx import ClientCredentialsAuth as HttpxAuth

        auth = HttpxAuth(spec["client_id"], spec["secret"], **options)

        async def run() -> list[int]:
            ready.touch()
            while not go.exists():
                await asyncio.sleep(0.005)
            barrier = asyncio.Barrier(n)
            async with httpx.AsyncClient(auth=auth, timeout=60) as client:

                async def one() -> int:
                    await barrier.wait()
                    return (await client.get(url)).status_code

                return await asyncio.gather(*(one() for _ in range(n)))

        statuses = asyncio.run(run())
    print(json.dumps({"statuses": statuses}))


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit("no go signal")
        time.sleep(0.005)


if __name__ == "__main__":
    main()
