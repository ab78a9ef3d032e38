"""The harness that runs the documentation's examples (the root ``conftest.py`` and
``tests/docs_world.py``): what it accepts, what it refuses, and that a wrong example fails."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import httpx
import pytest
import requests

import conftest as docs
from tests import docs_world


def test_console_text_is_commands_with_their_output() -> None:
    text = "$ export A=1 \\\n    B=2\n$ oauth-cc-auth token\ntok-1\n\n$ http x  # a note\n"
    assert docs._commands(text) == [("export A=1  B=2", []), ("oauth-cc-auth token", ["tok-1", ""]),
                                    ("http x  # a note", [])]
    with pytest.raises(ValueError, match="before any"):
        docs._commands("oauth-cc-auth token\n")


@pytest.mark.parametrize(("output", "expected", "matches"), [
    ("tok-1\n", ["tok-1"], True),
    ("tok-2\n", ["tok-1"], False),
    ("abc\n", ["a...c"], True),
    ("a\nc\n", ["a...c"], False),            # within a line only
    ("a\nb\nc\n", ["a", "...", "c"], True),
    ("a\nc\n", ["a", "...", "c"], False),     # a line of ... is one line or more
    ("", ["..."], False),
    ("anything\n", [], True),                 # no expected output: not checked
    ("a\nb\n", ["a"], False),
    ("a\n\nb\n", ["a", "", "b"], True),     # blank lines are left out of both
])
def test_expected_output(output: str, expected: list[str], matches: bool) -> None:
    assert docs._matches(output, expected) is matches


def test_install_lines_are_checked_against_the_package() -> None:
    assert docs._check_install(['"oauth-cc-auth[requests,httpx]"'.strip('"')]) == ""
    assert docs._check_install(["-e", ".[test]"]) == ""
    with pytest.raises(AssertionError, match="no extra"):
        docs._check_install(["oauth-cc-auth[nonesuch]"])
    with pytest.raises(AssertionError, match="something else"):
        docs._check_install(["requests"])


def test_unknown_commands_fail() -> None:
    with tempfile.TemporaryDirectory() as directory, docs_world.running(Path(directory)):
        with pytest.raises(AssertionError, match="does not know 'curl'"):
            docs._run(["curl", "https://api.example.com/things"], None)  # type: ignore[arg-type]
        with pytest.raises(AssertionError, match="exited 2"):
            docs._run_cli(["token", "--emulated", "--provider", "acme"])


def test_the_world_serves_its_hosts_and_nothing_else() -> None:
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect
    with tempfile.TemporaryDirectory() as directory, docs_world.running(Path(directory)):
        # Any path of an API host is its provider's protected resource: 401 without a token.
        response = requests.get("https://api.example.com/things", timeout=10)
        assert response.status_code == 401
        with httpx.Client() as client:
            token = client.post("https://auth.example.com/oauth/token", data={
                "grant_type": "client_credentials", "client_id": "my-client-id",
                "client_secret": "my-client-secret"}).json()["access_token"]
            answer = client.get("https://api.example.com/things",
                                headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        with pytest.raises(socket.gaierror, match="not a host of the documentation"):
            socket.getaddrinfo("pypi.org", 443)
    # Outside a page, names resolve and sockets connect as they did.
    assert socket.getaddrinfo is real_getaddrinfo
    assert socket.socket.connect is real_connect


def test_a_wrong_example_fails_its_page(tmp_path: Path) -> None:
    page = tmp_path / "page.rst"
    page.write_text("Page\n====\n\n.. code-block:: python\n\n    x = 1\n\n"
                    ".. code-block:: console\n\n    $ oauth-cc-auth token --emulated\n"
                    "    not-the-token\n")
    document = docs._SYBIL.parse(page)
    with docs.Page() as running:
        document.namespace["__page__"] = running
        first, second = document.examples()
        first.evaluate()
        assert document.namespace["x"] == 1
        with pytest.raises(AssertionError, match="expected:\nnot-the-token"):
            second.evaluate()
