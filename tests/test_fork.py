"""After ``fork()`` a child uses none of its parent's token connections (DESIGN §7
"Processes and loops"): over a real keep-alive HTTP/1.1 server on loopback that records the
connection (client port) each token request arrives on."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from oauth_cc_auth import MemoryCache
from oauth_cc_auth.httpx import ClientCredentialsAuth as HttpxAuth
from oauth_cc_auth.httpx2 import ClientCredentialsAuth as Httpx2Auth
from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth
from oauth_cc_auth.testing import FakeClock

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()"),
    # Python 3.12+ warns of fork() in a process with threads (the server's): deliberate here.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

DEADLINE = 30.0


class KeepAliveTokenServer(ThreadingHTTPServer):
    """Issues ``tok-1``, ``tok-2``... over HTTP/1.1 keep-alive; ``ports`` lists the client
    port of each token request, in order."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.ports: list[int] = []
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: KeepAliveTokenServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.ports.append(self.client_address[1])
            token = f"tok-{len(self.server.ports)}"
        body = json.dumps({"access_token": token, "expires_in": 3600}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def token_server() -> Iterator[KeepAliveTokenServer]:
    server = KeepAliveTokenServer()
    # shutdown() waits for serve_forever to see it, which it looks for every poll_interval.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(DEADLINE)


def _in_child(work: Any) -> tuple[int, str]:
    """Run *work* in a forked child; its exit status and what it returned (a string)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.close(read)
            os.write(write, str(work()).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    waited: list[int] = []
    waiter = threading.Thread(target=lambda: waited.append(os.waitpid(pid, 0)[1]), daemon=True)
    waiter.start()
    waiter.join(DEADLINE)
    if waiter.is_alive():
        os.kill(pid, signal.SIGKILL)
        waiter.join(DEADLINE)
        pytest.fail("the child did not finish")
    with os.fdopen(read, "rb") as pipe:
        output = pipe.read().decode()
    return os.waitstatus_to_exitcode(waited[0]), output


@pytest.mark.parametrize("auth_class", [RequestsAuth, HttpxAuth, Httpx2Auth],
                         ids=["requests", "httpx", "httpx2"])
def test_a_forked_child_uses_a_connection_of_its_own(
    token_server: KeepAliveTokenServer, auth_class: Any
) -> None:
    clock = FakeClock()
    url = f"http://127.0.0.1:{token_server.server_port}/token"
    auth = auth_class("id", "s", token_url=url, cache=MemoryCache(), clock=clock)
    try:
        assert auth.get_token().access_token == "tok-1"  # its connection is kept alive
        clock.advance(7200)  # expired, in the parent and in the child: both fetch

        status, child_token = _in_child(lambda: auth.get_token().access_token)

        assert status == 0
        assert child_token == "tok-2"  # the child read its own answer
        assert auth.get_token().access_token == "tok-3"  # the parent's next request works
        first, child, parent = token_server.ports
        assert child != first  # the child opened a connection of its own...
        assert parent == first  # ...and left the parent's alone, still alive
    finally:
        auth.close()


def test_a_session_given_by_the_user_is_kept_in_the_child(
    token_server: KeepAliveTokenServer,
) -> None:
    url = f"http://127.0.0.1:{token_server.server_port}/token"
    with requests.Session() as session:
        auth = RequestsAuth("id", "s", token_url=url, cache=MemoryCache(), session=session)
        status, kept = _in_child(lambda: auth._token_session() is session)
        assert (status, kept) == (0, "True")
