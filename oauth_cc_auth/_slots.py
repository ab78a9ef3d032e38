"""Token state in the process: the slot of each cache key and the flight refreshing it.

Single flight: a :class:`TokenSlot` holds the current token of one cache key and at most one
:class:`Flight`, the token request in progress. The first caller that finds no fresh token
starts a flight and does the request; everyone arriving meanwhile waits for that flight and
shares its token or its error. Only a caller arriving after a flight has ended starts another.
The slot's lock is held only to read and swap that state, never across I/O.

The 401 rule (generations). A resource server that refuses a token (401, or another
``renew_on`` status) makes the request be retried once with a new token, and that token must
come from a token request *started after the refusal*: a request already under way may have
been answered before a revocation, so its token may be refused too. So the slot counts
refusals: :meth:`TokenSlot.invalidate` increments ``generation`` on the first refusal of a
token and returns it; every later refusal of the same token returns that same number, so a
storm of 401s for one revoked token waits for one renewal. Each flight records the generation
it started in, each stored token the generation of its flight; the retry asks for a token of
at least that *minimum generation* (``TokenManager.obtain(min_generation=...)``) and neither
takes a token nor joins a flight from before it.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from oauth_cc_auth._fork import reset_in_child
from oauth_cc_auth._token import Token

if TYPE_CHECKING:
    from oauth_cc_auth._discovery import ServerMetadata

__all__ = [
    "Flight", "FlightSlot", "MemoryCache", "MetadataSlot", "SlotStatistics", "TokenSlot",
    "default_cache",
]

#: How many of its recent tokens a slot remembers (for redaction, and refused ones so as
#: never to take them from a shared cache again). A token an hour: more than a week's worth.
KNOWN_TOKENS = 256


class Flight:
    """One token request in progress, shared by everyone who needs its result."""

    __slots__ = (
        "alive", "done", "error", "event", "generation", "loop", "thread", "token", "waiters",
    )

    def __init__(self, generation: int, loop: object = None, event: Any = None) -> None:
        self.done = threading.Event()
        self.token: Token | None = None
        self.error: BaseException | None = None
        #: The slot's generation when the request started: a caller retrying after a 401
        #: takes only a token requested after that 401.
        self.generation = generation
        #: The thread of the owner; a sync caller on that thread must not wait for it (an
        #: async owner on the same thread would never get to run).
        self.thread = threading.get_ident()
        #: The event loop of an async owner, and an event of that loop's async library, set
        #: when the flight ends: waiters in the same loop await it instead of a thread.
        self.loop = loop
        self.event = event
        #: How many callers are waiting for it (besides its owner).
        self.waiters = 0
        #: Whether its owner can still end it; set for a refresh task in the background,
        #: which an event loop closed without cancelling its tasks never runs again.
        self.alive: Callable[[], bool] | None = None


@dataclasses.dataclass(frozen=True)
class SlotStatistics:
    """What a :class:`TokenSlot` is doing, for tests (as trio's ``statistics()``)."""

    #: Whether a token request is in progress.
    in_flight: bool
    #: How many callers wait for it: a test can open a gate once all of them do.
    waiters: int


class FlightSlot:
    """A value of the process and at most one :class:`Flight` fetching it: what a
    :class:`TokenSlot` and a :class:`MetadataSlot` share (joining, leaving, statistics)."""

    __slots__ = ("__weakref__", "_lock", "flight", "generation")

    def __init__(self) -> None:
        reset_in_child(self)
        self._lock = threading.Lock()
        self.flight: Flight | None = None
        #: Counts the tokens refused by a resource server (each one once); 0 for metadata.
        self.generation = 0

    def join(self, loop: object, event_factory: Callable[[], Any] | None) -> tuple[Flight, bool]:
        """The flight in progress and ``False``, or a new one and ``True`` (the caller owns it)."""
        with self._lock:
            dead = self._dead_flight()
            if self.flight is not None:
                self.flight.waiters += 1
                return self.flight, False
            event = event_factory() if event_factory is not None else None
            flight = Flight(self.generation, loop, event)
            self.flight = flight
        if dead is not None:
            self._wake(dead)
        return flight, True

    def _dead_flight(self) -> Flight | None:
        """(Under the lock) End the flight in progress if its owner can no longer end it
        (``Flight.alive``), and return it, to be woken after the lock is released."""
        flight = self.flight
        if flight is None or flight.alive is None or flight.alive():
            return None
        self._end(flight)
        return flight

    def leave(self, flight: Flight) -> None:
        """A waiter of *flight* stopped waiting (it ended, or the waiter gave up)."""
        with self._lock:
            flight.waiters -= 1

    def statistics(self) -> SlotStatistics:
        """Whether a request is in progress, and how many callers wait for it."""
        with self._lock:
            flight = self.flight
            return SlotStatistics(flight is not None, flight.waiters if flight else 0)

    def _end(self, flight: Flight) -> None:
        """(Under the lock) *flight* is no longer the slot's."""
        if self.flight is flight:
            self.flight = None

    @staticmethod
    def _wake(flight: Flight) -> None:
        """Wake *flight*'s waiters (after the lock is released)."""
        flight.done.set()
        if flight.event is not None:
            flight.event.set()

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's threads, and so its flight, are gone."""
        self._lock = threading.Lock()
        self.flight = None


class TokenSlot(FlightSlot):
    """The current token for one cache key, and the flight fetching its successor."""

    __slots__ = ("_known", "_refused", "token", "token_generation")

    def __init__(self) -> None:
        super().__init__()
        self.token: Token | None = None
        #: The generation in which the current token was requested.
        self.token_generation = 0
        #: Refused tokens -> the generation their first refusal began: never taken from a
        #: shared cache again, and every later 401 for one of them waits for the same
        #: renewal. The most recent ones are kept.
        self._refused: OrderedDict[str, int] = OrderedDict()
        #: Tokens this slot held or saw refused, most recent last, for redaction.
        self._known: deque[str] = deque(maxlen=KNOWN_TOKENS)

    def land(self, flight: Flight, token: Token | None, error: BaseException | None) -> None:
        """End *flight*: store its token (if any) and wake its waiters.

        Neither a token nor an error means the owner was cancelled: waiters try again.
        """
        with self._lock:
            # A token requested before a refusal that came in meanwhile goes to the flight's
            # waiters (their requests were made before it too) but is not kept: the refusal
            # may have been a revocation that this token did not outlive either, and the
            # refused request's retry is already bound to request one after the refusal.
            if token is not None and flight.generation == self.generation:
                self._put(token, flight.generation)
            self._end(flight)
            flight.token, flight.error = token, error
        self._wake(flight)

    def start_ahead(
        self, due: Token, loop: object, event_factory: Callable[[], Any] | None
    ) -> Flight | None:
        """A new flight to refresh *due* ahead of its expiry, owned by the caller; ``None``
        when a flight is in progress already or *due* is no longer the current token."""
        with self._lock:
            dead = self._dead_flight()
            flight = None
            if self.flight is None and self.token is due:
                event = event_factory() if event_factory is not None else None
                flight = self.flight = Flight(self.generation, loop, event)
        if dead is not None:
            self._wake(dead)
        return flight

    def abandon(self, flight: Flight) -> None:
        """End *flight* as cancelled (its waiters try again) unless it has ended: for work
        run in the background that may never have started."""
        if not flight.done.is_set():
            self.land(flight, None, None)

    def put(self, token: Token) -> None:
        """Store a token fetched outside any flight."""
        with self._lock:
            self._put(token, self.generation)

    def _put(self, token: Token, generation: int) -> None:
        self.token, self.token_generation = token, generation
        self._known.append(token.access_token)

    def invalidate(self, token: Token) -> tuple[bool, int]:
        """A resource server refused *token*: forget it if it is the current one.

        Returns whether it was forgotten, and the minimum generation of the retry's token
        (the 401 rule, in this module's docstring).
        """
        with self._lock:
            value = token.access_token
            first = self._refused.get(value)
            if first is not None:
                self._refused.move_to_end(value)
                return False, first
            self.generation += 1
            self._refused[value] = self.generation
            while len(self._refused) > KNOWN_TOKENS:
                self._refused.popitem(last=False)
            self._known.append(value)
            current = self.token
            if current is not None and current.access_token == value:
                self.token = None
                return True, self.generation
            return False, self.generation

    def token_since(self, generation: int) -> Token | None:
        """The current token if it was requested in *generation* or later, else ``None``."""
        with self._lock:
            token, since = self.token, self.token_generation
        return token if since >= generation else None

    def was_refused(self, access_token: str) -> bool:
        """Whether a resource server refused *access_token* (among the recent ones)."""
        return access_token in self._refused

    def known_tokens(self) -> tuple[str, ...]:
        """The tokens this slot held or saw refused (the most recent ones), to redact."""
        with self._lock:
            current = self.token
            known = tuple(self._known)
        return (*known, current.access_token) if current is not None else known


class MetadataSlot(FlightSlot):
    """An issuer's authorization server metadata, and the flight fetching it (``_discovery``):
    one fetch per issuer for every auth object, thread and task of the process."""

    __slots__ = ("metadata",)

    def __init__(self) -> None:
        super().__init__()
        self.metadata: ServerMetadata | None = None

    def land(self, flight: Flight, metadata: ServerMetadata | None,
             error: BaseException | None) -> None:
        """End *flight* with *metadata* (kept), or *error* (given to its waiters only), or
        neither (the owner was cancelled: waiters try again)."""
        with self._lock:
            if metadata is not None:
                self.metadata = metadata
            self._end(flight)
            flight.error = error
        self._wake(flight)


class MemoryCache:
    """The in-process token cache: one :class:`TokenSlot` per cache key.

    Auth objects with the same token URL, client id, scope, extra fields and secret share a
    slot, and with it their token and their token requests. At most *maxsize* keys are kept;
    the least recently used is dropped first (objects still holding its slot keep it).
    """

    def __init__(self, maxsize: int = 1024) -> None:
        self._slots: OrderedDict[str, TokenSlot] = OrderedDict()
        self._lock = threading.Lock()
        self._maxsize = maxsize
        #: Issuer -> its metadata (``_discovery``); a few per process.
        self._metadata: dict[str, MetadataSlot] = {}
        reset_in_child(self)

    def metadata_slot(self, issuer: str) -> MetadataSlot:
        """The metadata slot of *issuer*, created on first use (kept as long as the cache)."""
        with self._lock:
            slot = self._metadata.get(issuer)
            if slot is None:
                slot = self._metadata[issuer] = MetadataSlot()
            return slot

    def slot(self, key: str) -> TokenSlot:
        """The slot for *key*, created on first use."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = TokenSlot()
                while len(self._slots) > self._maxsize:
                    self._slots.popitem(last=False)
            else:
                self._slots.move_to_end(key)
            return slot

    def clear(self) -> None:
        """Forget every token (auth objects already holding a slot keep theirs)."""
        with self._lock:
            self._slots.clear()
            self._metadata.clear()

    def reset_after_fork(self) -> None:
        """In a forked child: a parent's thread may have held the lock."""
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<MemoryCache keys={len(self._slots)}>"

#: The process-wide default cache.
default_cache = MemoryCache()
