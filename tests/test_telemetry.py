"""OpenTelemetry (``_telemetry``): the metrics and spans of token requests, renewals and
shared-cache look-ups, through every adapter flavour; nothing on the hot path, nothing secret
in any attribute, and nothing imported without opentelemetry."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import oauth_cc_auth
from oauth_cc_auth import MemoryCache, _telemetry
from oauth_cc_auth._slots import default_cache
from oauth_cc_auth.testing import Reply
from tests.conftest import HARNESSES, SECRET, Harness

PROVIDER = "rfc6749"
REQUESTS = "oauth_cc_auth.token_requests"
DURATION = "oauth_cc_auth.token_request.duration"
RENEWALS = "oauth_cc_auth.renewals"
SHARED = "oauth_cc_auth.shared_cache"


class Telemetry:
    """SDK providers of the test's own, with in-memory exporters, injected into
    ``_telemetry`` (OpenTelemetry's global providers can be set once per process only)."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def points(self) -> dict[tuple[str, frozenset[tuple[str, Any]]], Any]:
        """(metric name, attributes) -> the point: a sum's value, a histogram's count."""
        found: dict[tuple[str, frozenset[tuple[str, Any]]], Any] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                assert scope.scope.name == "oauth_cc_auth"
                assert scope.scope.version == oauth_cc_auth.__version__
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        value = getattr(point, "value", None)
                        if value is None:
                            value = point.count  # type: ignore[union-attr]
                        found[metric.name, frozenset((point.attributes or {}).items())] = value
        return found

    def count(self, name: str, **attributes: str) -> Any:
        return self.points().get((name, frozenset(attributes.items())), 0)

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def strings(self) -> list[str]:
        """Every attribute value (and status description) of every point and span."""
        values: list[Any] = [value for _, attributes in self.points() for _, value in attributes]
        for span in self.spans():
            values.extend((span.attributes or {}).values())
            values.append(span.status.description or "")
            for event in span.events:
                values.extend((event.attributes or {}).values())
        return [str(v) for v in values]


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    t = Telemetry()
    _telemetry.set_providers(t.meter_provider, t.tracer_provider)
    try:
        yield t
    finally:
        _telemetry.set_providers()
        t.meter_provider.shutdown()
        t.tracer_provider.shutdown()


def outcomes(t: Telemetry) -> Counter[str]:
    return Counter({
        dict(attributes)["outcome"]: value
        for (name, attributes), value in t.points().items() if name == REQUESTS
    })


def secrets_sent(harness: Harness) -> set[str]:
    """What the client sent that is secret: the secret, every credential header and form
    value of the token requests (client assertions too), and every token it presented."""
    found = {SECRET}
    for received in harness.server.received_at("token"):
        if "authorization" in received.headers:
            found.add(received.headers["authorization"].split()[-1])
        found.update(value for name, value in parse_qsl(received.body.decode())
                     if name in ("client_secret", "client_assertion"))
    for received in harness.server.received_at("resource"):
        if "authorization" in received.headers:
            found.add(received.headers["authorization"].split()[-1])
    return {s for s in found if len(s) >= 5}


def no_telemetry(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("telemetry on the hot path")


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_jwt"])
def test_a_scripted_scenario(harness: Harness, telemetry: Telemetry, auth_method: str,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    # The first request: one token request, a success, timed and spanned.
    auth = harness.auth(auth_method=auth_method, max_retries=1)
    assert harness.get(auth).status_code == 200
    assert outcomes(telemetry) == {"success": 1}
    assert telemetry.count(DURATION, provider=PROVIDER, outcome="success") == 1
    [span] = telemetry.spans()
    assert span.name == "oauth_cc_auth token request"
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes or {}) == {
        "provider": PROVIDER, "outcome": "success", "server.address": "auth.example"}
    assert span.status.status_code is StatusCode.UNSET

    # The hot path, a fresh cached token, does not touch telemetry at all.
    with monkeypatch.context() as patched:
        patched.setattr(_telemetry, "_get", no_telemetry)
        assert harness.get(auth).status_code == 200
        assert harness.get(auth).status_code == 200
    assert outcomes(telemetry) == {"success": 1}
    assert len(telemetry.spans()) == 1

    # Revoked: one renewal, one more token request.
    harness.server.revoke_all()
    assert harness.get(auth).status_code == 200
    assert telemetry.count(RENEWALS, provider=PROVIDER) == 1
    assert outcomes(telemetry) == {"success": 2}
    assert len(harness.server.received_at("token")) == 2

    # The endpoint failing, a refusal, a bad answer (each a client of its own cache).
    def failing(reply: Reply, times: int, error: type[Exception]) -> None:
        harness.server.answer_next(*[reply] * times)
        with pytest.raises(error):
            harness.get(harness.auth(auth_method=auth_method, max_retries=1,
                                     cache=MemoryCache()))

    failing(Reply(503), 2, oauth_cc_auth.TokenEndpointError)
    failing(Reply(400, json={"error": "invalid_client", "error_description": SECRET}), 1,
            oauth_cc_auth.TokenRequestError)
    failing(Reply(json={"token_type": "bearer"}), 1, oauth_cc_auth.TokenResponseError)
    # (A flight with its retries is one token request: the 503s were two attempts.)
    assert outcomes(telemetry) == {"success": 2, "unreachable": 1, "refused": 1,
                                   "bad_response": 1}
    assert sum(v for (name, _), v in telemetry.points().items() if name == DURATION) == 5
    failed = telemetry.spans()[2:]
    assert [dict(s.attributes or {})["outcome"] for s in failed] == [
        "unreachable", "refused", "bad_response"]
    assert [dict(s.attributes or {})["error.type"] for s in failed] == [
        "TokenEndpointError", "TokenRequestError", "TokenResponseError"]
    assert all(s.status.status_code is StatusCode.ERROR for s in failed)
    assert telemetry.count(RENEWALS, provider=PROVIDER) == 1

    # Nothing secret anywhere: not the secret, a token, an assertion or a credential.
    secrets = secrets_sent(harness)
    assert any(s.startswith("tok-") for s in secrets)
    if auth_method == "client_secret_jwt":
        assert any(s.count(".") == 2 for s in secrets)  # the assertions are among them
    for value in telemetry.strings():
        for secret in secrets:
            assert secret not in value


def test_a_refresh_ahead_is_a_token_request_counted_and_spanned(
    harness: Harness, telemetry: Telemetry
) -> None:
    auth = harness.auth(leeway=60)
    assert harness.get(auth).status_code == 200
    harness.clock.advance(3550)  # due: refreshed in the background (the harness waits)
    assert harness.get(auth).status_code == 200
    assert outcomes(telemetry) == {"success": 2}
    assert [dict(s.attributes or {})["outcome"] for s in telemetry.spans()] == [
        "success", "success"]
    assert telemetry.count(RENEWALS, provider=PROVIDER) == 0


def test_the_stale_token_fallback_counts_the_failed_request(
    harness: Harness, telemetry: Telemetry
) -> None:
    auth = harness.auth(leeway=60, max_retries=0)
    assert harness.get(auth).status_code == 200
    harness.clock.advance(3550)  # due for a refresh, 50 s before expiry
    harness.server.answer_next(Reply(503))
    assert harness.get(auth).status_code == 200  # on the cached token
    assert outcomes(telemetry) == {"success": 1, "unreachable": 1}


class Broken(oauth_cc_auth.TokenCache):
    """A shared cache that is down."""

    def load(self, key: str) -> bytes | None:
        raise OSError("down")

    def store(self, key: str, value: bytes, ttl: float | None) -> None:
        raise OSError("down")

    def try_lock(self, key: str, timeout: float) -> object | None:
        raise OSError("down")

    def unlock(self, key: str, handle: object) -> None:
        raise OSError("down")


@pytest.mark.parametrize("flavour", ["requests", "httpx-async"])
def test_shared_cache_hit_miss_and_error(
    flavour: str, server: Any, clock: Any, tmp_path: Path, telemetry: Telemetry
) -> None:
    harness = HARNESSES[flavour](server, MemoryCache(), clock)
    url = "file://" + str(tmp_path / "cache")
    with harness.mocked():
        # One process fetches (a miss), a second takes its token (a hit).
        default_cache.clear()
        assert harness.get(harness.auth(cache=url)).status_code == 200
        default_cache.clear()  # as in a new process
        assert harness.get(harness.auth(cache=url)).status_code == 200
        # A cache that fails: the token is fetched without it (an error).
        default_cache.clear()
        assert harness.get(harness.auth(cache=Broken())).status_code == 200
        default_cache.clear()
    assert {dict(a)["result"]: v for (name, a), v in telemetry.points().items()
            if name == SHARED} == {"miss": 1, "hit": 1, "error": 1}
    assert outcomes(telemetry) == {"success": 2}


def test_no_provider_configured_is_silent(harness: Harness) -> None:
    """With opentelemetry-api but no SDK set up by the application, nothing fails."""
    _telemetry.set_providers()
    try:
        assert harness.get(harness.auth()).status_code == 200
    finally:
        _telemetry.set_providers()


WITHOUT_OTEL = textwrap.dedent("""
    import sys
    sys.modules["opentelemetry"] = None  # as if opentelemetry-api were not installed
    from oauth_cc_auth import _telemetry
    from oauth_cc_auth.testing import Emulator, EmulatedClient
    from oauth_cc_auth.requests import ClientCredentialsAuth
    import requests

    with Emulator() as emulator:
        client = emulator.client("rfc6749")
        auth = ClientCredentialsAuth(client.client_id, client.client_secret,
                                     token_url=emulator.token_url("rfc6749"),
                                     **client.options())
        emulator.revoke_all()
        for _ in range(2):
            assert requests.get(emulator.resource_url("rfc6749"), auth=auth).status_code == 200
        emulator.revoke_all()
        assert requests.get(emulator.resource_url("rfc6749"), auth=auth).status_code == 200
    assert _telemetry._instruments is None
    assert [m for m in sys.modules if m.startswith("opentelemetry") and sys.modules[m]] == []
    print("ok")
""")


def test_without_opentelemetry_nothing_is_imported_nothing_breaks() -> None:
    done = subprocess.run(  # noqa: S603  (this interpreter, our script)
        [sys.executable, "-c", WITHOUT_OTEL], capture_output=True, text=True,
        timeout=60, check=False, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


WITH_GLOBAL_PROVIDERS = textwrap.dedent("""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from oauth_cc_auth.testing import Emulator
    from oauth_cc_auth.requests import ClientCredentialsAuth
    import requests

    with Emulator() as emulator:
        client = emulator.client("rfc6749")
        auth = ClientCredentialsAuth(client.client_id, client.client_secret,
                                     token_url=emulator.token_url("rfc6749"),
                                     **client.options())
        url = emulator.resource_url("rfc6749")
        # Before the application sets up its SDK: not recorded, and no failure.
        assert requests.get(url, auth=auth).status_code == 200
        reader, exporter = InMemoryMetricReader(), InMemorySpanExporter()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(tracer_provider)
        emulator.revoke_all()
        assert requests.get(url, auth=auth).status_code == 200
    names = {m.name: [dict(p.attributes) for p in m.data.data_points]
             for r in reader.get_metrics_data().resource_metrics
             for s in r.scope_metrics for m in s.metrics}
    assert names["oauth_cc_auth.token_requests"] == [
        {"provider": "rfc6749", "outcome": "success"}], names
    assert names["oauth_cc_auth.renewals"] == [{"provider": "rfc6749"}], names
    assert [s.name for s in exporter.get_finished_spans()] == ["oauth_cc_auth token request"]
    print("ok")
""")


def test_through_the_global_providers_set_up_late() -> None:
    """The application's SDK, set up after the first token request, gets what follows."""
    done = subprocess.run(  # noqa: S603  (this interpreter, our script)
        [sys.executable, "-c", WITH_GLOBAL_PROVIDERS], capture_output=True, text=True,
        timeout=60, check=False, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
