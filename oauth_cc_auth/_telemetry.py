"""OpenTelemetry metrics and spans, through ``opentelemetry-api`` when it is installed (the
``[otel]`` extra); without it, nothing is imported and every function here returns at once.

Only token requests, renewals and shared-cache look-ups report: a request with a fresh cached
token never gets here. OpenTelemetry is looked up at the first of those (not at import), and
what it emits goes wherever the application's SDK sends it: with none configured, the API's
no-op providers drop it.

What is emitted (the names are part of the contract; attributes are the provider's name, an
outcome, a result and the token endpoint's host, never a credential, token or assertion):

- counter ``oauth_cc_auth.token_requests`` (``provider``, ``outcome``): one per token request,
  its retries included (a retry is not a request of its own; metadata requests are none);
  the outcomes are :data:`OUTCOMES`' values, :data:`OTHER` and :data:`CANCELLED`;
- histogram ``oauth_cc_auth.token_request.duration`` (seconds; ``provider``, ``outcome``): the
  time of that whole token request;
- counter ``oauth_cc_auth.renewals`` (``provider``): a token forgotten after the resource
  server refused it (401, or another ``renew_on`` status): once per refused token, however
  many requests it was refused on;
- counter ``oauth_cc_auth.shared_cache`` (``provider``, ``result``): one per look for a token
  in a shared cache: ``hit`` (another process's token), ``miss`` (fetched by this process),
  ``error`` (the cache failed: the token was fetched without it);
- span ``oauth_cc_auth token request`` (kind client; ``provider``, ``outcome``,
  ``server.address``; status error and ``error.type`` on failure) per token request. It is a
  child of the span current when the request began, and is not made current itself: the flow
  is a generator whose steps run in the driver's frames, across which a context cannot be
  attached and detached safely.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
import time
from collections.abc import Generator
from typing import Any, TypeVar

from oauth_cc_auth.errors import TokenEndpointError, TokenRequestError, TokenResponseError

__all__ = [
    "OUTCOMES",
    "SPAN_NAME",
    "renewal",
    "set_providers",
    "shared_cache",
    "token_request",
]

A = TypeVar("A")
O = TypeVar("O")  # noqa: E741
T = TypeVar("T")

SPAN_NAME = "oauth_cc_auth token request"
#: The outcome of a token request by the error it ended with (``None``: none).
OUTCOMES: dict[type[BaseException] | None, str] = {
    None: "success",
    TokenRequestError: "refused",  # a 4xx other than 429
    TokenResponseError: "bad_response",  # a 2xx that is not a usable token
    TokenEndpointError: "unreachable",  # connection errors, timeouts, 429 and 5xx, retried
}
#: Any other exception (a configuration problem found late, a bug); ``cancelled``: the
#: request was abandoned (task cancelled, generator closed).
OTHER, CANCELLED = "error", "cancelled"


class _Instruments:
    def __init__(self, meter_provider: Any = None, tracer_provider: Any = None) -> None:
        from opentelemetry import metrics, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        from oauth_cc_auth import __version__

        meter = metrics.get_meter("oauth_cc_auth", __version__, meter_provider=meter_provider)
        self.tracer = trace.get_tracer("oauth_cc_auth", __version__,
                                       tracer_provider=tracer_provider)
        self.client_kind = SpanKind.CLIENT
        self.status = Status
        self.error_code = StatusCode.ERROR
        self.token_requests = meter.create_counter(
            "oauth_cc_auth.token_requests", unit="{request}",
            description="Token requests, their retries included, by outcome")
        self.duration = meter.create_histogram(
            "oauth_cc_auth.token_request.duration", unit="s",
            description="Duration of token requests, their retries included")
        self.renewals = meter.create_counter(
            "oauth_cc_auth.renewals", unit="{renewal}",
            description="Tokens renewed after the resource server refused them")
        self.shared_cache = meter.create_counter(
            "oauth_cc_auth.shared_cache", unit="{lookup}",
            description="Looks for a token in a shared cache, by result")


_UNKNOWN: Any = object()
#: The instruments; ``None``: no opentelemetry; :data:`_UNKNOWN`: not looked up yet.
_instruments: _Instruments | None = _UNKNOWN


_lookup = threading.Lock()


def _get() -> _Instruments | None:
    global _instruments
    if _instruments is _UNKNOWN:
        with _lookup:  # once, whichever thread comes first
            if _instruments is _UNKNOWN:
                found = None
                # (ImportError: a namespace package without opentelemetry-api; ValueError: a
                # module without a spec in its place.)
                with contextlib.suppress(ImportError, ValueError):
                    if importlib.util.find_spec("opentelemetry") is not None:
                        found = _Instruments()
                _instruments = found
    return _instruments


def set_providers(meter_provider: Any = None, tracer_provider: Any = None) -> None:
    """Report to these providers instead of OpenTelemetry's global ones (tests); with
    neither, go back to looking OpenTelemetry up at the next report."""
    global _instruments
    if meter_provider is None and tracer_provider is None:
        _instruments = _UNKNOWN
    else:
        _instruments = _Instruments(meter_provider, tracer_provider)


def token_request(
    work: Generator[A, O, T], provider: str, server_address: str | None
) -> Generator[A, O, T]:
    """Run *work*, one token request, measured: counted, timed and spanned."""
    instruments = _get()
    if instruments is None:
        return (yield from work)
    attributes: dict[str, str] = {"provider": provider}
    span_attributes = dict(attributes)
    if server_address:
        span_attributes["server.address"] = server_address
    span = instruments.tracer.start_span(SPAN_NAME, kind=instruments.client_kind,
                                         attributes=span_attributes)
    started = time.perf_counter()
    outcome = OTHER
    try:
        value = yield from work
    except Exception as exc:
        outcome = next((o for kind, o in OUTCOMES.items()
                        if kind is not None and isinstance(exc, kind)), OTHER)
        # The class only: messages are redacted, but need not be exported at all.
        span.set_attribute("error.type", type(exc).__name__)
        span.set_status(instruments.status(instruments.error_code, type(exc).__name__))
        raise
    except BaseException:
        outcome = CANCELLED
        raise
    else:
        outcome = OUTCOMES[None]
        return value
    finally:
        attributes["outcome"] = outcome
        instruments.token_requests.add(1, attributes)
        instruments.duration.record(time.perf_counter() - started, attributes)
        span.set_attribute("outcome", outcome)
        span.end()


def renewal(provider: str) -> None:
    """A token was forgotten after the resource server refused it."""
    instruments = _get()
    if instruments is not None:
        instruments.renewals.add(1, {"provider": provider})


def shared_cache(provider: str, result: str) -> None:
    """A look for a token in a shared cache: ``hit``, ``miss`` or ``error``."""
    instruments = _get()
    if instruments is not None:
        instruments.shared_cache.add(1, {"provider": provider, "result": result})
