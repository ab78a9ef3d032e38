"""The token flow of one configured client: the cached token, single flight, the attempts of
a token request, the stale-token fallback, and invalidation after a resource server's 401.

The flow performs no I/O. Getting a token is a generator (:meth:`TokenManager.obtain`) that
yields the actions of ``_actions`` and receives their outcomes; the adapters drive it with
their own HTTP client through ``_drivers`` (``run_sync`` for threads, ``run_async`` for async
tasks). So the protocol exists once. What one answer means is ``_exchange``'s; the token state
shared within the process (and the 401 rule of generations) is ``_slots``'; across processes,
``_shared``'s.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import random
import time
from collections.abc import Callable, Generator, Mapping
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from oauth_cc_auth import _telemetry
from oauth_cc_auth._actions import (
    Action,
    Outcome,
    Send,
    Sleep,
    Spawn,
    TransportFailure,
    Wait,
    Waited,
)
from oauth_cc_auth._config import Config
from oauth_cc_auth._discovery import (
    NotHere,
    ServerMetadata,
    judge_metadata,
    metadata_request,
    metadata_urls,
    resolve,
)
from oauth_cc_auth._dpop import DPoP, nonce_demanded
from oauth_cc_auth._exchange import Redactor, Retry, check_request, judge, token_request
from oauth_cc_auth._messages import TokenHTTPResponse, TokenRequest
from oauth_cc_auth._shared import SharedTokens
from oauth_cc_auth._slots import Flight, MemoryCache, MetadataSlot, default_cache
from oauth_cc_auth._token import Token
from oauth_cc_auth._token_cache import TokenCache
from oauth_cc_auth._urls import origin
from oauth_cc_auth.errors import AuthError, ConfigurationError, TokenEndpointError

__all__ = ["TokenManager", "origin"]

logger = logging.getLogger("oauth_cc_auth")

Clock = Callable[[], float]
Flow = Generator[Action, Outcome, Token]
T = TypeVar("T")

def _metadata_request(url: str) -> tuple[TokenRequest, tuple[str, ...]]:
    return metadata_request(url), ()


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
        #: With ``issuer=``: the slot of its metadata (``_discovery``), shared in the process.
        self.metadata_slot: MetadataSlot | None = (
            memory.metadata_slot(config.issuer) if config.issuer is not None else None
        )
        #: The configuration token requests are made with: with ``issuer=``, the endpoint and
        #: auth method the metadata gave (``None`` until then).
        self.resolved: Config | None = None if config.issuer is not None else config
        self.clock = clock
        self._rng = rng
        # (The slot is looked up at each use: a test may give the manager another one.)
        self.redactor = Redactor(config, check_request(config), lambda: self.slot.known_tokens())
        #: The cache shared with other processes, behind the memory cache; ``None``: none.
        self.shared = cache if isinstance(cache, TokenCache) else None
        #: DPoP proofs and the servers' nonces (RFC 9449); ``None``: Bearer tokens.
        self.dpop = DPoP(config.dpop) if config.dpop is not None else None
        self._shared_tokens = None if self.shared is None else SharedTokens(
            self.shared, config, clock=clock, redactor=self.redactor,
            was_refused=lambda access_token: self.slot.was_refused(access_token),
        )

    # The fast path: one attribute read and one comparison.
    def fresh_token(self, min_generation: int = 0) -> Token | None:
        """The cached token if it is to be used now, else ``None``; with *min_generation*
        (from :meth:`invalidate`), only one of that generation or later."""
        token = self.slot.token_since(min_generation) if min_generation else self.slot.token
        if token is not None and self.clock() < token.refresh_at:
            return token
        return None

    def longest_wait(self) -> float:
        """How long a caller waits for another caller's token request: as long as that
        request may take (with a shared cache, its lock wait too)."""
        lock_wait = self.shared.lock_timeout if self.shared is not None else 0.0
        return self.config.longest_token_request() + lock_wait

    # -- after the resource server's answer -----------------------------------------------------

    def refused(
        self, token: Token, sent_authorization: str | None, sent_url: str, meant_url: str
    ) -> int | None:
        """The resource server refused (401, or another ``renew_on`` status) a request sent
        to *sent_url* with *sent_authorization*, for which *token* was attached at
        *meant_url*: if that refusal is of our token, invalidate it and return the minimum
        generation of the retry's token (see :meth:`invalidate`); else ``None``, no retry.

        After redirects the answer is to the last hop: only a request that carried our token,
        at the origin it was meant for, counts — a redirect to another origin had the header
        stripped by the HTTP library and gets neither a token nor a retry.
        """
        if sent_authorization != token.authorization or origin(sent_url) != origin(meant_url):
            return None
        return self.invalidate(token)

    def nonce_demanded(
        self,
        token: Token,
        status: int,
        headers: Mapping[str, str],
        sent_authorization: object,
        sent_url: str,
        meant_url: str,
    ) -> bool:
        """A resource server answered *status* with *headers* to a request sent to *sent_url*
        with *sent_authorization*, for which the DPoP-bound *token* was attached at
        *meant_url*: remember the nonce it gives (RFC 9449 §8.2, any answer may), and say
        whether it is a 401 demanding one of that request (§9), to be re-sent once with a new
        proof: not a renewal."""
        dpop = self.dpop
        return (
            dpop is not None
            and token.dpop
            and dpop.note(sent_url, headers)
            and status == 401
            and nonce_demanded(headers)
            and sent_authorization == token.authorization
            and origin(sent_url) == origin(meant_url)
        )

    def invalidate(self, token: Token) -> int:
        """The resource server refused *token*: forget it, and return the *min_generation*
        to pass to :meth:`obtain` for the retry (the 401 rule, in ``_slots``)."""
        forgotten, generation = self.slot.invalidate(token)
        if forgotten:
            _telemetry.renewal(self.config.provider.name)
            logger.info(
                "token for client %s refused by the resource server; fetching a new one",
                self.config.client.client_id,
            )
        return generation

    # -- getting a token ------------------------------------------------------------------------

    def obtain(
        self,
        loop: object = None,
        event_factory: Callable[[], Any] | None = None,
        min_generation: int = 0,
    ) -> Flow:
        """Get a token: the cached one, the one another caller is fetching, or a new one.

        *loop* and *event_factory* are given by async drivers: the running event loop and a
        factory of that loop's events, so that same-loop waiters need no thread.
        *min_generation* is what :meth:`invalidate` returned, for the retry after a 401.
        """
        while True:
            token = self.fresh_token(min_generation)
            if token is not None:
                return token
            if self.resolved is None:
                yield from self.discover(loop, event_factory)
            due = self.due_token(min_generation)
            if due is not None:
                # Refresh ahead (DESIGN §7 "Renewal"): the due token is served while one
                # refresh runs, in the background where the driver can.
                flight = self.slot.start_ahead(due, loop, event_factory)
                if flight is None:
                    if self.slot.token is due:
                        return due  # another caller is refreshing it
                    continue  # replaced or refused meanwhile: look again
                work = _owning(self.slot.land, flight, self._refresh_ahead())
                abandon = functools.partial(self.slot.abandon, flight)
                if (yield Spawn(work, abandon, flight)):
                    return due
                return (yield from work)  # no background here: this caller refreshes
            flight, owner = self.slot.join(loop, event_factory)
            if not owner:
                try:
                    waited = yield Wait(flight, self.longest_wait())
                finally:
                    self.slot.leave(flight)
                if waited is Waited.WOULD_DEADLOCK:
                    token = yield from self._refresh()  # separately, as the driver says
                    self.slot.put(token)
                    return token
                if waited is Waited.TIMED_OUT:
                    raise TokenEndpointError(
                        f"the token request to {self.token_url} that this "
                        f"caller waited for did not end within {self.longest_wait():.3g} s"
                    )
                if flight.generation < min_generation:
                    continue  # requested before our 401: not to be trusted
                if flight.error is not None:
                    raise flight.error
                if flight.token is not None:
                    return flight.token
                continue  # the owner was cancelled: try again
            shared = self._shared_tokens
            work = (shared.refresh(self._refresh) if shared is not None and shared.usable()
                    else self._refresh())
            return (yield from _owning(self.slot.land, flight, work))

    def due_token(self, min_generation: int = 0) -> Token | None:
        """The cached token if it is due for refresh but still valid (and of at least
        *min_generation*), with refresh ahead on; else ``None``."""
        if not self.config.refresh_ahead:
            return None
        token = self.slot.token_since(min_generation) if min_generation else self.slot.token
        if token is None or token.expires_at is None:
            return None
        now = self.clock()
        return token if token.refresh_at <= now < token.expires_at else None

    def _refresh(self) -> Flow:
        try:
            config = self.resolved or self.config
            return (yield from _telemetry.token_request(
                self._fetch(), config.provider.name, urlsplit(config.client.token_url).hostname
            ))
        except TokenEndpointError as exc:
            # The endpoint is down or overloaded: a token that has not actually expired yet is
            # better than a failed request. Try the endpoint again a little later.
            return self._keep_stale(exc)

    def _refresh_ahead(self) -> Flow:
        """Refresh the due token (through the shared cache, if any). Whatever fails while
        it is still valid (the endpoint, or a refusal: a rotated secret) keeps it, retried a
        little later: nobody waits for this refresh, so nobody is to get its error."""
        shared = self._shared_tokens
        try:
            if shared is not None and shared.usable():
                return (yield from shared.refresh(self._refresh))
            return (yield from self._refresh())
        except AuthError as exc:
            return self._keep_stale(exc)

    def _keep_stale(self, exc: AuthError) -> Token:
        """The cached token, to be refreshed again a little later, after a refresh failed
        with *exc*; *exc* raised if that token has expired (or was refused meanwhile)."""
        stale, now = self.slot.token, self.clock()
        # (A token with no known expiry is never refreshed, only invalidated.)
        if stale is None or stale.expires_at is None or stale.is_expired(now):
            raise exc
        retry_at = now + min(30.0, (stale.expires_at - now) / 2)
        logger.warning(
            "token refresh failed (%s); using the cached token, which expires in %.0f s",
            exc,
            stale.expires_at - now,
        )
        return dataclasses.replace(stale, refresh_at=retry_at)

    @property
    def token_url(self) -> str:
        """The token endpoint; with ``issuer=``, the issuer until its metadata is known."""
        return (self.resolved or self.config).client.token_url

    def next_request(self) -> tuple[TokenRequest, tuple[str, ...]]:
        """The token request of the next attempt, and the secrets only it carries (its
        client assertion, its DPoP proof)."""
        request, carried = token_request(self.resolved or self.config)
        if self.dpop is None:
            return request, carried
        proof = self.dpop.proof(request.method, request.url)
        headers = {**request.headers, "DPoP": proof}
        return dataclasses.replace(request, headers=headers), (*carried, proof)

    def _fetch(self) -> Flow:
        config = self.resolved or self.config
        client_id = config.client.client_id
        dpop = self.dpop
        nonce_resent = False

        def attempt(
            request: TokenRequest, outcome: TokenHTTPResponse | TransportFailure,
            number: int, sent_at: float, carried: tuple[str, ...],
        ) -> Token | Retry:
            nonlocal nonce_resent
            logger.debug("requesting a token for client %s from %s (attempt %d)",
                         client_id, request.url, number + 1)
            if dpop is not None and isinstance(outcome, TokenHTTPResponse):
                noted = dpop.note(request.url, outcome.headers)
                if noted and not nonce_resent and _demands_nonce(config, outcome):
                    # RFC 9449 §8: re-sent once with the nonce; not one of the retries.
                    nonce_resent = True
                    return Retry(0.0, "the server demands a DPoP nonce", counts=False)
            return judge(config, request, outcome, attempt=number, sent_at=sent_at,
                         redactor=self.redactor.carrying(carried), rng=self._rng)

        # Built for every attempt, retries included: an assertion is never sent twice.
        return (yield from self._attempts("token request", self.next_request, attempt))

    def _attempts(
        self,
        what: str,
        build: Callable[[], tuple[TokenRequest, tuple[str, ...]]],
        verdict_of: Callable[
            [TokenRequest, TokenHTTPResponse | TransportFailure, int, float, tuple[str, ...]],
            T | Retry,
        ],
    ) -> Generator[Action, Outcome, T]:
        """Send the request *build* gives until *verdict_of* its outcome is not a
        :class:`Retry` (sleeping the retry's delay in between), and return that verdict."""
        attempt = 0
        while True:
            request, carried = build()
            sent_at = self.clock()
            outcome = yield Send(request)
            if not isinstance(outcome, (TokenHTTPResponse, TransportFailure)):
                raise TypeError(f"unexpected answer to Send: {outcome!r}")  # a driver bug
            verdict = verdict_of(request, outcome, attempt, sent_at, carried)
            if not isinstance(verdict, Retry):
                return verdict
            logger.info("%s to %s failed (%s); retrying in %.2f s",
                        what, request.url, verdict.failure, verdict.delay)
            attempt += verdict.counts
            if verdict.delay > 0:
                yield Sleep(verdict.delay)

    # -- discovery (issuer=) --------------------------------------------------------------------

    def discover(
        self, loop: object = None, event_factory: Callable[[], Any] | None = None
    ) -> Generator[Action, Outcome, ServerMetadata]:
        """The issuer's metadata: known in the process, fetched by another caller (waited
        for: single flight per issuer), stored by another process in the shared cache, or
        fetched now; then :attr:`resolved` is set."""
        slot = self.metadata_slot
        if slot is None:
            raise ConfigurationError("no issuer= configured: nothing to discover")
        metadata = slot.metadata
        while metadata is None:
            flight, owner = slot.join(loop, event_factory)
            if owner:
                metadata = slot.metadata  # landed between the look and the join
                if metadata is None:
                    shared = self._shared_tokens
                    fetch = (shared.metadata(self._fetch_metadata)
                             if shared is not None and shared.usable()
                             else self._fetch_metadata())
                    metadata = yield from _owning(slot.land, flight, fetch)
                else:
                    slot.land(flight, metadata, None)
                break
            # Two URLs at most, and with a shared cache the wait for its lock.
            longest = self.longest_wait() + self.config.longest_token_request()
            try:
                waited = yield Wait(flight, longest)
            finally:
                slot.leave(flight)
            if waited is Waited.WOULD_DEADLOCK:
                metadata = yield from self._fetch_metadata()  # separately, as for tokens
            elif waited is Waited.TIMED_OUT:
                raise TokenEndpointError(
                    f"the metadata request for issuer {self.config.issuer} that this caller "
                    f"waited for did not end within {longest:.3g} s"
                )
            elif flight.error is not None:
                raise flight.error
            else:
                metadata = slot.metadata  # None if the owner was cancelled: try again
        if self.resolved is None:
            self.resolved = resolve(self.config, metadata)
        return metadata

    def _fetch_metadata(self) -> Generator[Action, Outcome, ServerMetadata]:
        config = self.config
        issuer = str(config.issuer)
        missing: list[str] = []

        def verdict_of(
            request: TokenRequest, outcome: TokenHTTPResponse | TransportFailure,
            number: int, sent_at: float, carried: tuple[str, ...],
        ) -> ServerMetadata | NotHere | Retry:
            return judge_metadata(config, request.url, outcome, attempt=number,
                                  redactor=self.redactor, rng=self._rng)

        for url in metadata_urls(issuer):
            logger.debug("fetching the metadata of issuer %s from %s", issuer, url)
            found = cast(ServerMetadata | NotHere, (yield from self._attempts(
                "metadata request", functools.partial(_metadata_request, url), verdict_of
            )))
            if isinstance(found, ServerMetadata):
                logger.info("issuer %s: token endpoint %s (from %s)",
                            issuer, found.token_endpoint, url)
                return found
            missing.append(f"{found.url} answered {found.status}")
        raise ConfigurationError(
            f"no authorization server metadata for issuer {issuer}: {'; '.join(missing)}"
        )


def _demands_nonce(config: Config, response: TokenHTTPResponse) -> bool:
    """Whether the token endpoint refused the request for want of a DPoP nonce (RFC 9449
    §8: a 400 with ``error`` ``use_dpop_nonce``; some servers, authgent among them, answer
    it with a 401)."""
    if response.status_code not in (400, 401) or response.unread is not None:
        return False
    provider = config.provider
    try:
        error, _ = provider.decode_error(provider, response)
    except Exception:  # a provider's decoder failing on a malformed refusal
        return False
    return error == "use_dpop_nonce"


def _owning(
    land: Callable[[Flight, Any, BaseException | None], None],
    flight: Flight,
    work: Generator[Action, Outcome, T],
) -> Generator[Action, Outcome, T]:
    """Run *work* as the owner of *flight*, and *land* the flight with its result, its error,
    or neither when cancelled or closed (then its waiters try again)."""
    try:
        value = yield from work
    except Exception as exc:
        land(flight, None, exc)
        raise
    except BaseException:
        land(flight, None, None)
        raise
    land(flight, value, None)
    return value
