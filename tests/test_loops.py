"""Event loops come and go; the auth object's own token clients go with them (DESIGN §7
"Processes and loops"): no ResourceWarning under ``-X dev``, however many loops."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

#: Runs in a child interpreter under -X dev, ResourceWarnings as errors: a loopback token
#: endpoint and API, then LOOPS asyncio.run() loops and a few trio runs, each fetching a token
#: through httpx's and httpx2's AsyncClient.
SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, json, sys, threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import httpx, httpx2, trio
    from oauth_cc_auth import MemoryCache
    from oauth_cc_auth.httpx import ClientCredentialsAuth as HttpxAuth
    from oauth_cc_auth.httpx2 import ClientCredentialsAuth as Httpx2Auth
    from oauth_cc_auth.testing import FakeClock

    LOOPS, TRIO_RUNS = int(sys.argv[1]), int(sys.argv[2])
    token_requests = 0

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, body):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            global token_requests
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            token_requests += 1
            self.answer(json.dumps({"access_token": f"t{token_requests}",
                                    "expires_in": 60}).encode())

        def do_GET(self):
            self.answer(b'{"ok": true}')

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    clock = FakeClock()
    auths = [
        (lib, cls("id", "s", token_url=base + "/token", cache=MemoryCache(), clock=clock))
        for lib, cls in ((httpx, HttpxAuth), (httpx2, Httpx2Auth))
    ]

    async def use():
        for lib, auth in auths:
            # (verify=False: plain http here, and no CA bundle loaded per loop.)
            async with lib.AsyncClient(auth=auth, verify=False) as client:
                assert (await client.get(base + "/api")).status_code == 200

    for _ in range(LOOPS):
        clock.advance(120)  # expired: every loop makes token requests of its own
        asyncio.run(use())
    for _ in range(TRIO_RUNS):
        clock.advance(120)
        trio.run(use)
    gc.collect()
    server.shutdown()
    server.server_close()
    assert token_requests == 2 * (LOOPS + TRIO_RUNS), token_requests
    print("ok", token_requests)
    """
)


class TestEventLoops:
    """Every client the auth object opened for an event loop is closed with it."""

    @pytest.mark.parametrize(
        ("loops", "trio_runs"),
        [(3, 1), pytest.param(100, 5, marks=pytest.mark.slow)],
        ids=["3-loops", "100-loops"],
    )
    def test_event_loops_leave_no_unclosed_connection(self, loops: int, trio_runs: int) -> None:
        command = [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", SCRIPT,
                   str(loops), str(trio_runs)]
        started = time.monotonic()
        done = subprocess.run(  # noqa: S603 - our own interpreter and script
            command, capture_output=True, text=True, timeout=120, check=False
        )
        elapsed = time.monotonic() - started
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.split() == ["ok", str(2 * (loops + trio_runs))]
        assert "unclosed" not in done.stderr
        assert "ResourceWarning" not in done.stderr
        assert elapsed < 60  # 100 loops: about 5 s on an idle 2-core machine
