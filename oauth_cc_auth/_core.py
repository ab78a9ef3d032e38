"""The sans-IO core: token state, single flight, the token exchange with its retries.

The core performs no I/O. Getting a token is a generator (:meth:`TokenManager.obtain`) that
yields *actions* — :class:`Send` this token request, :class:`Sleep` this long, :class:`Wait`
for another caller's token request — and receives their results. The adapters drive it with
their own HTTP client through the drivers of ``_drivers`` (``run_sync`` for threads,
``run_async`` for async tasks). So the protocol — retries, parsing, expiry, single flight,
invalidation — exists once.

Single flight within the process is the :class:`~oauth_cc_auth._memory.TokenSlot`'s; across
processes, a shared cache's lock (``CacheLock``).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import math
import random
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, urlsplit

from oauth_cc_auth._caches import TokenCache
from oauth_cc_auth._config import Config, RetryPolicy
from oauth_cc_auth._memory import Flight, MemoryCache, default_cache
from oauth_cc_auth._messages import TokenHTTPResponse, TokenRequest
from oauth_cc_auth._token import Token
from oauth_cc_auth.errors import (
    AuthError,
    ConfigurationError,
    TokenEndpointError,
    TokenRequestError,
    TokenResponseError,
    redact,
)

if TYPE_CHECKING:
    from oauth_cc_auth._sealed import Sealer

__all__ = [
    "Action",
    "CacheFailure",
    "CacheLoad",
    "CacheLock",
    "CacheStore",
    "Outcome",
    "Send",
    "Sleep",
    "TokenManager",
    "TransportFailure",
    "Wait",
    "Waited",
    "describe",
    "origin",
    "unsealable",
]

logger = logging.getLogger("oauth_cc_auth")

#: After a shared cache fails, the memory cache alone is used for this many seconds.
SHARED_RETRY_DELAY = 30.0
#: How often a process waiting for another's token request looks for its token.
LOCK_POLL_INTERVAL = 0.025

Clock = Callable[[], float]


# -- actions the core asks an adapter to perform ---------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Send:
    """Send this token request; answer with a ``TokenHTTPResponse`` or ``TransportFailure``."""

    request: TokenRequest


@dataclasses.dataclass(frozen=True, slots=True)
class Sleep:
    """Sleep this many seconds (a retry backoff), then answer ``None``."""

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
    #: inside an async app). The drivers decide this; the core then fetches separately.
    WOULD_DEADLOCK = "would deadlock"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """RFC 6454 origin of *url*: scheme, host and port (the scheme's default filled in)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def describe(exc: BaseException) -> str:
    """What failed, for a ``TransportFailure`` or ``CacheFailure``: the exception's class and
    text, never the exception itself (an HTTP library's holds the request, and the secret)."""
    return f"{type(exc).__name__}: {exc}"


@dataclasses.dataclass(frozen=True, slots=True)
class CacheLoad:
    """Read the shared cache's entry; answer with its bytes, ``None`` or ``CacheFailure``."""

    cache: TokenCache
    key: str


@dataclasses.dataclass(frozen=True, slots=True)
class CacheStore:
    """Write a shared-cache entry; answer ``None`` or ``CacheFailure``."""

    cache: TokenCache
    key: str
    value: bytes = dataclasses.field(repr=False)
    ttl: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class CacheLock:
    """Try the shared cache's lock; answer ``True`` (taken), ``False`` or ``CacheFailure``.

    The driver keeps the lock and releases it when the flow ends, however it ends."""

    cache: TokenCache
    key: str


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


Action = Send | Sleep | Wait | CacheLoad | CacheStore | CacheLock
Outcome = TokenHTTPResponse | TransportFailure | CacheFailure | Waited | bytes | bool | None


# -- retries ---------------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 §10.2.3), or ``None``."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    import email.utils  # only for the rare HTTP-date form

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now())


def retry_delay(
    policy: RetryPolicy, attempt: int, retry_after: float | None, rng: Callable[[], float]
) -> float | None:
    """Seconds to wait before retry number *attempt* (0-based), or ``None`` to give up."""
    if attempt >= policy.max_retries:
        return None
    if retry_after is not None:
        return min(retry_after, policy.max_retry_after)
    # Exponential backoff with full jitter, so that a fleet does not retry in lockstep.
    return min(policy.max_backoff, policy.backoff * 2.0**attempt) * rng()


# -- the token manager ------------------------------------------------------------------------


