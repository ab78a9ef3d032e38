"""The emulator answering in process (:meth:`Emulator.handle`, :meth:`Emulator.ahandle`), as
the harness's mock transports use it, and how tests script it: answers of any kind, a gate,
the record of every request, predictable tokens, one guarded resource for every API URL."""

from __future__ import annotations

import json
import secrets
import threading
import time
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import anyio
import anyio.to_thread
import pytest
import requests
from joserfc import jwt
from joserfc.jwk import OctKey

from oauth_cc_auth.testing import Answered, Emulator, NoAnswer, Received, Reply, _emulator

FORM = "application/x-www-form-urlencoded"
#: The rfc6749 token endpoint, on whatever host the URL names: in process the emulator routes
#: by path only.
TOKEN_URL = "https://auth.example/oauth/token"
RESOURCE_URL = "https://api.example/resource"
CLIENT = "generic-client"
SECRET = "generic-secret-0123456789"
CREDENTIALS = {"grant_type": "client_credentials", "client_id": CLIENT, "client_secret": SECRET}
TOKEN_ANSWER_HEADERS = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]


@pytest.fixture
def emu() -> Emulator:
    return Emulator(token_prefix="tok-")


def ask_token(emu: Emulator, fields: Any = None, url: str = TOKEN_URL) -> Answered:
    body = urlencode(CREDENTIALS if fields is None else fields).encode()
    return emu.handle("POST", url, {"Content-Type": FORM}, body)


def use(emu: Emulator, token: str | None, url: str = RESOURCE_URL) -> Answered:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return emu.handle("GET", url, headers)


def token_answer(token: str) -> Answered:
    body = json.dumps({"access_token": token, "expires_in": 3600, "token_type": "bearer"})
    return Answered(200, [*TOKEN_ANSWER_HEADERS, ("Content-Length", str(len(body)))],
                    body.encode())


def json_answer(status: int, document: Any, *headers: tuple[str, str]) -> Answered:
    body = json.dumps(document).encode()
    return Answered(status, [("Content-Type", "application/json"), *headers,
                             ("Content-Length", str(len(body)))], body)


class TestHandle:
    """One request in, one answer out: the WSGI application without a server."""

    def test_issues_predictable_tokens_and_guards_its_resource(self, emu: Emulator) -> None:
        assert ask_token(emu) == token_answer("tok-1")
        assert ask_token(emu) == token_answer("tok-2")
        granted = {"provider": "rfc6749", "client_id": CLIENT, "ok": True}
        assert use(emu, "tok-1") == json_answer(200, granted)
        assert use(emu, "tok-2") == json_answer(200, granted)
        assert use(emu, "tok-3") == json_answer(
            401, {"error": "invalid_token"}, ("WWW-Authenticate", 'Bearer error="invalid_token"')
        )
        assert use(emu, None) == json_answer(401, {"error": "invalid_token"},
                                             ("WWW-Authenticate", "Bearer"))
        assert (emu.token_requests["rfc6749"], emu.resource_requests["rfc6749"]) == (2, 4)

    def test_tokens_are_random_without_a_prefix(self) -> None:
        emu = Emulator()
        tokens = [json.loads(ask_token(emu).body)["access_token"] for _ in range(2)]
        assert tokens[0] != tokens[1]
        assert [len(token) for token in tokens] == [43, 43]  # token_urlsafe(32)
        assert not any(token.startswith("tok-") for token in tokens)

    def test_checks_as_over_loopback(self, emu: Emulator) -> None:
        assert ask_token(emu, {**CREDENTIALS, "client_secret": "wrong"}) == json_answer(
            401, {"error": "invalid_client", "error_description": "Client authentication failed."}
        )
        assert emu.handle("GET", TOKEN_URL, {}) == json_answer(
            405, {"error": "invalid_request", "error_description": "use POST"}, ("Allow", "POST")
        )
        # RFC 6749 §3.2 refuses a repeated parameter; RFC 8707 §2 lets resource be repeated.
        repeated = [*CREDENTIALS.items(), ("scope", "a"), ("scope", "b")]
        assert ask_token(emu, repeated) == json_answer(
            400, {"error": "invalid_request", "error_description": "repeated parameter: scope"}
        )
        resources = [*CREDENTIALS.items(), ("resource", "https://a.example"),
                     ("resource", "https://b.example")]
        assert ask_token(emu, resources) == token_answer("tok-1")

    def test_header_pairs_and_repeated_headers(self, emu: Emulator) -> None:
        body = urlencode(CREDENTIALS).encode()
        answered = emu.handle("POST", TOKEN_URL, [("content-type", FORM), ("X-Trace", "a"),
                                                  ("X-Trace", "b")], body)
        assert answered == token_answer("tok-1")
        [received] = emu.received
        assert received.headers == {"content-type": FORM, "x-trace": "a, b"}

    @pytest.mark.parametrize("aud", [TOKEN_URL, "https://auth.example"])
    def test_an_assertion_may_name_the_url_addressed_or_its_origin(
        self, emu: Emulator, aud: str
    ) -> None:
        assert ask_token(emu, assertion_form(aud)) == token_answer("tok-1")

    def test_an_assertion_for_another_server_is_refused(self, emu: Emulator) -> None:
        assert ask_token(emu, assertion_form("https://other.example/oauth/token")) == json_answer(
            401, {"error": "invalid_client", "error_description":
                  "client assertion aud names neither this token endpoint nor the issuer"}
        )


