"""What the sans-IO token flow asks its driver to do, and what the driver answers.

The flow (:meth:`~oauth_cc_auth._flow.TokenManager.obtain`) is a generator: it yields an
action, the driver (``_drivers``) performs it with its own I/O, blocking or awaited, and sends
the outcome back. Five kinds: :class:`Send` a token request, :class:`Sleep`, :class:`Wait`
for another caller's flight, :class:`CacheCall` on a shared cache, and :class:`Spawn` a
refresh ahead in the background.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Literal

from oauth_cc_auth._messages import TokenHTTPResponse, TokenRequest

if TYPE_CHECKING:
    from oauth_cc_auth._slots import Flight
    from oauth_cc_auth._token_cache import TokenCache

__all__ = [
    "Action",
    "CacheCall",
    "CacheFailure",
    "Outcome",
    "Send",
    "Sleep",
    "Spawn",
    "TransportFailure",
    "Wait",
    "Waited",
    "describe",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Send:
    """Send this token request; answer with a ``TokenHTTPResponse`` or ``TransportFailure``."""

    request: TokenRequest


@dataclasses.dataclass(frozen=True, slots=True)
class Sleep:
    """Sleep this many seconds (a retry backoff, a lock poll), then answer ``None``."""

    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class Wait:
    """Wait until this flight has ended, at most *timeout* seconds (the longest its token
    request may take); answer how that went, a :class:`Waited`."""

    flight: Flight
    timeout: float


@enum.unique
class Waited(enum.Enum):
    """What a driver answers to :class:`Wait`."""

    #: The flight ended: its token, or its error, is there.
    ENDED = "ended"
    #: It did not end within the timeout.
    TIMED_OUT = "timed out"
    #: Waiting would never end: the flight's owner is a task of the event loop that this
    #: (sync) caller's thread runs, and that this caller blocks (a notebook, a sync client
    #: inside an async app). The drivers decide this; the flow then fetches separately.
    WOULD_DEADLOCK = "would deadlock"


@dataclasses.dataclass(frozen=True, slots=True)
class CacheCall:
    """One call on a shared cache; a failure of any of them is answered ``CacheFailure``.

    - ``"load"``: read the entry of *key*; answer its bytes or ``None``.
    - ``"store"``: write *value* under *key* for *ttl* seconds; answer ``None``.
    - ``"lock"``: try the lock of *key*; answer ``True`` (taken) or ``False``. The driver
      keeps a taken lock and releases it when the flow ends, however it ends.
    """

    op: Literal["load", "store", "lock"]
    cache: TokenCache
    key: str
    value: bytes = dataclasses.field(default=b"", repr=False)
    ttl: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Spawn:
    """Run *work* (a flow of these same actions, refreshing a token that is due but still
    valid) in the background: a thread, or a task of the running event loop; answer ``True``
    if it runs there, ``False`` if the driver cannot (the flow then runs it inline).

    A driver that answered ``True`` calls *abandon* once the work has ended or will never
    run (a task cancelled before its start): it ends the work's flight if the work did not.
    """

    work: Generator[Action, Outcome, Any] = dataclasses.field(repr=False)
    abandon: Callable[[], None] = dataclasses.field(repr=False)
    #: The flight the work owns (a driver may set its ``alive``).
    flight: Flight = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True, slots=True)
class CacheFailure:
    """The shared cache could not be used (``description``: the exception's class and text)."""

    description: str


@dataclasses.dataclass(frozen=True, slots=True)
class TransportFailure:
    """The token request got no answer: a connection error or a timeout.

    ``description`` names what failed (the exception's class and message, never the request).
    """

    description: str


def describe(exc: BaseException) -> str:
    """What failed, for a ``TransportFailure`` or ``CacheFailure``: the exception's class and
    text, never the exception itself (an HTTP library's holds the request, and the secret)."""
    return f"{type(exc).__name__}: {exc}"


Action = Send | Sleep | Wait | CacheCall | Spawn
Outcome = TokenHTTPResponse | TransportFailure | CacheFailure | Waited | bytes | bool | None
