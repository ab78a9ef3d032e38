"""What adversarial probes found, pinned down on the sans-IO core: malformed answers map to the
class their status says, redaction covers every token and every escaped form, and the retry
after a 401 never takes a token requested before it."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oauth_cc_auth import (
    AuthError,
    MemoryCache,
    TokenEndpointError,
    TokenRequestError,
    TokenResponseError,
    get_provider,
)
from oauth_cc_auth._config import build_config
from oauth_cc_auth._drivers import run_sync
from oauth_cc_auth._flow import TokenManager
from oauth_cc_auth._messages import TokenHTTPResponse, TokenRequest
from oauth_cc_auth.testing import FakeClock

URL = "https://auth.example/token"
#: Both quote kinds, a backslash, a control character, a non-ASCII one: every escape repr() has.
SECRET = "s'e\"c\\r\te\x07t-é-0123456789"

PROVIDERS: dict[str, dict[str, Any]] = {
    "rfc6749": {"token_url": URL},
    "fcc_finance": {},
    "fincalc": {"scope": "s", "extra": {"email_address": "me@example.com"}},
    "figure": {},
}


def manager(provider: str = "rfc6749", **options: Any) -> TokenManager:
    config = build_config("id", SECRET, provider=get_provider(provider),
                          **{**PROVIDERS[provider], **options})
    return TokenManager(config, cache=MemoryCache(), clock=FakeClock(), rng=lambda: 0.0)


def reply(status: int, body: bytes, **headers: str) -> TokenHTTPResponse:
    return TokenHTTPResponse(status, headers, body)


def ok_answer(token: str, provider: str = "rfc6749") -> TokenHTTPResponse:
    fields: dict[str, Any] = {"access_token": token, "expires_in": 3600}
    if provider == "fincalc":
        fields = {"success": True, "data": fields}
    return reply(200, json.dumps(fields).encode())


def texts_of(error: BaseException) -> Iterator[str]:
    """Everything of *error* and its chain a user or a log could show."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield from map(str, current.args)
        yield from (str(v) for v in vars(current).values())
        current = current.__cause__ or current.__context__


# -- malformed answers ---------------------------------------------------------------------------


NESTED = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, TokenResponseError), (400, TokenRequestError), (401, TokenRequestError)],
)
@pytest.mark.parametrize(
    "body",
    [NESTED, b'{"access_token": ' + NESTED + b"}",
     b'{"data": ' + b'{"a":' * 50_000 + b"1" + b"}" * 50_001, b"\xff\xfe\x00garbage"],
    ids=["nested-array", "nested-token", "nested-object", "undecodable"],
)
def test_malformed_answers_are_the_class_their_status_says(
    provider: str, status: int, expected: type[AuthError], body: bytes
) -> None:
    m = manager(provider)
    with pytest.raises(expected) as info:
        run_sync(m.obtain(), lambda r: reply(status, body))
    assert info.value.status_code == status


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=20,
)
_fields = st.fixed_dictionaries(
    {},
    optional={
        "access_token": st.sampled_from(["tok-new", SECRET, ""]) | _json,
        "token_type": st.sampled_from(["bearer", f"x{SECRET}", "mac"]) | _json,
        "expires_in": st.sampled_from([3600, "60", -1, "1e400", SECRET]) | _json,
        "scope": st.sampled_from([f"read {SECRET}", "read tok-old"]) | _json,
        "error": st.sampled_from(["invalid_client", f"bad {SECRET}"]) | _json,
        "error_description": st.sampled_from([f"'{SECRET}' tok-old", repr(SECRET)]) | _json,
        "success": st.booleans() | _json,
        "data": _json,
        "message": st.fixed_dictionaries({"description": st.just(f"secret={SECRET!r}")}),
    },
)


#: Any answer a token endpoint may give.
_answers = given(
    provider=st.sampled_from(sorted(PROVIDERS)),
    status=st.sampled_from([200, 201, 400, 401, 403, 429, 500, 503]),
    payload=_fields | _json,
    raw=st.none() | st.binary(max_size=64),
)


def check_any_answer(provider: str, status: int, payload: Any, raw: bytes | None) -> None:
    """Whatever a token endpoint answers: a token, or one of the package's errors — never
    another exception — and never the secret or a token this client held, in any form."""
    m = manager(provider, max_retries=0)
    # A token held before, refused after a 401: it must be redacted from what follows.
    old = run_sync(m.obtain(), lambda r: ok_answer("tok-old", provider))
    m.invalidate(old)
    body = raw if raw is not None else json.dumps(payload).encode()
    handler = logging.Handler()
    records: list[logging.LogRecord] = []
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("oauth_cc_auth")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        token = run_sync(m.obtain(min_generation=1), lambda r: reply(status, body))
    except AuthError as exc:
        texts = list(texts_of(exc))
    else:
        texts = [repr(token), str(token)]
        assert 200 <= status < 300
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    texts += [record.getMessage() for record in records]
    for text in texts:
        for form in (SECRET, repr(SECRET)[1:-1], json.dumps(SECRET)[1:-1], "tok-old"):
            assert form not in text, text


@pytest.mark.slow  # 300 examples, a few seconds
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@_answers
def test_any_answer_is_an_auth_error_without_secrets(
    provider: str, status: int, payload: Any, raw: bytes | None
) -> None:
    check_any_answer(provider, status, payload, raw)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@_answers