def assertion_form(aud: str) -> dict[str, str]:
    """The form of a client_secret_jwt token request (RFC 7523 §2.2) for the default client."""
    now = int(time.time())
    claims = {"iss": CLIENT, "sub": CLIENT, "aud": aud, "iat": now, "exp": now + 60,
              "jti": secrets.token_urlsafe(16)}
    assertion = jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(SECRET))
    return {"grant_type": "client_credentials", "client_id": CLIENT,
            "client_assertion_type": _emulator.ASSERTION_TYPE, "client_assertion": assertion}


class TestRouting:
    """Token paths and each provider's resource path; other paths are not found, or with
    ``guard_every_path`` the rfc6749 resource."""

    def test_unknown_paths_are_not_found(self, emu: Emulator) -> None:
        ask_token(emu)
        assert use(emu, "tok-1", "https://api.example/things") == json_answer(
            404, {"error": "not_found"}
        )
        [_, other] = emu.received
        assert (other.endpoint, other.url) == ("other", "https://api.example/things")

    def test_guard_every_path(self) -> None:
        emu = Emulator(token_prefix="tok-", guard_every_path=True)
        ask_token(emu)
        granted = json_answer(200, {"provider": "rfc6749", "client_id": CLIENT, "ok": True})
        assert use(emu, "tok-1", "https://api.example/things?page=2") == granted
        assert use(emu, "tok-1", "http://elsewhere.example/") == granted
        assert use(emu, None, "https://api.example/things").status == 401
        # The other providers' paths stay theirs: an rfc6749 token is no good there.
        assert use(emu, "tok-1", "https://api.example/servicing/loans").status == 401
        assert [r.endpoint for r in emu.received] == ["token", *["resource"] * 4]
        assert emu.resource_requests == {"rfc6749": 3, "fcc_finance": 1}

    def test_added_token_paths(self, emu: Emulator) -> None:
        realm = "https://sso.example/realms/demo/protocol/openid-connect/token"
        assert ask_token(emu, url=realm).status == 404  # not a token endpoint yet
        emu.add_token_path("/realms/demo/protocol/openid-connect/token")
        emu.add_token_path("/oauth2/token")  # before figure's own path
        assert ask_token(emu, url=realm) == token_answer("tok-1")
        assert ask_token(emu, url="https://auth.example/oauth2/token") == token_answer("tok-2")
        granted = json_answer(200, {"provider": "rfc6749", "client_id": CLIENT, "ok": True})
        assert use(emu, "tok-1") == use(emu, "tok-2") == granted
        assert emu.token_requests == {"rfc6749": 2}
        assert [r.endpoint for r in emu.received] == ["other", "token", "token", "resource",
                                                      "resource"]
        with pytest.raises(ValueError, match="starts with '/'"):
            emu.add_token_path("oauth/v2/token")


class TestReceived:
    """Every request is recorded as it came, answered or not."""

    def test_what_is_recorded(self, emu: Emulator) -> None:
        ask_token(emu)
        use(emu, "tok-1", RESOURCE_URL + "?q=1")
        emu.handle("DELETE", "https://api.example/nowhere", {"X-Custom": "v"}, b"gone")
        token, resource, other = emu.received
        assert token == Received("POST", TOKEN_URL, {"content-type": FORM},
                                 urlencode(CREDENTIALS).encode(), "token")
        assert resource == Received("GET", RESOURCE_URL + "?q=1",
                                    {"authorization": "Bearer tok-1"}, b"", "resource")
        assert other == Received("DELETE", "https://api.example/nowhere", {"x-custom": "v"},
                                 b"gone", "other")
        assert token.peer is None  # in process: no connection
        assert emu.received_at("token") == [token]
        assert emu.received_at("resource") == [resource]
        assert emu.received_at("other") == [other]

    def test_a_copy_and_reset(self, emu: Emulator) -> None:
        ask_token(emu)
        copy = emu.received
        copy.clear()
        assert len(emu.received) == 1
        emu.reset_counters()
        assert emu.received == []
        assert emu.token_requests == {}