def _secret_forms(secret: str) -> set[str]:
    """*secret* as an endpoint might echo it (raw, form-encoded, percent-encoded, JSON-escaped)
    and as a message might show it (escaped by ``repr`` inside single or double quotes)."""
    # repr() of a text holding both quote kinds escapes the single quotes: strip the 3-char
    # tail and the delimiters again to get the secret's own escaped form.
    in_single = repr(secret + "'\"")[1:-4]
    return {
        secret,
        quote_plus(secret),
        quote(secret, safe=""),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        in_single,
        in_single.replace("\\'", "'"),
        ascii(secret + "'\"")[1:-4],
    }


def _preview(value: object, limit: int = 80) -> str:
    """A short ``repr`` of a value from an answer, for a message (redacted after)."""
    try:
        text = repr(value)
    except RecursionError:
        return f"<a deeply nested {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: Stands in for the client assertion when the request is built at construction.
_PLACEHOLDER_ASSERTION = "e30.e30.checking-the-encoding"


def _check_request(config: Config) -> TokenRequest:
    """The token request built once at construction, so that credentials the provider cannot
    encode are a configuration error; raised outside the except block, as the encoding error
    holds them. Token requests themselves are built anew for every attempt."""
    client = config.client
    if config.authentication.uses_assertion:
        client = dataclasses.replace(client, client_assertion=_PLACEHOLDER_ASSERTION)
    try:
        return config.provider.build_request(client)
    except (UnicodeError, ValueError, TypeError) as exc:
        failure = type(exc).__name__
    raise ConfigurationError(
        f"the client id or secret cannot be encoded for the token request ({failure})"
    )


def unsealable(cache: str) -> ConfigurationError:
    """The error for a shared cache with no key material to encrypt its entries with."""
    return ConfigurationError(
        f"the shared cache {cache} encrypts tokens with a key derived from the client secret "
        "or private key; an external client_assertion has neither: use the memory cache"
    )


