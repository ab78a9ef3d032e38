"""Behaviour of every adapter flavour (requests; httpx and httpx2, sync and async) as a user
sees it."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import requests

import oauth_cc_auth
from oauth_cc_auth.testing import EmulatedClient, Reply
from tests.conftest import (
    API_URL,
    CLIENT_ID,
    SECRET,
    SYNC,
    TOKEN_URL,
    Harness,
    RequestsHarness,
    build_auth,
)

FORM = "application/x-www-form-urlencoded"


def ok(response: Any) -> None:
    assert response.status_code == 200, response.status_code


class TestTokenRequest:
    """The token request is exactly what RFC 6749 §4.4.2 asks for, and sent once."""

    def test_form_body_and_headers(self, harness: Harness) -> None:
        auth = harness.auth(scope=["read", "write"])
        ok(harness.get(auth))
        [token_request] = harness.server.received_at("token")
        assert token_request.method == "POST"
        assert token_request.body == (
            b"grant_type=client_credentials&scope=read+write&client_id=client-1"
            b"&client_secret=s3cr3t-VALUE%2B%2F%3D"
        )
        assert token_request.headers["content-type"] == FORM
        assert token_request.headers["accept"] == "application/json"
        assert "authorization" not in token_request.headers
        [api_request] = harness.server.received_at("resource")
        assert api_request.headers["authorization"] == "Bearer tok-1"

    def test_token_reused_across_requests(self, harness: Harness) -> None:
        auth = harness.auth()
        for _ in range(5):
            ok(harness.get(auth))
        assert len(harness.server.received_at("token")) == 1
        assert len(harness.server.received_at("resource")) == 5

    def test_client_secret_basic_is_opt_in(self, harness: Harness) -> None:
        auth = harness.auth(auth_method="client_secret_basic")
        ok(harness.get(auth))
        [token_request] = harness.server.received_at("token")
        assert token_request.body == b"grant_type=client_credentials"
        # RFC 6749 §2.3.1: id and secret form-encoded, then base64 ("+/=" of the secret
        # become %2B%2F%3D; a server decoding "+" as a space still reads the secret right).
        assert SECRET == "s3cr3t-VALUE+/="
        expected = base64.b64encode(f"{CLIENT_ID}:s3cr3t-VALUE%2B%2F%3D".encode()).decode()
        assert token_request.headers["authorization"] == f"Basic {expected}"

    def test_extra_fields_in_every_token_request(self, harness: Harness) -> None:
        auth = harness.auth(extra={"audience": "https://api.example", "resource": ["a", "b"]})
        ok(harness.get(auth))
        harness.clock.advance(3600)
        ok(harness.get(auth))
        first, refresh = harness.server.received_at("token")
        assert first.body == refresh.body
        assert b"&audience=https%3A%2F%2Fapi.example&resource=a&resource=b&" in first.body

    def test_token_exchange_not_in_history_or_user_hooks(self, harness: Harness) -> None:
        seen: list[str] = []
        auth = harness.auth()
        if isinstance(harness, RequestsHarness):
            with requests.Session() as session:
                session.auth = auth
                session.hooks["response"].append(lambda r, **kw: seen.append(r.url))
                response = session.get(API_URL)
        elif not harness.is_async:
            hooks = {"request": [lambda r: seen.append(str(r.url))]}
            with harness.client(auth, event_hooks=hooks) as client:
                response = client.get(API_URL)
        else:
            async def go() -> Any:
                async def hook(r: Any) -> None:
                    seen.append(str(r.url))

                async with harness.async_client(auth, event_hooks={"request": [hook]}) as c:
                    return await c.get(API_URL)

            import asyncio

            response = asyncio.run(go())
        ok(response)
        assert response.history == []
        assert seen == [API_URL]
        assert len(harness.server.received_at("token")) == 1

    def test_two_auth_objects_with_same_credentials_share_the_token(
        self, harness: Harness
    ) -> None:
        ok(harness.get(harness.auth()))
        ok(harness.get(harness.auth()))
        # The secret is rotated: an object with the new one does not take the old one's token.
        harness.server.register_client(EmulatedClient("rfc6749", CLIENT_ID, "another-secret"))
        ok(harness.get(harness.auth(client_secret="another-secret")))
        assert len(harness.server.received_at("token")) == 2


class TestExpiry:
    """Tokens are refreshed leeway seconds before they expire, on the injected clock."""

    def test_refreshed_leeway_before_expiry(self, harness: Harness) -> None:
        auth = harness.auth(leeway=60)
        ok(harness.get(auth))
        harness.clock.advance(3539)
        ok(harness.get(auth))
        assert len(harness.server.received_at("token")) == 1
        harness.clock.advance(2)
        # Due: the request goes out with the valid token while it is refreshed ahead...
        ok(harness.get(auth))
        assert harness.server.received_at("resource")[-1].headers["authorization"] == "Bearer tok-1"
        assert len(harness.server.received_at("token")) == 2
        # ...and the next one has the new token.
        ok(harness.get(auth))
        assert harness.server.received_at("resource")[-1].headers["authorization"] == "Bearer tok-2"
        assert len(harness.server.received_at("token")) == 2

    def test_without_refresh_ahead_the_due_request_waits_for_the_new_token(
        self, harness: Harness
    ) -> None:
        auth = harness.auth(leeway=60, refresh_ahead=False)
        ok(harness.get(auth))
        harness.clock.advance(3541)
        ok(harness.get(auth))
        assert len(harness.server.received_at("token")) == 2
        assert harness.server.received_at("resource")[-1].headers["authorization"] == "Bearer tok-2"

    def test_short_lived_token_is_used_for_half_its_life(self, harness: Harness) -> None:
        harness.server.set_lifetime("rfc6749", 30)
        auth = harness.auth(leeway=60)
        for _ in range(14):
            ok(harness.get(auth))
            harness.clock.advance(1)
        assert len(harness.server.received_at("token")) == 1
        harness.clock.advance(2)
        ok(harness.get(auth))
        assert len(harness.server.received_at("token")) == 2

    def test_expires_in_as_numeric_string(self, harness: Harness) -> None:
        harness.server.answer_next(Reply(json={"access_token": "tok-a", "token_type": "bearer",
                                               "expires_in": "120"}))
        auth = harness.auth(leeway=10)
        ok(harness.get(auth))
        assert auth.token.expires_in == 120.0
        harness.clock.advance(111)
        ok(harness.get(auth))
        assert len(harness.server.received_at("token")) == 2

    def test_no_expires_in_is_valid_until_401(self, harness: Harness) -> None:
        harness.server.answer_next(Reply(json={"access_token": "tok-a", "token_type": "bearer"}))
        auth = harness.auth()
        ok(harness.get(auth))
        harness.clock.advance(10 * 86400)
        ok(harness.get(auth))
        assert len(harness.server.received_at("token")) == 1
        harness.server.revoke_all()
        ok(harness.get(auth))
        assert len(harness.server.received_at("token")) == 2

    @pytest.mark.parametrize("bad", [-5, 0, True, "soon", "", [1], None])
    def test_unusable_expires_in_is_a_token_response_error(
        self, harness: Harness, bad: Any
    ) -> None:
        payload = {"access_token": "tok-x", "token_type": "Bearer", "expires_in": bad}
        harness.server.answer_next(Reply(json=payload))
        if bad is None:  # JSON null: treated as absent
            ok(harness.get(harness.auth()))
            return
        with pytest.raises(oauth_cc_auth.TokenResponseError, match="expires_in"):
            harness.get(harness.auth())


class TestRetryAfter401:
    """A 401 on our token gets one new token and one retry, never more."""

    def test_401_once_is_recovered(self, harness: Harness) -> None:
        auth = harness.auth()
        ok(harness.get(auth))
        harness.server.revoke_all()
        response = harness.get(auth)
        ok(response)
        assert [r.status_code for r in response.history] == [401]
        assert len(harness.server.received_at("token")) == 2
        assert [r.headers["authorization"] for r in harness.server.received_at("resource")] == [
            "Bearer tok-1",
            "Bearer tok-1",
            "Bearer tok-2",
        ]

    def test_401_twice_is_returned(self, harness: Harness) -> None:
        auth = harness.auth()
        harness.server.answer_next(Reply(401), Reply(401), Reply(401), endpoint="resource")
        response = harness.get(auth)
        assert response.status_code == 401
        assert len(harness.server.received_at("resource")) == 2
        assert len(harness.server.received_at("token")) == 2

    def test_401_after_redirect_to_another_origin_gets_no_token(self, harness: Harness) -> None:
        auth = harness.auth()
        other = "https://elsewhere.example/landing"
        harness.server.answer_next(Reply(302, headers={"Location": other}), Reply(401),
                                   endpoint="resource")
        kwargs = {} if harness.name == "requests" else {"follow_redirects": True}
        response = harness.get(auth, **kwargs)
        assert response.status_code == 401
        first, second = harness.server.received_at("resource")
        assert first.headers["authorization"] == "Bearer tok-1"
        assert second.url == other
        assert "authorization" not in second.headers
        assert len(harness.server.received_at("token")) == 1

    def test_other_statuses_are_not_retried(self, harness: Harness) -> None:
        harness.server.answer_next(Reply(403), endpoint="resource")
        assert harness.get(harness.auth()).status_code == 403
        assert len(harness.server.received_at("resource")) == 1

    def test_renew_on_403_for_apis_that_answer_a_bad_token_so(self, harness: Harness) -> None:
        auth = harness.auth(renew_on=(401, 403))
        ok(harness.get(auth))
        harness.server.answer_next(Reply(403, json={"detail": "forbidden"}), endpoint="resource")
        response = harness.get(auth)
        ok(response)
        assert [r.status_code for r in response.history] == [403]
        assert [r.headers["authorization"] for r in harness.server.received_at("resource")] == [
            "Bearer tok-1", "Bearer tok-1", "Bearer tok-2",
        ]
        # A second 403 (a real permission problem) is the caller's, once renewed.
        harness.server.answer_next(Reply(403), Reply(403), endpoint="resource")
        assert harness.get(auth).status_code == 403
        assert len(harness.server.received_at("token")) == 3
        assert len(harness.server.received_at("resource")) == 5

    @pytest.mark.parametrize("harness", ["requests"], indirect=True)
    def test_the_first_answers_request_is_the_one_sent(self, harness: Harness) -> None:
        auth = harness.auth()
        ok(harness.get(auth))
        harness.server.revoke_all()
        response = harness.get(auth)
        ok(response)
        [refused] = response.history
        assert refused.request.headers["Authorization"] == "Bearer tok-1"
        assert response.request.headers["Authorization"] == "Bearer tok-2"


def test_requests_mock_history_shows_what_was_sent_and_redirects_carry_the_new_token() -> None:
    import requests_mock

    from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth

    tokens = iter(["tok-1", "tok-2"])
    with requests_mock.Mocker() as mock:
        mock.post(TOKEN_URL, json=lambda r, c: {"access_token": next(tokens), "expires_in": 60})
        mock.get(API_URL, [{"status_code": 401},
                           {"status_code": 302, "headers": {"Location": API_URL + "/moved"}}])
        mock.get(API_URL + "/moved", json={"ok": True})
        auth = build_auth(RequestsAuth)
        with requests.Session() as session:
            response = session.get(API_URL, auth=auth)
        assert response.json() == {"ok": True}
        api = [r for r in mock.request_history if r.url.startswith(API_URL)]
        assert [(r.url, r.headers["Authorization"]) for r in api] == [
            (API_URL, "Bearer tok-1"),
            (API_URL, "Bearer tok-2"),
            (API_URL + "/moved", "Bearer tok-2"),
        ]
        # requests rebuilds the history from the redirects (as with its digest auth).
        [moved] = response.history
        assert moved.status_code == 302
        assert moved.request.headers["Authorization"] == "Bearer tok-2"


def _sync_chunks() -> Iterator[bytes]:
    yield b"part-1;"
    yield b"part-2"


async def _async_chunks() -> AsyncIterator[bytes]:
    yield b"part-1;"
    yield b"part-2"


class TestBodies:
    """A 401 re-sends a body only if it can be replayed."""

    def test_bytes_body_is_re_sent(self, harness: Harness) -> None:
        auth = harness.auth()
        ok(harness.get(auth))
        harness.server.revoke_all()
        ok(harness.get(auth, body=b"payload"))
        resent = [r.body for r in harness.server.received_at("resource")[1:]]
        assert resent == [b"payload", b"payload"]

    def test_generator_body_is_not_re_sent_but_token_is_invalidated(
        self, harness: Harness
    ) -> None:
        auth = harness.auth()
        ok(harness.get(auth))
        harness.server.revoke_all()
        body = _async_chunks() if harness.is_async else _sync_chunks()
        response = harness.get(auth, body=body)
        assert response.status_code == 401
        assert [r.body for r in harness.server.received_at("resource")[1:]] == [b"part-1;part-2"]
        ok(harness.get(auth))
        assert len(harness.server.received_at("token")) == 2

    # An AsyncClient accepts no sync file body, so the async flavours have no such case.
    @pytest.mark.parametrize("harness", SYNC, indirect=True)
    def test_seekable_file_body_is_rewound_and_re_sent(self, harness: Harness) -> None:
        auth = harness.auth()
        ok(harness.get(auth))
        harness.server.revoke_all()
        upload = io.BytesIO(b"header|file content")
        upload.seek(7)  # sending starts where the file is
        ok(harness.get(auth, body=upload))
        assert [r.body for r in harness.server.received_at("resource")[1:]] == [b"file content"] * 2


class TestErrors:
    """Each failure of the token endpoint is the documented error class."""

    def test_refusal_is_token_request_error(self, harness: Harness) -> None:
        harness.server.answer_next(
            Reply(400, json={"error": "invalid_client", "error_description": "unknown client"})
        )
        with pytest.raises(oauth_cc_auth.TokenRequestError) as info:
            harness.get(harness.auth())
        err = info.value
        assert (err.status_code, err.error, err.description) == (
            400,
            "invalid_client",
            "unknown client",
        )
        assert isinstance(err, harness.library_error)
        assert len(harness.server.received_at("token")) == 1  # a refusal is not retried
        assert harness.server.received_at("resource") == []

    def test_html_401_is_token_request_error_without_error_code(self, harness: Harness) -> None:
        harness.server.answer_next(
            Reply(401, body=b"<html>Unauthorized</html>", headers={"Content-Type": "text/html"})
        )
        with pytest.raises(oauth_cc_auth.TokenRequestError) as info:
            harness.get(harness.auth())
        assert (info.value.status_code, info.value.error, info.value.description) == (
            401,
            None,
            None,
        )

    @pytest.mark.parametrize(
        "reply",
        [
            Reply(body=b"<html>hello</html>"),
            Reply(json={"token_type": "bearer"}),
            Reply(json=["tok"]),
            Reply(json={"access_token": "t", "token_type": "mac"}),
            Reply(302, headers={"Location": "https://elsewhere.example/"}),
        ],
        ids=["not-json", "no-access-token", "not-an-object", "not-bearer", "redirect"],
    )
    def test_unusable_answer_is_token_response_error(
        self, harness: Harness, reply: Reply
    ) -> None:
        harness.server.answer_next(reply)
        with pytest.raises(oauth_cc_auth.TokenResponseError):
            harness.get(harness.auth())
        assert len(harness.server.received_at("token")) == 1

    def test_503_is_retried_then_token_endpoint_error(self, harness: Harness) -> None:
        harness.server.answer_next(*[Reply(503)] * 4)
        with pytest.raises(oauth_cc_auth.TokenEndpointError, match="4 attempt") as info:
            harness.get(harness.auth(max_retries=3))
        assert info.value.status_code == 503
        assert len(harness.server.received_at("token")) == 4
        assert isinstance(info.value, harness.library_error)
        assert isinstance(info.value, harness.library_transport_error)

    def test_429_with_retry_after_then_success(self, harness: Harness) -> None:
        harness.server.answer_next(*[Reply(429, headers={"Retry-After": "0"})] * 2)
        ok(harness.get(harness.auth()))
        assert len(harness.server.received_at("token")) == 3

    @pytest.mark.parametrize("fail", ["connect", "timeout"])
    def test_transport_failures_are_retried_then_token_endpoint_error(
        self, harness: Harness, fail: str
    ) -> None:
        harness.server.answer_next(*[Reply(fail=fail)] * 3)
        with pytest.raises(oauth_cc_auth.TokenEndpointError) as info:
            harness.get(harness.auth(max_retries=2))
        assert len(harness.server.received_at("token")) == 3
        assert info.value.status_code is None
        assert ("Timeout" if fail == "timeout" else "Connect") in str(info.value)

    def test_transport_failure_then_success(self, harness: Harness) -> None:
        harness.server.answer_next(Reply(fail="connect"))
        ok(harness.get(harness.auth()))
        assert len(harness.server.received_at("token")) == 2

    def test_stale_token_is_used_while_endpoint_is_down(
        self, harness: Harness, caplog: pytest.LogCaptureFixture
    ) -> None:
        auth = harness.auth(leeway=60, max_retries=1)
        ok(harness.get(auth))
        harness.clock.advance(3550)  # due for refresh, 50 s before expiry
        harness.server.answer_next(Reply(503), Reply(503))
        with caplog.at_level(logging.WARNING, logger="oauth_cc_auth"):
            ok(harness.get(auth))
        assert harness.server.received_at("resource")[-1].headers["authorization"] == "Bearer tok-1"
        assert any("using the cached token" in r.getMessage() for r in caplog.records)
        # The endpoint is not hammered on every request while it is down...
        ok(harness.get(auth))
        assert len(harness.server.received_at("token")) == 3
        # ...and once the token has expired, the failure is the caller's.
        harness.clock.advance(60)
        harness.server.answer_next(Reply(503), Reply(503))
        with pytest.raises(oauth_cc_auth.TokenEndpointError):
            harness.get(auth)

    def test_refusal_on_refresh_is_raised_at_once(self, harness: Harness) -> None:
        auth = harness.auth(leeway=60, refresh_ahead=False)
        ok(harness.get(auth))
        harness.clock.advance(3550)
        harness.server.answer_next(Reply(401, json={"error": "invalid_client"}))
        with pytest.raises(oauth_cc_auth.TokenRequestError):
            harness.get(auth)

    def test_refusal_of_a_refresh_ahead_keeps_the_valid_token_until_it_expires(
        self, harness: Harness, caplog: pytest.LogCaptureFixture
    ) -> None:
        auth = harness.auth(leeway=60)
        ok(harness.get(auth))
        harness.clock.advance(3550)
        harness.server.answer_next(Reply(401, json={"error": "invalid_client"}))
        with caplog.at_level(logging.WARNING, logger="oauth_cc_auth"):
            ok(harness.get(auth))  # nobody waited for the refresh: nobody gets its error
        assert harness.server.received_at("resource")[-1].headers["authorization"] == "Bearer tok-1"
        assert any("invalid_client" in r.getMessage() and "using the cached token" in
                   r.getMessage() for r in caplog.records)
        ok(harness.get(auth))  # retried later (in 25 s), not on every request
        assert len(harness.server.received_at("token")) == 2
        harness.clock.advance(50)  # expired: the refusal is the caller's
        harness.server.answer_next(Reply(401, json={"error": "invalid_client"}))
        with pytest.raises(oauth_cc_auth.TokenRequestError):
            harness.get(auth)


class TestSecrecy:
    """No secret and no token in errors, reprs or logs."""

    def test_echoed_secret_and_token_are_redacted(self, harness: Harness) -> None:
        auth = harness.auth(refresh_ahead=False)
        ok(harness.get(auth))
        harness.clock.advance(3550)
        echo = f'client_secret={SECRET} "quoted" and old token tok-1'
        harness.server.answer_next(
            Reply(400, json={"error": f"bad_{SECRET}", "error_description": echo})
        )
        with pytest.raises(oauth_cc_auth.TokenRequestError) as info:
            harness.get(auth)
        err = info.value
        for text in (str(err), repr(err), err.description, err.error, *map(str, err.args)):
            assert SECRET not in text
            assert "tok-1" not in text
        assert "[REDACTED]" in str(err.description)

    def test_echoed_secret_and_token_are_redacted_in_a_refresh_ahead_failure(
        self, harness: Harness, caplog: pytest.LogCaptureFixture
    ) -> None:
        auth = harness.auth()
        ok(harness.get(auth))
        harness.clock.advance(3550)
        echo = f'client_secret={SECRET} "quoted" and old token tok-1'
        harness.server.answer_next(
            Reply(400, json={"error": f"bad_{SECRET}", "error_description": echo})
        )
        with caplog.at_level(logging.DEBUG, logger="oauth_cc_auth"):
            ok(harness.get(auth))
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert "[REDACTED]" in logged
        assert SECRET not in logged
        assert "tok-1" not in logged

    def test_2xx_echoing_secret_is_redacted(self, harness: Harness) -> None:
        harness.server.answer_next(
            Reply(json={"access_token": "tok-echo", "token_type": f"x{SECRET}"})
        )
        with pytest.raises(oauth_cc_auth.TokenResponseError) as info:
            harness.get(harness.auth())
        assert SECRET not in str(info.value)
        assert "tok-echo" not in str(info.value)

    def test_reprs_hide_secret_and_token(self, harness: Harness) -> None:
        auth = harness.auth()
        ok(harness.get(auth))
        for text in (repr(auth), str(auth), repr(auth.token), str(auth.token)):
            assert SECRET not in text
            assert "tok-1" not in text

    def test_nothing_secret_in_logs_at_debug(
        self, harness: Harness, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        auth = harness.auth(max_retries=1)
        ok(harness.get(auth))
        harness.server.revoke_all()
        harness.server.answer_next(Reply(503), Reply(fail="connect"))
        with pytest.raises(oauth_cc_auth.TokenEndpointError):
            harness.get(auth)
        messages = [r.getMessage() for r in caplog.records]
        assert any(r.name == "oauth_cc_auth" for r in caplog.records)
        for message in messages:
            assert SECRET not in message
            assert "tok-1" not in message

    def test_token_never_in_url_or_body(self, harness: Harness) -> None:
        auth = harness.auth()
        ok(harness.get(auth, body=b"data"))
        [api] = harness.server.received_at("resource")
        assert "tok-1" not in api.url
        assert b"tok-1" not in api.body
        [token_request] = harness.server.received_at("token")
        assert SECRET not in token_request.url


def test_token_request_error_is_authlibs_oauth2_error() -> None:
    from authlib.oauth2 import OAuth2Error

    err = oauth_cc_auth.TokenRequestError("refused", status_code=400, error="invalid_scope")
    assert isinstance(err, OAuth2Error)
    assert (err.error, err.status_code, str(err)) == ("invalid_scope", 400, "refused")
    # Authlib's error API, as code that handles OAuth2Error calls it.
    assert err.get_body() == [("error", "invalid_scope")]
    described = oauth_cc_auth.TokenRequestError(
        "refused", status_code=401, error="invalid_client", description="no such client"
    )
    assert described.get_body() == [("error", "invalid_client"),
                                    ("error_description", "no such client")]
    status, body, headers = described()
    assert (status, body) == (401, {"error": "invalid_client",
                                    "error_description": "no such client"})
    assert ("Content-Type", "application/json") in headers
    assert described.get_headers() == headers


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


@pytest.mark.parametrize("body", [
    {"success": False, "message": {"description": f"bad secret {SECRET}"}},
    f"<html>client_secret={SECRET}</html>",
])
def test_no_secret_anywhere_in_the_exception_chain(harness: Harness, body: Any) -> None:
    reply = Reply(json=body) if isinstance(body, dict) else Reply(body=body.encode())
    harness.server.answer_next(reply)
    provider = "fincalc" if isinstance(body, dict) else "rfc6749"
    options: dict[str, Any] = {"provider": provider}
    if provider == "fincalc":
        options.update(scope="s", extra={"email_address": "me@example.com"},
                       token_url="https://api.fincalc.co.uk/api/oauth/token")
    with pytest.raises(oauth_cc_auth.TokenResponseError) as info:
        harness.get(harness.auth(**options))
    for error in _chain(info.value):
        texts = [str(error), repr(error), *map(str, error.args), *map(str, vars(error).values())]
        assert not any(SECRET in text for text in texts), error


@pytest.mark.parametrize("harness", ["httpx-sync", "httpx2-sync"], indirect=True)
def test_httpx_token_request_ignores_the_given_clients_own_auth(harness: Harness) -> None:
    # The emulator would also refuse Basic credentials beside the secret in the body (RFC 6749
    # §2.3: one method per request).
    with harness.client(("user", "pw")) as client:
        auth = harness.auth(client=client)
        assert auth.get_token().access_token == "tok-1"
    [token_request] = harness.server.received_at("token")
    assert "authorization" not in token_request.headers