class TestAnswerNext:
    """Scripted answers, consumed in order before the emulator serves as usual."""

    def test_token_answers_of_any_kind(self, emu: Emulator) -> None:
        emu.answer_next(
            Reply(503, headers={"Retry-After": "7"}),
            Reply(400, json={"error": "invalid_scope"}),
            Reply(200, body=b"<html>hi</html>", headers={"Content-Type": "text/html"}),
            Reply(json={"access_token": "scripted", "expires_in": "120"}),
        )
        wrong = {**CREDENTIALS, "client_secret": "wrong"}  # a script answers before any check
        assert ask_token(emu, wrong) == Answered(503, [("Retry-After", "7"),
                                                       ("Content-Length", "0")], b"")
        assert ask_token(emu) == json_answer(400, {"error": "invalid_scope"})
        assert ask_token(emu) == Answered(
            200, [("Content-Type", "text/html"), ("Content-Length", "15")], b"<html>hi</html>"
        )
        assert ask_token(emu) == json_answer(
            200, {"access_token": "scripted", "expires_in": "120"}
        )
        assert ask_token(emu) == token_answer("tok-1")  # the script is spent
        assert emu.token_requests["rfc6749"] == 5
        # A scripted token is valid at the resources, until revoked.
        assert use(emu, "scripted").status == 200
        emu.revoke_all()
        assert use(emu, "scripted").status == 401

    def test_revoking_one_providers_tokens(self, emu: Emulator) -> None:
        assert ask_token(emu) == token_answer("tok-1")
        emu.revoke_all("fcc_finance")  # another provider's: tok-1 stays valid
        assert use(emu, "tok-1").status == 200
        emu.revoke_all("rfc6749")
        assert use(emu, "tok-1").status == 401

    def test_a_scripted_token_in_a_data_envelope_is_valid_too(self, emu: Emulator) -> None:
        emu.answer_next(Reply(json={"success": True, "data": {"access_token": "inside"}}))
        ask_token(emu, url="https://api.example/api/oauth/token")  # fincalc's
        assert use(emu, "inside", "https://api.example/api/calculations").status == 200

    @pytest.mark.parametrize("kind", ["connect", "timeout", "drop"])
    def test_no_answer(self, emu: Emulator, kind: Any) -> None:
        emu.answer_next(Reply(fail=kind))
        with pytest.raises(NoAnswer) as info:
            ask_token(emu)
        assert info.value.kind == kind
        assert str(info.value) == f"the emulator gave no answer ({kind})"
        assert len(emu.received_at("token")) == 1  # recorded all the same
        assert ask_token(emu) == token_answer("tok-1")

    def test_resource_answers(self, emu: Emulator) -> None:
        ask_token(emu)
        emu.answer_next(Reply(302, headers={"Location": "https://elsewhere.example/"}),
                        Reply(fail="drop"), endpoint="resource")
        assert use(emu, "tok-1") == Answered(
            302, [("Location", "https://elsewhere.example/"), ("Content-Length", "0")], b""
        )
        with pytest.raises(NoAnswer, match=r"\(drop\)"):
            use(emu, "tok-1")
        assert use(emu, "tok-1").status == 200
        assert ask_token(emu) == token_answer("tok-2")  # token requests were not scripted

    def test_only_three_endpoints(self, emu: Emulator) -> None:
        with pytest.raises(ValueError, match="endpoint must be 'token', 'resource' or 'meta"):
            emu.answer_next(Reply(), endpoint="other")

    def test_faults_come_after_the_script(self, emu: Emulator) -> None:
        emu.fail_next(1, 429, retry_after="3")
        emu.answer_next(Reply(500))
        assert ask_token(emu).status == 500
        assert ask_token(emu) == json_answer(429, {"error": "temporarily_unavailable"},
                                             ("Retry-After", "3"))
        emu.drop_next(1)
        with pytest.raises(NoAnswer, match=r"\(drop\)"):
            ask_token(emu)
        assert ask_token(emu) == token_answer("tok-1")