class TokenManager:
    """Obtains, caches and invalidates the token of one configured client."""

    def __init__(
        self,
        config: Config,
        *,
        cache: MemoryCache | TokenCache | None = None,
        clock: Clock = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        memory = cache if isinstance(cache, MemoryCache) else default_cache
        self.slot = memory.slot(config.cache_key)
        #: The cache shared with other processes, behind the memory cache; ``None``: none.
        self.shared = cache if isinstance(cache, TokenCache) else None
        self.clock = clock
        self._rng = rng
        if self.shared is not None and config.authentication.sealing_material is None:
            raise unsealable(self.shared.name)
        checked = _check_request(config)
        secret = config.client.client_secret
        self._secrets = _secret_forms(secret) if secret is not None else set()
        # A client_secret_basic header carries the secret too (base64).
        authorization = checked.headers.get("Authorization", "")
        if authorization:
            self._secrets.update({authorization, authorization.partition(" ")[2]})
        self._sealer: Sealer | None = None
        self._shared_down_until = 0.0  # time.monotonic(): skip the shared cache until then

    # The fast path: one attribute read and one comparison.
    def fresh_token(self, after: int = 0) -> Token | None:
        """The cached token if it is to be used now, else ``None``; with *after* (from
        :meth:`invalidate`), only one requested after that 401."""
        # The fast path reads one attribute; a retry's check takes the slot's lock.
        token = self.slot.token_since(after) if after else self.slot.token
        if token is not None and self.clock() < token.refresh_at:
            return token
        return None

    def longest_wait(self) -> float:
        """How long a caller waits for another caller's token request: as long as that
        request may take (with a shared cache, its lock wait too)."""
        lock_wait = self.shared.lock_timeout if self.shared is not None else 0.0
        return self.config.longest_token_request() + lock_wait

    def refused(
        self, token: Token, sent_authorization: str | None, sent_url: str, meant_url: str
    ) -> int | None:
        """The resource server refused (401, or another ``renew_on`` status) a request sent
        to *sent_url* with *sent_authorization*, for which *token* was attached at
        *meant_url*: if that refusal is of our token, invalidate it and return the generation
        for the retry (see :meth:`invalidate`); else ``None``, and no retry.

        After redirects the answer is to the last hop: only a request that carried our token,
        at the origin it was meant for, counts — a redirect to another origin had the header
        stripped by the HTTP library and gets neither a token nor a retry.
        """
        if sent_authorization != token.authorization or origin(sent_url) != origin(meant_url):
            return None
        return self.invalidate(token)

    def invalidate(self, token: Token) -> int:
        """The resource server answered 401 to a request that carried *token*.

        Returns the generation to pass to :meth:`obtain` as *after* for the retry: its token
        then comes from a token request made after the first 401 for *token* — never one
        already under way or landed meanwhile — and all 401s for *token* share it.
        """
        forgotten, generation = self.slot.invalidate(token)
        if forgotten:
            logger.info(
                "token for client %s refused by the resource server; fetching a new one",
                self.config.client.client_id,
            )
        return generation

    def obtain(
        self,
        loop: object = None,
        event_factory: Callable[[], Any] | None = None,
        after: int = 0,
    ) -> Generator[Action, Outcome, Token]:
        """Get a token: the cached one, the one another caller is fetching, or a new one.

        *loop* and *event_factory* are given by async drivers: the running event loop and a
        factory of that loop's events, so that same-loop waiters need no thread. *after* is
        what :meth:`invalidate` returned, for the retry after a 401.
        """
        while True:
            token = self.fresh_token(after)
            if token is not None:
                return token
            flight, owner = self.slot.join(loop, event_factory)
            if not owner:
                waited = yield Wait(flight, self.longest_wait())
                if waited is Waited.WOULD_DEADLOCK:
                    token = yield from self._refresh()  # separately, as the driver says
                    self.slot.put(token)
                    return token
                if waited is Waited.TIMED_OUT:
                    raise TokenEndpointError(
                        f"the token request to {self.config.client.token_url} that this "
                        f"caller waited for did not end within {self.longest_wait():.3g} s"
                    )
                if flight.generation < after:
                    continue  # requested before our 401: not to be trusted
                if flight.error is not None:
                    raise flight.error
                if flight.token is not None:
                    return flight.token
                continue  # the owner was cancelled: try again
            try:
                if self.shared is not None and self._shared_usable():
                    token = yield from self._shared_refresh(self.shared)
                else:
                    token = yield from self._refresh()
            except Exception as exc:
                self.slot.land(flight, None, exc)
                raise
            except BaseException:
                # Cancelled, or the generator was closed: no result, waiters try again.
                self.slot.land(flight, None, None)
                raise
            self.slot.land(flight, token, None)
            return token

    def _refresh(self) -> Generator[Action, Outcome, Token]:
        try:
            return (yield from self._fetch())
        except TokenEndpointError as exc:
            # The endpoint is down or overloaded: a token that has not actually expired yet is
            # better than a failed request. Try the endpoint again a little later.
            stale, now = self.slot.token, self.clock()
            # (A token with no known expiry is never refreshed, only invalidated.)
            if stale is None or stale.expires_at is None or stale.is_expired(now):
                raise
            retry_at = now + min(30.0, (stale.expires_at - now) / 2)
            logger.warning(
                "token refresh failed (%s); using the cached token, which expires in %.0f s",
                exc,
                stale.expires_at - now,
            )
            return dataclasses.replace(stale, refresh_at=retry_at)

    def build_request(self) -> tuple[TokenRequest, tuple[str, ...]]:
        """The token request of one attempt, and the secrets it carries beyond the configured
        ones (its client assertion, signed or read for this attempt alone)."""
        config = self.config
        client = config.client
        assertion = config.authentication.assertion(client.client_id, client.token_url)
        if assertion is None:
            return config.provider.build_request(client), ()
        client = dataclasses.replace(client, client_assertion=assertion)
        return config.provider.build_request(client), (assertion,)

    def _fetch(self) -> Generator[Action, Outcome, Token]:
        config = self.config
        attempt = 0
        while True:
            # Built for every attempt, retries included: an assertion is never sent twice.
            request, carried = self.build_request()
            logger.debug(
                "requesting a token for client %s from %s (attempt %d)",
                config.client.client_id,
                request.url,
                attempt + 1,
            )
            sent_at = self.clock()
            outcome = yield Send(request)
            retry_after: float | None = None
            if isinstance(outcome, TransportFailure):
                failure = self._redact(outcome.description, carried)
            elif isinstance(outcome, TokenHTTPResponse):
                status = outcome.status_code
                if outcome.unread is not None and status != 429 and status < 500:
                    raise self._unread(outcome)
                if 200 <= status < 300:
                    return self._token_from(outcome, sent_at, carried)
                if status != 429 and status < 500:
                    raise self._refusal(outcome, carried)
                failure = f"HTTP {status}"
                retry_after = parse_retry_after(outcome.headers.get("Retry-After"))
            else:  # pragma: no cover - a driver bug
                raise TypeError(f"unexpected answer to Send: {outcome!r}")
            delay = retry_delay(config.retry, attempt, retry_after, self._rng)
            if delay is None:
                raise TokenEndpointError(
                    f"token endpoint {request.url} failed after {attempt + 1} attempt(s): "
                    f"{failure}",
                    status_code=outcome.status_code
                    if isinstance(outcome, TokenHTTPResponse)
                    else None,
                )
            logger.info(
                "token request to %s failed (%s); retrying in %.2f s", request.url, failure, delay
            )
            attempt += 1
            if delay > 0:
                yield Sleep(delay)

    def _unread(self, response: TokenHTTPResponse) -> AuthError:
        """An answer not read to its end (too large, or its encoding undecodable): the class
        its status says (a 5xx or 429 is retried without reading its body)."""
        status = response.status_code
        what = (
            f"more than max_response_bytes={self.config.max_response_bytes}"
            if response.unread == "too large"
            else "a body whose Content-Encoding cannot be decoded"
        )
        message = (
            f"token endpoint {self.config.client.token_url} answered {status} with {what}; "
            "not read further"
        )
        if 400 <= status < 500:
            return TokenRequestError(message, status_code=status)
        return TokenResponseError(message, status_code=status)

    # -- the shared cache ----------------------------------------------------------------------

    def _shared_usable(self) -> bool:
        return self.shared is not None and time.monotonic() >= self._shared_down_until

    def _shared_failed(self, shared: TokenCache, failure: CacheFailure) -> None:
        """Fall back to the memory cache for a while, with one warning per outage."""
        if self._shared_down_until == 0.0:
            logger.warning(
                "token cache %s unavailable (%s); using the in-process cache, retrying in %.0f s",
                shared.name,
                self._redact(failure.description),
                SHARED_RETRY_DELAY,
            )
        self._shared_down_until = time.monotonic() + SHARED_RETRY_DELAY

    def _shared_ok(self, shared: TokenCache) -> None:
        if self._shared_down_until != 0.0:
            self._shared_down_until = 0.0
            logger.warning("token cache %s is available again", shared.name)

    def _seal(self) -> Sealer:
        if self._sealer is None:
            from oauth_cc_auth._sealed import Sealer

            material = self.config.authentication.sealing_material
            if material is None:  # refused at construction; never reached
                raise ConfigurationError("no key material to encrypt shared-cache entries")
            self._sealer = Sealer(material, self.config.cache_key)
        return self._sealer

    def _shared_load(self, shared: TokenCache) -> Generator[Action, Outcome, Token | None]:
        outcome = yield CacheLoad(shared, self.config.cache_key)
        if isinstance(outcome, CacheFailure):
            self._shared_failed(shared, outcome)
            return None
        self._shared_ok(shared)
        if not isinstance(outcome, bytes):
            return None
        now = self.clock()
        token = self._seal().open(outcome, now, self.config.leeway)
        if token is None:
            logger.debug("ignoring a token cache entry that is expired or cannot be read")
            return None
        if self.slot.was_refused(token.access_token) or not token.is_fresh(now):
            return None
        logger.debug("token for client %s taken from %s", self.config.client.client_id,
                     shared.name)
        return token

    def _shared_refresh(self, shared: TokenCache) -> Generator[Action, Outcome, Token]:
        """One token request for every process sharing the cache: take the token another
        process stored, or take the lock, check again, fetch and store."""
        key = self.config.cache_key
        token = yield from self._shared_load(shared)
        if token is not None:
            return token
        # Waiting for another process's token request is measured in real time.
        deadline = time.monotonic() + shared.lock_timeout
        while self._shared_usable():
            taken = yield CacheLock(shared, key)
            if isinstance(taken, CacheFailure):
                self._shared_failed(shared, taken)
                break
            # Stored by the holder we waited for, or by one that finished just before we took
            # the lock: either way no token request of ours.
            token = yield from self._shared_load(shared)
            if token is not None:
                return token
            if taken:
                break
            if time.monotonic() >= deadline:
                logger.warning("no token in %s after waiting %.0f s for its lock; fetching",
                               shared.name, shared.lock_timeout)
                break
            yield Sleep(LOCK_POLL_INTERVAL)
        token = yield from self._refresh()
        if self._shared_usable():
            now = self.clock()
            ttl = None if token.expires_at is None else token.expires_at - now
            outcome = yield CacheStore(shared, key, self._seal().seal(token, now), ttl)
            if isinstance(outcome, CacheFailure):
                self._shared_failed(shared, outcome)
        return token

    # -- reading answers ----------------------------------------------------------------------

    def _redact(self, text: str, extra: Iterable[str] = ()) -> str:
        """*text* without the secret, the request's assertion, or any token this client's
        slot held or saw refused, in any of the forms an echo or a ``repr`` gives them."""
        secrets = set(self._secrets)
        for value in (*extra, *self.slot.known_tokens()):
            secrets.update(_secret_forms(value))
        return redact(text, secrets)

    def _refusal(self, response: TokenHTTPResponse, carried: Iterable[str] = ()) -> AuthError:
        status = response.status_code
        url = self.config.client.token_url
        if not 400 <= status < 500:
            where = response.headers.get("Location")
            return TokenResponseError(
                f"token endpoint {url} answered {status}"
                + (" (a redirect; token requests are not redirected)" if where else ""),
                status_code=status,
            )
        try:
            error, description = self.config.provider.read_error(response)
        except Exception:  # a provider's decoder failing on a malformed refusal
            error = description = None
        error = self._redact(error, carried) if error else None
        description = self._redact(description, carried) if description else None
        message = f"token endpoint {url} refused the token request: HTTP {status}"
        if error:
            message += f" {error}"
        if description:
            message += f": {description}"
        return TokenRequestError(message, status_code=status, error=error, description=description)

    def _token_from(
        self, response: TokenHTTPResponse, sent_at: float, carried: Iterable[str] = ()
    ) -> Token:
        url = self.config.client.token_url
        unusable: TokenResponseError | None = None
        try:
            fields = self.config.provider.read_token(response)
            if not isinstance(fields, Mapping):
                raise TypeError(f"the provider read a {type(fields).__name__}, not a mapping")
        except (AuthError, ValueError) as exc:
            error = getattr(exc, "error", None)
            description = getattr(exc, "description", None)
            unusable = TokenResponseError(
                self._redact(str(exc), carried),
                status_code=response.status_code,
                error=self._redact(error, carried) if error else None,
                description=self._redact(description, carried) if description else None,
            )
        except Exception as exc:  # anything else a decoder raises on a malformed answer
            unusable = TokenResponseError(
                f"token endpoint {url} answered {response.status_code} with a body that "
                f"cannot be read ({type(exc).__name__})",
                status_code=response.status_code,
            )
        if unusable is not None:
            # Raised outside the except block: the provider's exception, which may hold the
            # answer's unredacted text, must not stay reachable as __context__.
            raise unusable
        access_token = fields.get("access_token")

        def bad(why: str) -> TokenResponseError:
            extra = (*carried, access_token) if isinstance(access_token, str) else carried
            return TokenResponseError(
                self._redact(f"token endpoint {url} answered {response.status_code} {why}", extra),
                status_code=response.status_code,
            )

        if not isinstance(access_token, str) or not access_token:
            raise bad("without an access_token")
        token_type = fields.get("token_type", "Bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise bad(f"with token_type {_preview(token_type)}; only Bearer tokens are supported")
        lifetime = _lifetime(fields.get("expires_in", None))
        if lifetime is False:
            raise bad(f"with an unusable expires_in {_preview(fields.get('expires_in'))}")
        if lifetime is None:
            lifetime = self.config.provider.default_lifetime
        scope = fields.get("scope")
        if isinstance(scope, str):  # shown by repr(token): never an echoed secret
            scope = self._redact(scope, (*carried, access_token))
        token = Token.issued(
            access_token,
            obtained_at=sent_at,
            lifetime=lifetime,
            leeway=self.config.leeway,
            token_type=token_type,
            scope=scope if isinstance(scope, str) else None,
            raw=fields,
        )
        logger.info(
            "obtained a token for client %s from %s (expires in %s s)",
            self.config.client.client_id,
            url,
            "?" if lifetime is None else f"{lifetime:g}",
        )
        return token


def _lifetime(value: object) -> float | bool | None:
    """``expires_in`` as seconds, ``None`` when absent, ``False`` when unusable."""
    if value is None:
        return None
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return False
    if isinstance(value, int) and not isinstance(value, bool) and value > 10**12:
        return False  # more than 30,000 years; and float() of a huge int overflows
    if not isinstance(value, (int, float)):
        return False
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        return False
    return seconds
