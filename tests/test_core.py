"""The sans-IO core, stepped by hand: no HTTP library involved."""

from __future__ import annotations

import email.utils
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oauth_cc_auth import MemoryCache, Token, TokenEndpointError, TokenResponseError
from oauth_cc_auth._actions import Send, Sleep, Spawn, TransportFailure, Wait, Waited
from oauth_cc_auth._config import RetryPolicy, build_config
from oauth_cc_auth._drivers import run_sync
from oauth_cc_auth._exchange import parse_retry_after, retry_delay
from oauth_cc_auth._flow import TokenManager
from oauth_cc_auth._messages import TokenHTTPResponse, TokenRequest
from oauth_cc_auth.testing import FakeClock

URL = "https://auth.example/token"


def manager(clock: FakeClock | None = None, **options: Any) -> TokenManager:
    config = build_config("id", "secret", token_url=URL, **options)
    return TokenManager(config, cache=MemoryCache(), clock=clock or FakeClock(), rng=lambda: 1.0)


def answer(status: int = 200, body: Any = None, **headers: str) -> TokenHTTPResponse:
    if body is None:
        body = {"access_token": "tok", "expires_in": 3600}
    return TokenHTTPResponse(status, headers, json.dumps(body).encode())


class TestTokenLifetime:
    @given(
        lifetime=st.floats(min_value=0.001, max_value=1e9),
        leeway=st.floats(min_value=0, max_value=1e9),
        start=st.floats(min_value=0, max_value=1e6),
    )
    def test_refresh_between_half_life_and_expiry(
        self, lifetime: float, leeway: float, start: float
    ) -> None:
        token = Token.issued("t", obtained_at=start, lifetime=lifetime, leeway=leeway)
        assert token.expires_at == start + lifetime
        assert start + lifetime / 2 <= token.refresh_at + 1e-6
        assert token.refresh_at <= token.expires_at
        if leeway <= lifetime / 2:
            assert token.refresh_at == pytest.approx(token.expires_at - leeway)
        assert token.is_fresh(start)
        assert not token.is_fresh(token.expires_at)

    def test_no_lifetime_never_expires(self) -> None:
        token = Token.issued("t", obtained_at=0, lifetime=None, leeway=60)
        assert token.is_fresh(1e12)
        assert not token.is_expired(1e12)

    def test_repr_hides_token(self) -> None:
        token = Token.issued("very-secret-token", obtained_at=0, lifetime=10, leeway=1)
        assert "very-secret-token" not in repr(token)
        assert token.authorization == "Bearer very-secret-token"


class TestRetries:
    def test_retry_after_seconds_and_dates(self) -> None:
        now = 1_700_000_000.0
        assert parse_retry_after("120") == 120
        assert parse_retry_after(" 0 ") == 0
        future = email.utils.formatdate(now + 30, usegmt=True)
        assert parse_retry_after(future, now=lambda: now) == pytest.approx(30)
        past = email.utils.formatdate(now - 30, usegmt=True)
        assert parse_retry_after(past, now=lambda: now) == 0
        for bad in (None, "", "soon", "-3", "1.5"):
            assert parse_retry_after(bad) is None

    def test_delay_caps_and_gives_up(self) -> None:
        policy = RetryPolicy(max_retries=2, backoff=1.0, max_backoff=8.0, max_retry_after=60)
        assert retry_delay(policy, 0, 3600, lambda: 1.0) == 60
        assert retry_delay(policy, 0, 0, lambda: 1.0) == 0
        assert retry_delay(policy, 1, None, lambda: 1.0) == 2.0
        assert retry_delay(policy, 1, None, lambda: 0.25) == 0.5  # jitter
        assert retry_delay(policy, 2, None, lambda: 1.0) is None
        huge = RetryPolicy(max_retries=50, backoff=1.0, max_backoff=8.0)
        assert retry_delay(huge, 40, None, lambda: 1.0) == 8.0