def test_a_sample_of_answers_are_auth_errors_without_secrets(
    provider: str, status: int, payload: Any, raw: bytes | None
) -> None:
    """The same on fewer examples, for the default run."""
    check_any_answer(provider, status, payload, raw)


# -- redaction -----------------------------------------------------------------------------------


def test_refused_token_is_redacted_from_the_next_error() -> None:
    m = manager()
    old = run_sync(m.obtain(), lambda r: ok_answer("tok-refused-1"))
    after = m.invalidate(old)
    echo = json.dumps({"error": "invalid_grant",
                       "error_description": "token tok-refused-1 was revoked"}).encode()
    with pytest.raises(TokenRequestError) as info:
        run_sync(m.obtain(min_generation=after), lambda r: reply(400, echo))
    assert all("tok-refused-1" not in text for text in texts_of(info.value))
    assert info.value.description == "token [REDACTED] was revoked"


def test_echoed_scope_never_shows_in_the_token_repr() -> None:
    m = manager()
    body = json.dumps({"access_token": "tok-scope", "expires_in": 60,
                       "scope": f"read client_secret={SECRET} tok-scope"}).encode()
    token = run_sync(m.obtain(), lambda r: reply(200, body))
    assert token.scope == "read client_secret=[REDACTED] [REDACTED]"
    assert SECRET not in repr(token)
    assert repr(SECRET)[1:-1] not in repr(token)


@pytest.mark.parametrize("where", ["token_type", "expires_in"])
def test_secret_echoed_in_a_value_shown_with_repr(where: str) -> None:
    fields: dict[str, Any] = {"access_token": "tok-x", "expires_in": 60, where: f"<{SECRET}>"}
    m = manager()
    with pytest.raises(TokenResponseError) as info:
        run_sync(m.obtain(), lambda r: reply(200, json.dumps(fields).encode()))
    for text in texts_of(info.value):
        assert SECRET not in text
        assert repr(SECRET)[1:-1] not in text
        assert repr(f"<{SECRET}>")[2:-2] not in text
    assert "[REDACTED]" in str(info.value)


# -- the retry after a 401 ------------------------------------------------------------------------


def test_retry_never_takes_a_token_requested_before_its_401() -> None:
    """A proactive refresh that started before a revocation lands just before the 401 of a
    request that carried the previous token: its token (revoked too) is not the retry's."""
    m = manager()
    issued = iter(["tok-1", "tok-2", "tok-3"])
    sent: list[TokenRequest] = []

    def send(request: TokenRequest) -> TokenHTTPResponse:
        sent.append(request)
        return ok_answer(next(issued))

    first = run_sync(m.obtain(), send)
    assert first.access_token == "tok-1"
    # The refresh: tok-2 requested before the server revoked everything, landing now.
    m.clock.advance(3600)  # type: ignore[attr-defined]
    refreshed = run_sync(m.obtain(), send)
    assert refreshed.access_token == "tok-2"
    # Now the 401 of a request that carried tok-1 arrives.
    after = m.invalidate(first)
    assert m.fresh_token(after) is None
    retry = run_sync(m.obtain(min_generation=after), send)
    assert retry.access_token == "tok-3"
    # Callers that are not retrying keep the current token meanwhile.
    assert m.fresh_token() is retry


def test_a_storm_of_401s_for_one_token_makes_one_token_request() -> None:
    m = manager()
    issued = iter(f"tok-{n}" for n in range(1, 100))
    count = [0]
    gate = threading.Event()

    def send(request: TokenRequest) -> TokenHTTPResponse:
        count[0] += 1
        assert gate.wait(10)
        return ok_answer(next(issued))

    gate.set()
    old = run_sync(m.obtain(), send)
    gate.clear()
    threads, results = 20, []
    barrier = threading.Barrier(threads)
    lock = threading.Lock()

    def retry() -> None:
        barrier.wait(10)
        after = m.invalidate(old)  # every request that carried the old token: a 401
        token = run_sync(m.obtain(min_generation=after), send)
        with lock:
            results.append(token.access_token)

    workers = [threading.Thread(target=retry) for _ in range(threads)]
    for worker in workers:
        worker.start()
    # Release the renewal once a retry owns it (the others join it, or find its token).
    deadline = time.monotonic() + 10
    while m.slot.flight is None and time.monotonic() < deadline:
        time.sleep(0.001)
    gate.set()
    for worker in workers:
        worker.join(10)
    assert results == ["tok-2"] * threads
    assert count[0] == 2  # the first token, and one renewal for the whole storm


def test_endpoint_down_after_a_401_is_an_error_not_the_refused_token() -> None:
    m = manager(max_retries=0)
    old = run_sync(m.obtain(), lambda r: ok_answer("tok-1"))
    after = m.invalidate(old)
    with pytest.raises(TokenEndpointError):
        run_sync(m.obtain(min_generation=after), lambda r: reply(503, b""))


def test_only_a_refusal_of_our_token_at_its_origin_is_ours() -> None:
    m = manager()
    token = run_sync(m.obtain(), lambda r: ok_answer("tok-1"))
    api = "https://api.example/things"
    assert m.refused(token, "Bearer other", api, api) is None
    assert m.refused(token, None, "https://elsewhere.example/x", api) is None
    assert m.refused(token, token.authorization, "http://api.example/things", api) is None
    assert m.fresh_token() is token  # none of those touched it
    generation = m.refused(token, token.authorization, "https://API.example:443/other", api)
    assert generation is not None
    assert m.fresh_token() is None
    assert m.fresh_token(generation) is None
