"""The shared-cache protocol: one token request for every process that shares a cache.

Behind the memory cache, a :class:`SharedTokens` takes the token another process stored, or
takes the cache's lock, looks again, fetches and stores: the steps are ``CacheCall`` actions a
driver performs. Entries are sealed (``_sealed``) with a key derived from the client's secret
or private key. A cache that fails is left alone for :data:`SHARED_RETRY_DELAY` seconds, with
one warning: a cache failure is never a request failure.

With ``issuer=``, the issuer's metadata is shared too (:meth:`SharedTokens.metadata`): one
metadata request per fleet and :data:`METADATA_TTL`. Its entry is under a key of its own,
sealed like tokens although metadata is public: not for secrecy but so that whoever can
write to the cache cannot name another token endpoint (to which the client would send its
credentials). It is read as a fetched document is (``read_metadata``); one that cannot be
read is ignored and the metadata fetched. The protocol is the tokens' (its own lock too:
processes starting at once make one request).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, TypeVar

from oauth_cc_auth import _telemetry
from oauth_cc_auth._actions import Action, CacheCall, CacheFailure, Outcome, Sleep
from oauth_cc_auth._config import Config
from oauth_cc_auth._discovery import ServerMetadata, metadata_document, metadata_urls, read_metadata
from oauth_cc_auth._token import Token
from oauth_cc_auth._token_cache import TokenCache
from oauth_cc_auth.errors import ConfigurationError

if TYPE_CHECKING:
    from oauth_cc_auth._exchange import Redactor
    from oauth_cc_auth._sealed import Sealer

__all__ = [
    "LOCK_POLL_INTERVAL",
    "MAX_METADATA_ENTRY_BYTES",
    "METADATA_TTL",
    "SHARED_RETRY_DELAY",
    "SharedTokens",
    "unsealable",
]

logger = logging.getLogger("oauth_cc_auth")

#: After a shared cache fails, the memory cache alone is used for this many seconds.
SHARED_RETRY_DELAY = 30.0
#: How often a process waiting for another's token request looks for its token.
LOCK_POLL_INTERVAL = 0.025
#: How long an issuer's metadata is kept in a shared cache (each process keeps its own copy
#: for its life): a day, so that a changed token endpoint reaches new processes.
METADATA_TTL = 24 * 3600.0
#: Metadata entries are neither stored nor read beyond this size (the file cache's limit).
MAX_METADATA_ENTRY_BYTES = 64 * 1024
#: What metadata entries are sealed for (tokens: nothing), so one is never read as the other.
_METADATA = b"metadata"

Flow = Generator[Action, Outcome, Token]
T = TypeVar("T")


def unsealable(cache: str) -> ConfigurationError:
    """The error for a shared cache with no key material to encrypt its entries with."""
    return ConfigurationError(
        f"the shared cache {cache} encrypts tokens with a key derived from the client secret "
        "or private key; an external client_assertion has neither: use the memory cache"
    )


class SharedTokens:
    """One client's use of a shared :class:`TokenCache` (raises :func:`unsealable` when the
    client has no key material to seal entries with)."""

    def __init__(
        self,
        cache: TokenCache,
        config: Config,
        *,
        clock: Callable[[], float],
        redactor: Redactor,
        was_refused: Callable[[str], bool],
    ) -> None:
        if config.authentication.sealing_material is None:
            raise unsealable(cache.name)
        self.cache = cache
        self._config = config
        self._clock = clock
        self._redact = redactor
        #: Tokens a resource server refused are never taken from the cache again.
        self._was_refused = was_refused
        self._sealer: Sealer | None = None
        self._down_until = 0.0  # time.monotonic(): skip the cache until then
        self._failures = 0  # how many times the cache failed

    def usable(self) -> bool:
        """Whether to use the cache now (not within :data:`SHARED_RETRY_DELAY` of a failure)."""
        return time.monotonic() >= self._down_until

    def refresh(self, fetch: Callable[[], Flow]) -> Flow:
        """The token another process stored, or one *fetch* gets under the cache's lock (or
        after waiting for the lock in vain), stored for the others."""

        def entry(token: Token) -> tuple[bytes, float | None]:
            now = self._clock()
            ttl = None if token.expires_at is None else token.expires_at - now
            return self._seal().seal(token, now), ttl

        # For ``oauth_cc_auth.shared_cache``: a hit, a miss (fetched here) or an error (the
        # cache failed on the way: loading, locking or storing).
        failures, fetched = self._failures, False

        def counted_fetch() -> Flow:
            nonlocal fetched
            fetched = True
            return (yield from fetch())

        try:
            return (yield from self._one_for_all(
                "token", self._config.cache_key, self._load, counted_fetch, entry))
        finally:
            result = ("error" if self._failures != failures else "miss" if fetched else "hit")
            _telemetry.shared_cache(self._config.provider.name, result)

    def metadata(
        self, fetch: Callable[[], Generator[Action, Outcome, ServerMetadata]]
    ) -> Generator[Action, Outcome, ServerMetadata]:
        """The issuer's metadata another process stored, or what *fetch* gets under the
        cache's lock (as :meth:`refresh`), stored for the others for :data:`METADATA_TTL`
        seconds."""
        issuer = str(self._config.issuer)
        key = self.metadata_key

        def load() -> Generator[Action, Outcome, ServerMetadata | None]:
            stored = self._read_metadata(issuer, (yield from self._entry(key)))
            if stored is not None:
                logger.debug("metadata of issuer %s taken from %s", issuer, self.cache.name)
            return stored

        def entry(metadata: ServerMetadata) -> tuple[bytes, float | None] | None:
            sealed = self._seal().seal_bytes(json.dumps({
                "source": metadata.source,
                "expires_at": time.time() + METADATA_TTL,
                "document": metadata_document(metadata).decode(),
            }).encode(), _METADATA)
            return (sealed, METADATA_TTL) if len(sealed) <= MAX_METADATA_ENTRY_BYTES else None

        return (yield from self._one_for_all("metadata", key, load, fetch, entry))

    def _one_for_all(
        self,
        what: str,
        key: str,
        load: Callable[[], Generator[Action, Outcome, T | None]],
        fetch: Callable[[], Generator[Action, Outcome, T]],
        entry: Callable[[T], tuple[bytes, float | None] | None],
    ) -> Generator[Action, Outcome, T]:
        """What *load* finds under *key*, or what *fetch* gets under the lock of *key* (or
        after waiting for it in vain), stored as *entry* makes it (``None``: not stored)."""
        cache = self.cache
        found = yield from load()
        if found is not None:
            return found
        # Waiting for another process's request is measured in real time.
        deadline = time.monotonic() + cache.lock_timeout
        while self.usable():
            taken = yield CacheCall("lock", cache, key)
            if isinstance(taken, CacheFailure):
                self._failed(taken)
                break
            # Stored by the holder we waited for, or by one that finished just before we took
            # the lock: either way no request of ours.
            found = yield from load()
            if found is not None:
                return found
            if taken:
                break
            if time.monotonic() >= deadline:
                logger.warning("no %s in %s after waiting %.0f s for its lock; fetching",
                               what, cache.name, cache.lock_timeout)
                break
            yield Sleep(LOCK_POLL_INTERVAL)
        value = yield from fetch()
        stored = entry(value) if self.usable() else None
        if stored is not None:
            outcome = yield CacheCall("store", cache, key, *stored)
            if isinstance(outcome, CacheFailure):
                self._failed(outcome)
        return value

    def _entry(self, key: str) -> Generator[Action, Outcome, bytes | None]:
        """The entry stored under *key*, if any; a failing cache counts as an outage."""
        outcome = yield CacheCall("load", self.cache, key)
        if isinstance(outcome, CacheFailure):
            self._failed(outcome)
            return None
        self._recovered()
        return outcome if isinstance(outcome, bytes) else None

    def _load(self) -> Generator[Action, Outcome, Token | None]:
        blob = yield from self._entry(self._config.cache_key)
        if blob is None:
            return None
        now = self._clock()
        token = self._seal().open(blob, now, self._config.leeway)
        if token is None:
            logger.debug("ignoring a token cache entry that is expired or cannot be read")
            return None
        if self._was_refused(token.access_token) or not token.is_fresh(now):
            return None
        logger.debug("token for client %s taken from %s", self._config.client.client_id,
                     self.cache.name)
        return token

    @property
    def metadata_key(self) -> str:
        """The key of the issuer's metadata entry: hex, as the caches take, and apart from
        the token's (per client, as the entries are sealed with the client's key)."""
        document = json.dumps(["metadata", self._config.issuer, self._config.cache_key])
        return hashlib.sha256(document.encode()).hexdigest()

    def _read_metadata(self, issuer: str, blob: bytes | None) -> ServerMetadata | None:
        """The metadata in the entry *blob*, or ``None`` (none, expired, or unreadable)."""
        if blob is None or len(blob) > MAX_METADATA_ENTRY_BYTES:
            return None
        plain = self._seal().open_bytes(blob, _METADATA)
        try:
            if plain is None:
                raise ValueError("not sealed with this client's key")
            entry = json.loads(plain)
            source, document = entry["source"], entry["document"]
            if source not in metadata_urls(issuer) or not isinstance(document, str):
                raise ValueError("not a metadata entry of this issuer")
            if not float(entry["expires_at"]) > time.time():
                return None
            return read_metadata(issuer, document.encode(), source)
        except (ValueError, KeyError, TypeError, ConfigurationError) as exc:
            logger.debug("ignoring a metadata entry of %s that cannot be read: %s",
                         self.cache.name, exc)
            return None

    def _failed(self, failure: CacheFailure) -> None:
        """Fall back to the memory cache for a while, with one warning per outage."""
        self._failures += 1
        if self._down_until == 0.0:
            logger.warning(
                "token cache %s unavailable (%s); using the in-process cache, retrying in %.0f s",
                self.cache.name,
                self._redact(failure.description),
                SHARED_RETRY_DELAY,
            )
        self._down_until = time.monotonic() + SHARED_RETRY_DELAY

    def _recovered(self) -> None:
        if self._down_until != 0.0:
            self._down_until = 0.0
            logger.warning("token cache %s is available again", self.cache.name)

    def _seal(self) -> Sealer:
        if self._sealer is None:
            from oauth_cc_auth._sealed import Sealer

            material = self._config.authentication.sealing_material
            if material is None:  # refused at construction; never reached
                raise ConfigurationError("no key material to encrypt shared-cache entries")
            self._sealer = Sealer(material, self._config.cache_key)
        return self._sealer