class TestFlow:
    def test_fetch_steps(self) -> None:
        clock = FakeClock(100)
        m = manager(clock, scope="a b")
        flow = m.obtain()
        action = next(flow)
        assert isinstance(action, Send)
        assert action.request == TokenRequest(
            URL,
            {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"},
            b"grant_type=client_credentials&scope=a+b&client_id=id&client_secret=secret",
        )
        clock.advance(5)  # the answer takes 5 s: lifetime counts from the send
        with pytest.raises(StopIteration) as stop:
            flow.send(answer())
        token = stop.value.value
        assert token.obtained_at == 100
        assert token.expires_at == 3700
        assert m.fresh_token() is token

    def test_second_caller_waits_for_the_flight(self) -> None:
        m = manager()
        owner, waiter = m.obtain(), m.obtain()
        assert isinstance(next(owner), Send)
        wait = next(waiter)
        assert isinstance(wait, Wait)
        with pytest.raises(StopIteration) as stop:
            owner.send(answer())
        assert wait.flight.done.is_set()
        with pytest.raises(StopIteration) as waited:
            waiter.send(Waited.ENDED)
        assert waited.value.value is stop.value.value

    def test_a_waiter_that_would_deadlock_fetches_separately(self) -> None:
        # The drivers say so for a sync caller on the thread of the loop whose task fetches.
        m = manager()
        owner, waiter = m.obtain(), m.obtain()
        assert isinstance(next(owner), Send)
        assert isinstance(next(waiter), Wait)
        assert isinstance(waiter.send(Waited.WOULD_DEADLOCK), Send)
        with pytest.raises(StopIteration) as stop:
            waiter.send(answer(body={"access_token": "own", "expires_in": 60}))
        assert stop.value.value.access_token == "own"
        assert m.slot.flight is not None  # the owner's request is still its own

    def test_a_wait_that_times_out_is_an_endpoint_error(self) -> None:
        m = manager()
        owner, waiter = m.obtain(), m.obtain()
        next(owner)
        next(waiter)
        with pytest.raises(TokenEndpointError, match="did not end within"):
            waiter.send(Waited.TIMED_OUT)

    def test_abandoned_flight_is_taken_over(self) -> None:
        m = manager()
        owner, waiter = m.obtain(), m.obtain()
        next(owner)
        wait = next(waiter)
        assert isinstance(wait, Wait)
        owner.close()  # the owner was cancelled
        assert wait.flight.done.is_set()
        assert isinstance(waiter.send(Waited.ENDED), Send)  # the waiter fetches itself

    def test_invalidation_is_keyed_to_the_failed_token(self) -> None:
        m = manager()
        old = run_sync(m.obtain(), lambda r: answer(body={"access_token": "old"}))
        m.invalidate(old)
        new = run_sync(m.obtain(), lambda r: answer(body={"access_token": "new"}))
        m.invalidate(old)  # a late 401 on the old token
        assert m.fresh_token() is new

    def test_retry_after_is_slept(self) -> None:
        m = manager(max_retries=2)
        answers = [answer(503, {}, **{"Retry-After": "7"}), TransportFailure("boom"), answer()]
        slept: list[float] = []
        token = run_sync(m.obtain(), lambda r: answers.pop(0), slept.append)
        assert token.access_token == "tok"
        assert slept == [7.0, 1.0]  # Retry-After, then backoff 0.5 * 2**1 * jitter 1.0

    def test_gives_up_after_max_retries(self) -> None:
        m = manager(max_retries=1)
        flow = m.obtain()
        assert isinstance(next(flow), Send)
        assert isinstance(flow.send(TransportFailure("ConnectError: refused")), Sleep)
        assert isinstance(flow.send(None), Send)
        with pytest.raises(TokenEndpointError, match=r"2 attempt.*ConnectError: refused"):
            flow.send(TransportFailure("ConnectError: refused"))


class TestReviewedEdges:
    def test_a_401_retry_takes_no_token_requested_before_the_401(self) -> None:
        clock = FakeClock()
        m = manager(clock)
        old = run_sync(m.obtain(), lambda r: answer(body={"access_token": "t1", "expires_in": 100}))
        clock.advance(60)  # due for refresh: a refresh ahead starts (inline here)...
        refresh = m.obtain()
        assert isinstance(next(refresh), Spawn)
        assert isinstance(refresh.send(False), Send)
        after = m.invalidate(old)  # ...and then a 401 throws t1 away (all tokens revoked)
        retry = m.obtain(min_generation=after)
        assert isinstance(next(retry), Wait)
        with pytest.raises(StopIteration):
            refresh.send(answer(body={"access_token": "t2", "expires_in": 100}))
        # t2 was requested before the 401: the retry makes a token request of its own.
        assert isinstance(retry.send(Waited.ENDED), Send)
        with pytest.raises(StopIteration) as stop:
            retry.send(answer(body={"access_token": "t3", "expires_in": 100}))
        assert stop.value.value.access_token == "t3"

    def test_unusable_numbers_are_token_response_errors(self) -> None:
        m = manager()
        huge = b'{"access_token": "t", "expires_in": 1' + b"0" * 400 + b"}"
        with pytest.raises(TokenResponseError, match="expires_in"):
            run_sync(m.obtain(), lambda r: TokenHTTPResponse(200, {}, huge))
        assert parse_retry_after("\u00b2") is None  # a digit to str.isdigit, not to float

    def test_after_fork_no_flight_is_inherited(self) -> None:
        from oauth_cc_auth._fork import after_fork_in_child

        m = manager()
        flow = m.obtain()
        assert isinstance(next(flow), Send)  # a flight in progress when the process forks
        after_fork_in_child()
        assert m.slot.flight is None
        token = run_sync(m.obtain(), lambda r: answer())
        assert token.access_token == "tok"

    def test_basic_credentials_that_cannot_be_encoded(self) -> None:
        from oauth_cc_auth import ConfigurationError

        # A lone surrogate is no UTF-8: no body or RFC 6749 §2.3.1 header can carry it.
        with pytest.raises(ConfigurationError, match="cannot be encoded") as info:
            build_config("id", "s\ud800cret", token_url=URL, auth_method="client_secret_basic")
        assert info.value.__context__ is None
        assert "\ud800" not in str(info.value)
        # A client id that a form body cannot carry is refused when the request is built.
        config = build_config("\ud800", "secret", token_url=URL)
        with pytest.raises(ConfigurationError, match="cannot be encoded") as info:
            TokenManager(config, cache=MemoryCache())
        assert info.value.__context__ is None
