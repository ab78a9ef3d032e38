"""What every adapter shares: construction, repr, token on this thread, error translation."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Protocol, Self, TypeVar, Unpack, cast
from urllib.parse import urlsplit

from oauth_cc_auth._actions import TransportFailure
from oauth_cc_auth._background import AsyncSend, Background
from oauth_cc_auth._caches import TokenCache, open_cache, without_password
from oauth_cc_auth._client_auth import ClientAuthOptions
from oauth_cc_auth._config import build_config
from oauth_cc_auth._discovery import ServerMetadata
from oauth_cc_auth._drivers import run_async, run_sync
from oauth_cc_auth._flow import TokenManager
from oauth_cc_auth._fork import reset_in_child
from oauth_cc_auth._messages import TokenHTTPResponse, TokenRequest
from oauth_cc_auth._settings import from_environ, from_mapping
from oauth_cc_auth._shared import unsealable
from oauth_cc_auth._slots import MemoryCache
from oauth_cc_auth._token import Token
from oauth_cc_auth.errors import AuthError, ConfigurationError
from oauth_cc_auth.providers._base import Provider

__all__ = ["AsyncSend", "AuthOptions", "ClientCredentialsBase", "ConfigOptions",
           "mounted_session"]

T = TypeVar("T")


class _Mountable(Protocol):
    """A session of requests or niquests (their API is the same; neither is imported here)."""

    cert: Any

    def mount(self, prefix: str, adapter: Any) -> None: ...


SessionT = TypeVar("SessionT", bound=_Mountable)


def mounted_session(
    session: SessionT, adapter: Any, cert: str | tuple[str, str] | None
) -> SessionT:
    """*session* made the token session of the requests and niquests adapters: *adapter* for
    both schemes, and the client certificate (``cert=``, RFC 8705) presented on them."""
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if cert is not None:
        session.cert = cert
    return session



class ConfigOptions(ClientAuthOptions, total=False):
    """The options :func:`build_config` validates."""

    provider: str | Provider
    environment: str | None
    token_url: str | None
    issuer: str | None
    scope: str | Sequence[str] | None
    extra: Mapping[str, Any] | None
    leeway: float
    auth_method: Any
    timeout: float
    max_retries: int
    backoff: float
    max_retry_after: float
    insecure_transport: bool
    renew_on: Iterable[int]
    max_response_bytes: int
    dpop: bool | None
    dpop_key: Any
    refresh_ahead: bool


class AuthOptions(ConfigOptions, total=False):
    """Keyword options shared by every adapter's ``ClientCredentialsAuth``."""

    cache: MemoryCache | TokenCache | str | None
    clock: Callable[[], float]


