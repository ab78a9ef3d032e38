"""Many event loops, one after another, with auth objects on a Redis cache (run by
tests/test_caches.py under ``-X dev -W error::ResourceWarning``): whatever a loop leaves
unclosed shows on stderr. Prints what it did as JSON."""

from __future__ import annotations

import asyncio
import json
import sys

import httpx

from oauth_cc_auth._slots import default_cache
from oauth_cc_auth.httpx import ClientCredentialsAuth

TOKEN_URL = "https://idp.example/token"


def main() -> None:
    redis_url, loops = sys.argv[1], int(sys.argv[2])
    issued: list[str] = []

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        issued.append(f"t{len(issued)}")
        return httpx.Response(200, json={"access_token": issued[-1], "expires_in": 3600,
                                         "token_type": "bearer"})

    def api(request: httpx.Request) -> httpx.Response:
        ok = request.headers.get("authorization", "").removeprefix("Bearer ") in issued
        return httpx.Response(200 if ok else 401)

    # Token requests go through a client with no connections: only the cache's are tested.
    token_client = httpx.AsyncClient(transport=httpx.MockTransport(token_endpoint))
    now = [0.0]
    # One object used from every loop; its token has expired at the start of each.
    shared = ClientCredentialsAuth("everywhere", "secret", token_url=TOKEN_URL,
                                   cache=redis_url, async_client=token_client,
                                   clock=lambda: now[0])

    async def one(i: int) -> list[int]:
        now[0] += 7200
        default_cache.clear()  # a new object per loop, as a new process would be
        # Loops 50 and later find the token a loop before them stored in Redis.
        fresh = ClientCredentialsAuth(f"client-{i % 50}", "secret", token_url=TOKEN_URL,
                                      cache=redis_url, async_client=token_client)
        async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as http:
            return [(await http.get("https://api.example/", auth=auth)).status_code
                    for auth in (shared, fresh)]

    statuses = [status for i in range(loops) for status in asyncio.run(one(i))]
    asyncio.run(token_client.aclose())
    print(json.dumps({"statuses": statuses, "token_requests": len(issued)}))


if __name__ == "__main__":
    main()
