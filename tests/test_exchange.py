"""One token exchange, one call each: what an attempt sends, and what its answer means."""

from __future__ import annotations

import json
from typing import Any

import pytest

from oauth_cc_auth import TokenEndpointError, TokenRequestError, TokenResponseError
from oauth_cc_auth._actions import TransportFailure
from oauth_cc_auth._config import Config, build_config
from oauth_cc_auth._exchange import (
    Redactor,
    Retry,
    check_request,
    judge,
    read_token,
    refusal,
    token_request,
)
from oauth_cc_auth._messages import TokenHTTPResponse, TokenRequest
from oauth_cc_auth._token import Token

URL = "https://auth.example/token"
SECRET = "s3cr3t+/="


def config(**options: Any) -> Config:
    options.setdefault("max_retries", 2)
    options.setdefault("backoff", 1.0)
    return build_config("id", SECRET, token_url=URL, **options)


def answer(status: int = 200, body: Any = None, **headers: str) -> TokenHTTPResponse:
    if body is None:
        body = {"access_token": "tok", "token_type": "Bearer", "expires_in": 3600}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return TokenHTTPResponse(status, headers, raw)


def redactor(c: Config, *known: str) -> Redactor:
    return Redactor(c, check_request(c), lambda: known)


def verdict(outcome: TokenHTTPResponse | TransportFailure, attempt: int = 0,
            **options: Any) -> Token | Retry:
    c = config(**options)
    request, _ = token_request(c)
    return judge(c, request, outcome, attempt=attempt, sent_at=100.0, redactor=redactor(c),
                 rng=lambda: 0.5)


def test_the_request_of_an_attempt() -> None:
    request, carried = token_request(config(scope="a b"))
    assert request == TokenRequest(
        URL,
        {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"},
        b"grant_type=client_credentials&scope=a+b&client_id=id&client_secret=s3cr3t%2B%2F%3D",
    )
    assert carried == ()  # nothing beyond the configured secret


def test_an_assertion_is_carried_by_its_attempt_alone() -> None:
    c = build_config("id", token_url=URL, client_assertion=iter(["one.a.b", "two.a.b"]).__next__)
    first, second = token_request(c), token_request(c)
    assert first[1] == ("one.a.b",)
    assert second[1] == ("two.a.b",)
    assert b"client_assertion=one.a.b" in first[0].body
    assert b"client_assertion=two.a.b" in second[0].body


def test_a_2xx_is_the_token_timed_from_the_send() -> None:
    token = verdict(answer(body={"access_token": "tok", "expires_in": "120", "scope": "x"}))
    assert isinstance(token, Token)
    assert (token.access_token, token.obtained_at, token.expires_at) == ("tok", 100.0, 220.0)
    assert token.scope == "x"


@pytest.mark.parametrize(("outcome", "attempt", "delay", "failure"), [
    (answer(503), 0, 0.5, "HTTP 503"),                       # backoff 1 s × jitter 0.5
    (answer(503), 1, 1.0, "HTTP 503"),                       # doubled
    (answer(429, {}, **{"Retry-After": "7"}), 0, 7.0, "HTTP 429"),
    (TransportFailure("ConnectError: refused"), 0, 0.5, "ConnectError: refused"),
])
def test_what_is_retried_and_after_how_long(
    outcome: TokenHTTPResponse | TransportFailure, attempt: int, delay: float, failure: str
) -> None:
    assert verdict(outcome, attempt) == Retry(delay, failure)


def test_the_last_attempt_gives_up_with_the_status() -> None:
    with pytest.raises(TokenEndpointError) as info:
        verdict(answer(503), attempt=2)
    assert str(info.value) == f"token endpoint {URL} failed after 3 attempt(s): HTTP 503"
    assert info.value.status_code == 503


def test_a_refusal_is_raised_at_once_with_the_servers_words() -> None:
    with pytest.raises(TokenRequestError) as info:
        verdict(answer(400, {"error": "invalid_scope", "error_description": "no such scope"}))
    assert (info.value.error, info.value.description) == ("invalid_scope", "no such scope")
    assert info.value.status_code == 400


def test_a_redirect_is_not_followed() -> None:
    c = config()
    error = refusal(c, answer(302, {}, Location="https://elsewhere.example/"), redactor(c))
    assert isinstance(error, TokenResponseError)
    assert str(error) == f"token endpoint {URL} answered 302 (a redirect; token requests are " \
        "not redirected)"


@pytest.mark.parametrize(("status", "kind"), [(400, TokenRequestError),
                                              (200, TokenResponseError)])
def test_an_answer_not_read_to_its_end(status: int, kind: type[Exception]) -> None:
    too_large = TokenHTTPResponse(status, {}, b"", unread="too large")
    with pytest.raises(kind, match="more than max_response_bytes=1024; not read further"):
        verdict(too_large, max_response_bytes=1024)


def test_an_unread_5xx_is_still_retried() -> None:
    assert verdict(TokenHTTPResponse(502, {}, b"", unread="too large")) == Retry(0.5, "HTTP 502")


@pytest.mark.parametrize(("fields", "why"), [
    ({"token_type": "Bearer"}, "without an access_token"),
    ({"access_token": "at-9f8e7d", "token_type": "mac"}, "with token_type 'mac'; only Bearer"),
    ({"access_token": "at-9f8e7d", "expires_in": -5}, "with an unusable expires_in -5"),
])
def test_an_answer_without_a_usable_token(fields: dict[str, Any], why: str) -> None:
    c = config()
    with pytest.raises(TokenResponseError, match=why):
        read_token(c, answer(body=fields), 0.0, redactor(c))


def test_echoed_secrets_and_tokens_are_redacted_in_every_form() -> None:
    c = config()
    echo = {"error": "invalid_client",
            "error_description": f"bad {SECRET!r} / s3cr3t%2B%2F%3D / old-token"}
    error = refusal(c, answer(401, echo), redactor(c, "old-token"))
    assert error.description is not None
    for leaked in (SECRET, "s3cr3t%2B%2F%3D", "old-token"):
        assert leaked not in str(error)
        assert leaked not in error.description
    carrying = redactor(c).carrying(["assertion.x.y"])
    assert "assertion.x.y" not in carrying("sent assertion.x.y")
    assert carrying("sent assertion.x.y") != "sent assertion.x.y"