class ClientCredentialsBase:
    """Configuration, token state and error translation of an adapter."""

    #: Core error class -> the adapter's subclass of it (also its HTTP library's error).
    _error_classes: ClassVar[Mapping[type[AuthError], type[AuthError]]] = {}

    def __init__(
        self,
        client_id: str | int,
        client_secret: str | None = None,
        *,
        cache: MemoryCache | TokenCache | str | None = None,
        clock: Callable[[], float] = time.monotonic,
        **options: Unpack[ConfigOptions],
    ) -> None:
        self._config = build_config(client_id, client_secret, **options)
        #: Statuses after which the token is renewed and the request re-sent (read per request).
        self._renew_on = self._config.renew_on
        #: A cache this object opened from a URL, and so closes.
        self._owned_cache: TokenCache | None = None
        unsealed = self._config.authentication.sealing_material is None
        if unsealed and isinstance(cache, str) and urlsplit(cache).scheme != "memory":
            raise unsealable(without_password(cache))
        if isinstance(cache, str):
            cache = self._owned_cache = open_cache(cache)
        elif cache is not None and not isinstance(cache, (MemoryCache, TokenCache)):
            raise ConfigurationError(
                f"cache must be a MemoryCache, a TokenCache or a URL, not {type(cache).__name__}"
            )
        try:
            self._manager = TokenManager(self._config, cache=cache, clock=clock)
        except ConfigurationError:
            self._close_cache()
            raise
        #: The refreshes ahead this object runs in the background (DESIGN §7 "Renewal").
        self._background = Background()
        #: The sync token client the adapter opened itself on first use (a requests or
        #: niquests ``Session``, an httpx ``Client``): closed by :meth:`close`, set aside in a
        #: forked child. ``None``: none opened (or the adapter opens none).
        self._own: Any = None
        self._lock = threading.Lock()
        reset_in_child(self)

    def reset_after_fork(self) -> None:
        """In a forked child: keep the parent's token clients, unused, in ``_inherited``."""
        _inherited.extend(self._forget_parent_clients())

    def _forget_parent_clients(self) -> list[object]:
        """In a forked child: stop using the token clients opened in the parent, whose
        keep-alive connections the parent still uses, and return them (an adapter with
        other clients of its own overrides this): the child opens its own."""
        self._lock = threading.Lock()
        own, self._own = self._own, None
        return [own] if own is not None else []

    def _opened(self, open_client: Callable[[], T]) -> T:
        """The sync token client this object opened itself: *open_client*'s, on first use
        (called under the object's lock)."""
        own = self._own
        if own is None:
            with self._lock:
                if self._own is None:
                    self._own = open_client()
                own = self._own
        return cast(T, own)

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any], **kwargs: Any) -> Self:
        """Build from a mapping with the constructor's names as keys.

        Keys: ``client_id``, ``client_secret`` or ``client_secret_file`` (a file holding the
        secret; one trailing newline stripped), ``provider``, ``environment``, ``token_url``
        or ``issuer``, ``scope``, ``extra`` (a mapping) and/or ``extra_<field>``, ``leeway``,
        ``timeout``, ``max_retries``, ``backoff``, ``max_retry_after``, ``max_response_bytes``,
        ``auth_method``, ``insecure_transport``, ``cache``, ``renew_on`` (a list, or text
        such as ``"401,403"``); for private_key_jwt ``private_key`` or
        ``private_key_file``, ``private_key_id``, ``signing_alg``, ``certificate`` or
        ``certificate_file``, ``assertion_audience``, ``assertion_lifetime``, or
        ``client_assertion_file``; for mutual TLS ``cert_file`` (and ``cert_key_file``), or
        ``cert`` (a path, or a two-item list); for DPoP ``dpop`` or ``dpop_key`` /
        ``dpop_key_file``. *kwargs* (``session=``, ``client=``,
        ``cache=``...) are passed on to the constructor.

        Raises:
            ConfigurationError: a key is unknown or missing, or a value is malformed.
        """
        client_id, secret, options = from_mapping(mapping)
        return cls(client_id, secret, **{**options, **kwargs})

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, prefix: str = "OAUTH_CC_", **kwargs: Any
    ) -> Self:
        """Build from environment variables: ``OAUTH_CC_CLIENT_ID``, ``OAUTH_CC_CLIENT_SECRET``
        or ``OAUTH_CC_CLIENT_SECRET_FILE``, ``OAUTH_CC_PROVIDER``, ``OAUTH_CC_ENVIRONMENT``,
        ``OAUTH_CC_TOKEN_URL`` or ``OAUTH_CC_ISSUER``, ``OAUTH_CC_SCOPE``,
        ``OAUTH_CC_EXTRA_<FIELD>`` (the field name lower-cased), ``OAUTH_CC_AUTH_METHOD``,
        ``OAUTH_CC_PRIVATE_KEY_FILE``,
        ``OAUTH_CC_PRIVATE_KEY_ID``, ``OAUTH_CC_SIGNING_ALG``, ``OAUTH_CC_CERTIFICATE_FILE``,
        ``OAUTH_CC_CLIENT_ASSERTION_FILE``, ``OAUTH_CC_CERT_FILE``,
        ``OAUTH_CC_CERT_KEY_FILE``, ``OAUTH_CC_DPOP``, ``OAUTH_CC_DPOP_KEY_FILE`` and the
        other keys of :meth:`from_config`,
        upper-cased.

        Raises:
            ConfigurationError: a variable is unknown or missing, or a value is malformed.
        """
        client_id, secret, options = from_environ(environ, prefix)
        return cls(client_id, secret, **{**options, **kwargs})

    def _close_cache(self) -> None:
        if self._owned_cache is not None:
            self._owned_cache.close()

    def close(self) -> None:
        """Stop the token refreshes running in the background, and close the sync token
        client and the cache the auth object opened itself (not ones given to it). The
        clients of async flows are closed by ``aclose()`` (aiohttp's also with their event
        loop; httpx's, httpx2's and niquests' last one token request anyway)."""
        self._background.stop()
        self._close_cache()
        self._close_own()

    def _close_own(self) -> None:
        own, self._own = self._own, None
        if own is not None:
            own.close()

    async def _aclose_common(self) -> None:
        """What every adapter's ``aclose()`` does first: the background refreshes stopped
        (this loop's tasks awaited), the cache the object opened closed."""
        await self._background.astop()
        if self._owned_cache is not None:
            await self._owned_cache.aclose()

    @property
    def provider(self) -> Provider:
        """The provider this object speaks to."""
        return self._config.provider

    @property
    def token_url(self) -> str | None:
        """The token endpoint; with ``issuer=``, the one its metadata names (``None`` until
        the first token request has fetched the metadata)."""
        resolved = self._manager.resolved
        return resolved.client.token_url if resolved is not None else None

    @property
    def issuer(self) -> str | None:
        """The authorization server's issuer, when configured with ``issuer=``."""
        return self._config.issuer

    @property
    def metadata(self) -> ServerMetadata | None:
        """With ``issuer=``: the server's metadata once fetched (on the first token request;
        shared by every auth object of the process with that issuer), else ``None``."""
        slot = self._manager.metadata_slot
        return slot.metadata if slot is not None else None

    @property
    def cert(self) -> str | tuple[str, str] | None:
        """The client certificate (``cert=``) as given: a PEM file holding certificate and
        key, or a ``(certificate, key)`` pair of paths; ``None`` without one.

        A token bound to the certificate (RFC 8705 §3) is accepted by an API only from a
        client presenting the same certificate: ``session.cert = auth.cert`` (requests), or
        an ``ssl.SSLContext`` with ``load_cert_chain`` (httpx, see README "Mutual TLS")."""
        certificate = self._config.authentication.certificate
        return certificate.files if certificate is not None else None

    @property
    def token(self) -> Token | None:
        """The cached token, fresh or not; ``None`` before the first token request."""
        return self._manager.slot.token

    def __repr__(self) -> str:
        where = (f"issuer={self.issuer!r}" if self.issuer is not None
                 else f"token_url={self.token_url!r}")
        return (
            f"<{type(self).__module__}.{type(self).__name__} "
            f"client_id={self._config.client.client_id!r} provider={self.provider.name!r} "
            f"{where}>"
        )

    def _token_on_this_thread(
        self,
        send: Callable[[TokenRequest], TokenHTTPResponse | TransportFailure],
        min_generation: int = 0,
        request: object = None,
    ) -> Token:
        """The fresh token, or one obtained on this thread with *send* doing the I/O (of at
        least *min_generation*: the 401 rule of ``_slots``); errors raised as this adapter's
        classes, carrying *request* (the API request that needed the token), if given."""
        token = self._manager.fresh_token(min_generation)
        if token is not None:
            return token
        failure: AuthError | None = None
        try:
            return run_sync(self._manager.obtain(min_generation=min_generation), send,
                            spawn=self._background.in_thread(send))
        except AuthError as exc:
            failure = self._translate(exc, request)
        raise failure  # outside the except block: no __context__ to keep alive

    def _async_sender(self) -> tuple[AsyncSend, Callable[[], Awaitable[None]] | None]:
        """What one async token flow sends its requests with, and what closes it after
        (``None``: nothing to close); opened per flow, so in the flow's own task."""
        raise NotImplementedError(f"{type(self).__name__} has no async token requests")

    async def _token_in_this_task(self, min_generation: int = 0, request: object = None) -> Token:
        """:meth:`_token_on_this_thread` for a task of the running event loop, sending with
        what :meth:`_async_sender` opens, closed at the end, shielded from cancellation, so
        nothing outlives the request or its loop (a refresh ahead opens its own)."""
        token = self._manager.fresh_token(min_generation)
        if token is not None:
            return token
        send, cleanup = self._async_sender()
        spawn = self._background.in_task(self._async_sender, self._manager.shared)
        failure: AuthError | None = None
        try:
            return await run_async(self._manager, send, min_generation, spawn)
        except AuthError as exc:
            failure = self._translate(exc, request)
        finally:
            if cleanup is not None:
                import anyio

                with anyio.CancelScope(shield=True):
                    await cleanup()
        raise failure  # outside the except block: no __context__ to keep alive

    def _translate(self, exc: AuthError, request: object = None) -> AuthError:
        """*exc* as this adapter's subclass of its class, so that HTTP-library ``except``
        clauses catch it, carrying *request*; the core's instance is shared by waiters, so a
        copy is made."""
        for base, cls in self._error_classes.items():
            if isinstance(exc, base):
                new = cls(
                    exc.message,
                    status_code=exc.status_code,
                    error=exc.error,
                    description=exc.description,
                )
                if request is not None:
                    self._attach(new, request)
                return new
        return exc

    def _attach(self, error: AuthError, request: object) -> None:
        """Make *request* the ``.request`` of an adapter's *error* (the HTTP library's error
        API); an adapter whose errors carry their request overrides this."""


# -- fork ------------------------------------------------------------------------------------

#: The parent's token clients, in a forked child: never used, and never closed or collected
#: either, as closing could wait for a lock a parent thread held at the fork (closing a
#: socket's copy in the child would not disturb the parent; the process's exit closes them).
_inherited: list[object] = []