class TestGate:
    """A gate holds token requests until the test opens it; nothing is guessed with sleeps."""

    def test_holds_until_opened(self, emu: Emulator) -> None:
        gate = emu.gate()
        answers: list[Answered] = []
        senders = [threading.Thread(target=lambda: answers.append(ask_token(emu)))
                   for _ in range(3)]
        for sender in senders:
            sender.start()
        assert gate.wait_for(3)
        assert (gate.waiting, gate.arrived, answers) == (3, 3, [])
        # Resource requests are not held.
        assert use(emu, None).status == 401
        gate.open()
        for sender in senders:
            sender.join(10)
        assert sorted(answers, key=lambda a: a.body) == [token_answer(f"tok-{n}")
                                                          for n in (1, 2, 3)]
        assert gate.waiting == 0
        assert ask_token(emu) == token_answer("tok-4")  # an open gate lets everyone through
        assert gate.arrived == 4

    def test_wait_for_times_out(self, emu: Emulator) -> None:
        gate = emu.gate()
        assert gate.wait_for(1, timeout=0.01) is False
        assert (gate.waiting, gate.arrived) == (0, 0)

    def test_a_request_held_past_the_limit_is_answered_503(self, emu: Emulator) -> None:
        gate = emu.gate(limit=0.05)
        assert ask_token(emu) == json_answer(
            503, {"error": "temporarily_unavailable",
                  "error_description": "held at a gate that was never opened"}
        )
        assert (gate.waiting, gate.arrived) == (0, 1)

    def test_a_new_gate_replaces_the_last(self, emu: Emulator) -> None:
        first = emu.gate()
        first.open()
        second = emu.gate(limit=0.05)
        assert ask_token(emu).status == 503
        assert (first.arrived, second.arrived) == (0, 1)


class TestAhandle:
    """:meth:`Emulator.ahandle` answers in a worker thread: a held request never blocks the
    event loop, under asyncio or trio."""

    @pytest.mark.parametrize("backend", ["asyncio", "trio"])
    def test_a_held_request_leaves_the_loop_free(self, emu: Emulator, backend: str) -> None:
        gate = emu.gate()
        body = urlencode(CREDENTIALS).encode()

        async def main() -> list[Answered]:
            answers: list[Answered] = []

            async def send() -> None:
                answers.append(await emu.ahandle("POST", TOKEN_URL, {"Content-Type": FORM},
                                                 body))

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(send)
                tasks.start_soon(send)
                # The loop runs on while both wait at the gate.
                assert await anyio.to_thread.run_sync(gate.wait_for, 2)
                assert answers == []
                gate.open()
            return answers

        answers = anyio.run(main, backend=backend)
        assert sorted(answers, key=lambda a: a.body) == [token_answer("tok-1"),
                                                          token_answer("tok-2")]

    def test_no_answer_and_header_pairs(self, emu: Emulator) -> None:
        emu.answer_next(Reply(fail="timeout"))

        async def main() -> Answered:
            with pytest.raises(NoAnswer, match=r"\(timeout\)"):
                await emu.ahandle("GET", TOKEN_URL, {})
            return await emu.ahandle("POST", TOKEN_URL, [("Content-Type", FORM)],
                                     urlencode(CREDENTIALS).encode())

        assert anyio.run(main) == token_answer("tok-1")


def test_latency_delays_token_requests_only(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    # The emulator's own name for the time module: nothing else's sleep is recorded.
    monkeypatch.setattr(_emulator, "time", SimpleNamespace(
        sleep=slept.append, time=time.time, monotonic=time.monotonic))
    emu.latency = 0.25
    assert ask_token(emu) == token_answer("tok-1")
    assert slept == [0.25]
    assert use(emu, "tok-1").status == 200
    assert slept == [0.25]
    emu.latency = 0.0
    ask_token(emu)
    assert slept == [0.25]


class TestPeer:
    """:attr:`Received.peer`: ``None`` in process; over loopback, the connection's client
    address, one connection per request unless ``keep_alive``."""

    @pytest.mark.parametrize("keep_alive", [False, True])
    def test_connections(self, keep_alive: bool) -> None:
        emu = Emulator(token_prefix="tok-", keep_alive=keep_alive).start()
        url = emu.token_url("rfc6749")
        with requests.Session() as session:
            try:
                for _ in range(2):
                    response = session.post(url, data=CREDENTIALS, timeout=10)
                    assert response.status_code == 200
                    assert response.raw.version == (11 if keep_alive else 10)
            finally:
                emu.stop()
            first, second = (r.peer for r in emu.received_at("token"))
            assert first is not None
            assert second is not None
            assert first[0] == second[0] == "127.0.0.1"
            assert (first[1] == second[1]) is keep_alive
            # A stopped emulator answers nothing, on a kept connection or a new one.
            with pytest.raises(requests.ConnectionError):
                session.post(url, data=CREDENTIALS, timeout=10)


def test_received_keeps_only_the_most_recent_requests() -> None:
    class Small(Emulator):
        max_received = 2

    emu = Small(guard_every_path=True)
    for n in range(3):
        emu.handle("GET", f"https://api.example/{n}", {})
    assert [r.url for r in emu.received] == ["https://api.example/1", "https://api.example/2"]
    assert emu.resource_requests["rfc6749"] == 3  # the counters count them all
