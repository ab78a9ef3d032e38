"""After ``fork()`` a child uses none of its parent's token connections (DESIGN §7
"Processes and loops"): over the emulator on loopback, keeping HTTP/1.1 connections alive and
recording the connection (client port) each token request arrives on."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from oauth_cc_auth.httpx import ClientCredentialsAuth as HttpxAuth
from oauth_cc_auth.httpx2 import ClientCredentialsAuth as Httpx2Auth
from oauth_cc_auth.niquests import ClientCredentialsAuth as NiquestsAuth
from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth
from oauth_cc_auth.testing import Emulator, FakeClock
from tests.conftest import emulated_auth

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()"),
    # Python 3.12+ warns of fork() in a process with threads (the server's): deliberate here.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

DEADLINE = 30.0


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(token_prefix="tok-", keep_alive=True) as emu:
        yield emu


def ports(emulator: Emulator) -> list[int]:
    """The client port of each token request, in order: one per connection."""
    return [request.peer[1] for request in emulator.received_at("token") if request.peer]


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


@pytest.mark.parametrize("auth_class", [RequestsAuth, HttpxAuth, Httpx2Auth, NiquestsAuth],
                         ids=["requests", "httpx", "httpx2", "niquests"])
def test_a_forked_child_uses_a_connection_of_its_own(
    emulator: Emulator, auth_class: Any
) -> None:
    clock = FakeClock()
    auth = emulated_auth(emulator, auth_class, clock=clock)
    try:
        assert auth.get_token().access_token == "tok-1"  # its connection is kept alive
        clock.advance(7200)  # expired, in the parent and in the child: both fetch

        status, child_token = _in_child(lambda: auth.get_token().access_token)

        assert status == 0
        assert child_token == "tok-2"  # the child read its own answer
        assert auth.get_token().access_token == "tok-3"  # the parent's next request works
        first, child, parent = ports(emulator)
        assert child != first  # the child opened a connection of its own...
        assert parent == first  # ...and left the parent's alone, still alive
    finally:
        auth.close()


def test_a_session_given_by_the_user_is_kept_in_the_child(emulator: Emulator) -> None:
    with requests.Session() as session:
        auth = emulated_auth(emulator, RequestsAuth, session=session)
        status, kept = _in_child(lambda: auth._token_session() is session)
        assert (status, kept) == (0, "True")
