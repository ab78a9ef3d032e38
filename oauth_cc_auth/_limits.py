"""The limits of one token request, shared by the adapters: a deadline for the whole exchange
and a cap on the answer's size (DESIGN §7 "Token request limits").

An HTTP library's timeout bounds each socket operation, not an exchange: a server that sends
one byte at a time never trips it. So each attempt has a :class:`Deadline`; the answer is read
in chunks, checked against it and against ``max_response_bytes`` after every chunk, and a read
blocked at the deadline is interrupted by a :class:`Watchdog` shutting the socket down (a read
of the libraries' ``iter_content`` waits for a whole chunk). Async adapters use a cancel scope
instead. An answer not read to its end is never returned to the connection pool.

A refresh ahead runs in a thread of its own (``_background``) under an :class:`Interrupter`:
the auth object's ``close()`` shuts the socket of its exchange in progress at once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from types import TracebackType
from typing import Literal, Protocol, TypeVar

from oauth_cc_auth._actions import TransportFailure, describe
from oauth_cc_auth._messages import TokenHTTPResponse

__all__ = [
    "READ_CHUNK",
    "Deadline",
    "Interrupter",
    "SocketHolder",
    "Unread",
    "Watchdog",
    "aread_capped",
    "declared_too_large",
    "exchange",
    "read_capped",
    "shutdown_socket",
    "timed_out",
]

#: Why an answer was not read to its end (``TokenHTTPResponse.unread``).
Unread = Literal["too large", "undecodable"]
#: Bytes asked for per read of an answer.
READ_CHUNK = 16 * 1024


class Deadline:
    """A point in time (``time.monotonic()``) by which a token request must be done."""

    __slots__ = ("at", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return time.monotonic() >= self.at


def timed_out(seconds: float) -> TransportFailure:
    """What an attempt that hit its deadline answers: a timeout, retried like any other."""
    return TransportFailure(f"TimeoutError: no complete answer within timeout={seconds:g} s")


def declared_too_large(headers: Mapping[str, str], limit: int) -> bool:
    """Whether the answer's ``Content-Length`` already says it is larger than *limit*."""
    value = headers.get("Content-Length")
    if value is None:
        return False
    value = value.strip()
    return value.isascii() and value.isdigit() and int(value) > limit


def shutdown_socket(sock: socket.socket) -> Callable[[], None]:
    """A watchdog's *stop* for a plain or TLS socket: shut it down, so that a read blocked in
    another thread returns at once (``close`` would not wake it)."""

    def stop() -> None:
        # socket.socket's own shutdown also for an SSLSocket, whose override drops its TLS
        # object under the reading thread's feet.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)

    return stop


