"""Token state in the process: the slot of each cache key and the flight refreshing it.

Single flight: a :class:`TokenSlot` holds the current token of one cache key and at most one
:class:`Flight`, the token request in progress. The first caller that finds no fresh token
starts a flight and does the request; everyone arriving meanwhile waits for that flight and
shares its token or its error. Only a caller arriving after a flight has ended starts another.
The slot's lock is held only to read and swap that state, never across I/O.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from oauth_cc_auth._token import Token

__all__ = ["Flight", "MemoryCache", "TokenSlot", "default_cache"]


class Flight:
    """One token request in progress, shared by everyone who needs its result."""

    __slots__ = ("done", "error", "event", "generation", "loop", "thread", "token")

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


class TokenSlot:
    """The current token for one cache key, and the flight fetching its successor."""

    __slots__ = (
        "__weakref__", "_lock", "flight", "generation", "rejected", "token", "token_generation"
    )

    def __init__(self) -> None:
        _live_slots.add(self)
        self._lock = threading.Lock()
        self.token: Token | None = None
        self.flight: Flight | None = None
        #: Counts the 401s that threw a token away.
        self.generation = 0
        #: The generation in which the current token was requested.
        self.token_generation = 0
        #: The last token a resource server refused: never taken from a shared cache again.
        self.rejected: str | None = None

    def join(self, loop: object, event_factory: Callable[[], Any] | None) -> tuple[Flight, bool]:
        """The flight in progress and ``False``, or a new one and ``True`` (the caller owns it)."""
        with self._lock:
            if self.flight is not None:
                return self.flight, False
            event = event_factory() if event_factory is not None else None
            flight = Flight(self.generation, loop, event)
            self.flight = flight
            return flight, True

    def land(self, flight: Flight, token: Token | None, error: BaseException | None) -> None:
        """End *flight*: store its token (if any) and wake its waiters.

        Neither a token nor an error means the owner was cancelled: waiters try again.
        """
        with self._lock:
            if token is not None:
                self._put(token, flight.generation)
            if self.flight is flight:
                self.flight = None
            flight.token, flight.error = token, error
        flight.done.set()
        if flight.event is not None:
            flight.event.set()

    def put(self, token: Token) -> None:
        """Store a token fetched outside any flight."""
        with self._lock:
            self._put(token, self.generation)

    def _put(self, token: Token, generation: int) -> None:
        self.token, self.token_generation = token, generation
        if token.access_token != self.rejected:
            self.rejected = None

    def invalidate(self, token: Token) -> tuple[bool, int]:
        """Forget *token* after a 401, unless it has been replaced already.

        Returns whether it was forgotten, and the generation a retry's token must come from.
        """
        with self._lock:
            self.rejected = token.access_token
            current = self.token
            if current is not None and current.access_token == token.access_token:
                self.token = None
                self.generation += 1
                return True, self.generation
            return False, self.token_generation

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's threads, and so its flight, are gone."""
        self._lock = threading.Lock()
        self.flight = None


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
        _live_caches.add(self)

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

    def __repr__(self) -> str:
        return f"<MemoryCache keys={len(self._slots)}>"


# Every slot and cache alive, for the child of a fork (a slot may outlive its cache).
_live_slots: weakref.WeakSet[TokenSlot] = weakref.WeakSet()
_live_caches: weakref.WeakSet[MemoryCache] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for cache in list(_live_caches):
        cache._lock = threading.Lock()
    for slot in list(_live_slots):
        slot.reset_after_fork()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)

#: The process-wide default cache.
default_cache = MemoryCache()