class SocketHolder:
    """The socket an attempt's request is sent on, once an adapter learns it (before the
    answer's status line and headers are read): what a :class:`Watchdog` or an
    :class:`Interrupter` shuts down. Stopped before the socket is known, it shuts the
    socket down as soon as it is handed over."""

    __slots__ = ("_lock", "_sock", "_stopped")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._stopped = False

    @property
    def sock(self) -> socket.socket | None:
        return self._sock

    @sock.setter
    def sock(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            stopped = self._stopped
        if stopped and sock is not None:
            with contextlib.suppress(OSError, ValueError):
                shutdown_socket(sock)()

    def stop(self) -> None:
        """Shut the socket down, now if it is known, else as soon as it is."""
        with self._lock:
            self._stopped = True
            sock = self._sock
        if sock is not None:
            shutdown_socket(sock)()


class Watchdog:
    """Calls *stop* from a timer thread when *deadline* passes while the ``with`` block runs.

    After the block, :attr:`fired` says whether it did: the answer is then incomplete.
    """

    def __init__(self, deadline: Deadline, stop: Callable[[], None] | None) -> None:
        self.fired = False
        self._stop = stop
        self._lock = threading.Lock()
        self._done = False
        self._timer: threading.Timer | None = None
        if stop is not None:
            self._timer = threading.Timer(deadline.remaining(), self._fire)
            self._timer.daemon = True

    def _fire(self) -> None:
        with self._lock:
            if self._done or self._stop is None:
                return
            self.fired = True
            # Already closed or released: the read is over anyway.
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                self._stop()

    def __enter__(self) -> Watchdog:
        if self._timer is not None:
            self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            self._done = True
        if self._timer is not None:
            self._timer.cancel()


class Interrupter:
    """Shuts down, when :meth:`interrupt` is called, the sockets of the exchanges that
    threads run under it (:meth:`installed`): an auth object's ``close()`` stopping its
    background refresh at once, whatever the server's pace."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stops: set[Callable[[], None]] = set()
        #: Set by :meth:`interrupt`: sleeps under this interrupter end at once.
        self.interrupted = threading.Event()

    def interrupt(self) -> None:
        """Stop every exchange under this interrupter, and every one started from now on."""
        self.interrupted.set()
        with self._lock:
            stops = list(self._stops)
        for stop in stops:
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                stop()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Run the exchanges of this thread, within the block, under this interrupter."""
        previous = getattr(_current, "interrupter", None)
        _current.interrupter = self
        try:
            yield
        finally:
            _current.interrupter = previous

    @contextlib.contextmanager
    def guarding(self, stop: Callable[[], None]) -> Iterator[None]:
        """While the block runs, :meth:`interrupt` calls *stop* (at once if it was called)."""
        with self._lock:
            self._stops.add(stop)
        try:
            if self.interrupted.is_set():
                with contextlib.suppress(OSError, ValueError, RuntimeError):
                    stop()
            yield
        finally:
            with self._lock:
                self._stops.discard(stop)


#: The :class:`Interrupter` of this thread's exchanges, if any.
_current = threading.local()


@contextlib.contextmanager
def _guarded(stop: Callable[[], None] | None) -> Iterator[None]:
    interrupter: Interrupter | None = getattr(_current, "interrupter", None)
    if interrupter is None or stop is None:
        yield
    else:
        with interrupter.guarding(stop):
            yield


def read_capped(
    chunks: Iterator[bytes],
    *,
    limit: int,
    deadline: Deadline,
    stop: Callable[[], None] | None,
    errors: tuple[type[BaseException], ...],
    undecodable: tuple[type[BaseException], ...] = (),
) -> bytes | TransportFailure | Unread:
    """The whole answer from *chunks*; ``"too large"`` as soon as it is larger than *limit*;
    ``"undecodable"`` when its Content-Encoding fails to decode (one of *undecodable*); a
    ``TransportFailure`` when *deadline* passes (*stop* interrupts a blocked read) or reading
    fails with one of *errors*. Unless bytes are returned, the caller closes the response."""
    parts: list[bytes] = []
    size = 0
    failure: TransportFailure | None = None
    with Watchdog(deadline, stop) as watchdog:
        try:
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    return "too large"
                parts.append(chunk)
                if deadline.expired():
                    break
        except undecodable:
            return "undecodable"
        except errors as exc:
            failure = TransportFailure(f"{type(exc).__name__}: {exc}")
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                with contextlib.suppress(*errors):
                    close()
    if watchdog.fired or deadline.expired():
        return timed_out(deadline.seconds)
    return failure if failure is not None else b"".join(parts)


class _Answer(Protocol):
    """What :func:`exchange` uses of a library's streamed response."""

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    def close(self) -> None: ...


AnswerT = TypeVar("AnswerT", bound=_Answer)


def exchange(
    send: Callable[[], AnswerT],
    chunks: Callable[[AnswerT], Iterator[bytes]],
    stop: Callable[[AnswerT], Callable[[], None] | None],
    *,
    deadline: Deadline,
    holder: SocketHolder,
    limit: int,
    errors: tuple[type[BaseException], ...],
    undecodable: tuple[type[BaseException], ...],
) -> TokenHTTPResponse | TransportFailure:
    """One token-request attempt of a sync adapter, within *deadline* and *limit*.

    *send* sends the request and returns the streamed answer once its status line and
    headers are in, while a watchdog shuts *holder*'s socket at the deadline; the body is
    then read from *chunks* by :func:`read_capped` (*stop* interrupts a read blocked at the
    deadline). *errors* are the library's transport errors, *undecodable* its decoding
    errors. An answer not read to its end is closed, never returned to a pool.
    """
    failure: TransportFailure | None = None
    try:
        with _guarded(holder.stop), Watchdog(deadline, holder.stop) as watchdog:
            answer = send()
    except errors as exc:
        failure = TransportFailure(describe(exc))
    if watchdog.fired:
        if failure is None:
            answer.close()
        return timed_out(deadline.seconds)
    if failure is not None:
        return failure
    body: bytes | TransportFailure | Unread = "too large"
    if not declared_too_large(answer.headers, limit):
        stop_reading = stop(answer)
        with _guarded(stop_reading):
            body = read_capped(
                chunks(answer),
                limit=limit,
                deadline=deadline,
                stop=stop_reading,
                errors=errors,
                undecodable=undecodable,
            )
    if isinstance(body, bytes):
        return TokenHTTPResponse(answer.status_code, answer.headers, body)
    answer.close()
    if isinstance(body, TransportFailure):
        return body
    return TokenHTTPResponse(answer.status_code, answer.headers, b"", unread=body)


async def aread_capped(
    chunks: AsyncIterator[bytes], *, limit: int
) -> bytes | Literal["too large"]:
    """The whole answer from *chunks*, or ``"too large"`` as soon as it is larger than
    *limit*; the caller bounds it in time with a cancel scope."""
    import anyio  # only with the async adapters' extras

    parts: list[bytes] = []
    size = 0
    with anyio.CancelScope() as scope:
        async for chunk in chunks:
            if scope.cancel_called:
                continue  # past the cap: dropped until the cancellation lands
            size += len(chunk)
            if size > limit:
                # Leaving the loop would abandon the library's nested async generators
                # half-way (a ResourceWarning under trio when they are collected). Cancelled
                # at its next read instead, the library ends them all, and its connection.
                scope.cancel()
                continue
            parts.append(chunk)
    return "too large" if scope.cancel_called else b"".join(parts)
