"""OAuth 2.0 client credentials for requests: ``session.auth = ClientCredentialsAuth(...)``."""

from __future__ import annotations

import socket
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any, ClassVar, Unpack

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool
import urllib3.poolmanager
from requests.cookies import extract_cookies_to_jar
from requests.exceptions import UnrewindableBodyError
from requests.structures import CaseInsensitiveDict
from requests.utils import rewind_body

from oauth_cc_auth import errors
from oauth_cc_auth._actions import TransportFailure
from oauth_cc_auth._adapter import AuthOptions, ClientCredentialsBase, mounted_session
from oauth_cc_auth._limits import READ_CHUNK, Deadline, SocketHolder, exchange
from oauth_cc_auth._messages import TokenHTTPResponse, TokenRequest
from oauth_cc_auth._token import Token

__all__ = [
    "ClientCredentialsAuth",
    "TokenEndpointError",
    "TokenRequestError",
    "TokenResponseError",
]


class TokenRequestError(errors.TokenRequestError, requests.RequestException):
    """:class:`oauth_cc_auth.TokenRequestError` that is also a ``requests.RequestException``."""

    request = None
    response = None


class TokenResponseError(errors.TokenResponseError, requests.RequestException):
    """:class:`oauth_cc_auth.TokenResponseError` that is also a ``requests.RequestException``."""

    request = None
    response = None


class TokenEndpointError(errors.TokenEndpointError, requests.ConnectionError):
    """:class:`oauth_cc_auth.TokenEndpointError` that is also a ``requests.ConnectionError``."""

    request = None
    response = None


def _chunks(response: requests.Response) -> Iterator[bytes]:
    """The answer's body; a mounted adapter that built it in memory has no raw stream."""
    if response.raw is None:
        return iter((response.content or b"",))
    chunks: Iterator[bytes] = response.iter_content(READ_CHUNK)
    return chunks


def _shutter(response: requests.Response) -> Callable[[], None] | None:
    """How to interrupt a read of *response* blocked at the deadline: urllib3 (2.3+) shuts
    its socket down; ``None`` where it cannot (requests-mock, older urllib3)."""
    shutdown = getattr(response.raw, "shutdown", None)
    if shutdown is None or getattr(response.raw, "_sock_shutdown", None) is None:
        return None
    stop: Callable[[], None] = shutdown
    return stop


# -- the token session's connections: their socket for the attempt's watchdog ------------------

#: The attempt in progress on this thread (``holder``: its SocketHolder, or None).
_attempt = threading.local()


class _HandsOverSocket:
    """A urllib3 connection that, before reading an answer, gives its socket to the attempt
    in progress on this thread, so that a watchdog can interrupt a dripping status line."""

    sock: socket.socket | None

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        holder = getattr(_attempt, "holder", None)
        if holder is not None:
            holder.sock = self.sock
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_HandsOverSocket, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_HandsOverSocket, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _DeadlineAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, with connections that hand their socket to the attempt's watchdog;
    for the auth object's own token session only."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        # An HTTP(S) proxy's pools are urllib3's own; a SOCKS proxy's are left as they are.
        if manager.pool_classes_by_scheme is urllib3.poolmanager.pool_classes_by_scheme:
            manager.pool_classes_by_scheme = _POOLS
        return manager


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    # Passed as the token request's auth so that requests does not add .netrc credentials.
    return request


class ClientCredentialsAuth(ClientCredentialsBase, requests.auth.AuthBase):
    """A ``requests`` auth that fetches, caches and attaches a client-credentials token.

    Args:
        client_id: The client id; an int is sent as a JSON number by JSON providers.
        client_secret: The client secret (``None`` with private_key_jwt). Never logged,
            shown or sent anywhere but the token endpoint, as the provider documents.
        session: The ``requests.Session`` for token requests (proxies, ``verify``, ``cert``,
            mounted adapters), used as it is: with mutual TLS set its ``cert`` yourself. By
            default the auth object uses a session of its own (presenting ``cert=``); it
            never uses the session of the API request.
        **options: ``provider``, ``environment``, ``token_url``, ``scope``, ``extra``,
            ``leeway``, ``auth_method``, ``timeout``, ``max_retries``, ``backoff``,
            ``max_retry_after``, ``max_response_bytes``, ``insecure_transport``,
            ``private_key``, ``private_key_id``,
            ``signing_alg``, ``certificate``, ``assertion_audience``, ``assertion_lifetime``,
            ``client_assertion``, ``cert``, ``dpop``, ``dpop_key``, ``cache``, ``clock``: see
            README.

    Raises:
        ConfigurationError: at construction, for bad configuration.

    Example::

        session = requests.Session()
        session.auth = ClientCredentialsAuth("id", "secret", token_url="https://.../token")
        session.get("https://api.example.com/things")
    """

    _error_classes: ClassVar[Mapping[type[errors.AuthError], type[errors.AuthError]]] = {
        errors.TokenRequestError: TokenRequestError,
        errors.TokenResponseError: TokenResponseError,
        errors.TokenEndpointError: TokenEndpointError,
    }

    def __init__(
        self,
        client_id: str | int,
        client_secret: str | None = None,
        *,
        session: requests.Session | None = None,
        **options: Unpack[AuthOptions],
    ) -> None:
        super().__init__(client_id, client_secret, **options)
        self._session = session

    def __enter__(self) -> ClientCredentialsAuth:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the token exchange -------------------------------------------------------------------

    def _token_session(self) -> requests.Session:
        if self._session is not None:
            return self._session
        return self._opened(self._new_session)

    def _new_session(self) -> requests.Session:
        return mounted_session(requests.Session(), _DeadlineAdapter(), self.cert)

    def _send(self, request: TokenRequest) -> TokenHTTPResponse | TransportFailure:
        # The timeout bounds the whole attempt (DESIGN §7): requests' own bounds each read.
        # Our own session's connections hand their socket to *holder* before the status line
        # and headers are read, so the deadline bounds that wait too (a session given by the
        # user bounds it per read).
        config = self._config
        holder = SocketHolder()

        def send() -> requests.Response:
            _attempt.holder = holder
            try:
                return self._token_session().request(
                    request.method,
                    request.url,
                    data=request.body,
                    headers=dict(request.headers),
                    timeout=config.timeout,
                    allow_redirects=False,
                    auth=_no_auth,
                    stream=True,  # read by exchange(), within the deadline and the size cap
                )
            finally:
                _attempt.holder = None

        return exchange(
            send,
            _chunks,
            _shutter,
            deadline=Deadline(config.timeout),
            holder=holder,
            limit=config.max_response_bytes,
            errors=(requests.RequestException, OSError),
            undecodable=(requests.exceptions.ContentDecodingError,),
        )

    def get_token(self) -> Token:
        """The current token: the cached one while it is valid (one due for refresh is being
        refreshed in the background), else a new one.

        Raises:
            TokenRequestError, TokenResponseError, TokenEndpointError: as for a request.
        """
        return self._token_on_this_thread(self._send)

    # -- the API request ------------------------------------------------------------------------

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self._manager.fresh_token() or self.get_token()
        r.headers["Authorization"] = token.authorization
        url = r.url or ""
        renew_on = self._renew_on
        original = weakref.ref(r)  # not r itself: the hook, stored on r, would keep it alive
        hook: Callable[..., requests.Response]
        dpop = self._manager.dpop
        if token.dpop and dpop is not None:
            r.headers["DPoP"] = dpop.proof(r.method or "GET", url, token.access_token)
            hook = partial(self._dpop_answer, token=token, url=url, original=original)
        else:

            def hook(response: requests.Response, **kwargs: Any) -> requests.Response:
                if response.status_code not in renew_on:  # every answer passes here: leave
                    return response
                return self._renew(response, token, url, original(), **kwargs)

        # What register_hook() does, without its isinstance(hook, Callable) ABC check on
        # every request, for a hook that is a function.
        r.hooks["response"].append(hook)
        return r

    def _dpop_answer(
        self,
        response: requests.Response,
        token: Token,
        url: str,
        original: weakref.ref[requests.PreparedRequest],
        **kwargs: Any,
    ) -> requests.Response:
        """The answer to a request with a DPoP proof: its nonce remembered; after a 401
        demanding one, the request re-sent once with a proof carrying it (RFC 9449 §9; not a
        renewal); then, after a ``renew_on`` status, the renewal."""
        sent = response.request
        if self._manager.nonce_demanded(
            token, response.status_code, response.headers, sent.headers.get("Authorization"),
            sent.url or "", url,
        ):
            response = self._resend(response, lambda: token, **kwargs)
            dpop = self._manager.dpop
            if dpop is not None:
                dpop.note(sent.url or "", response.headers)
        if response.status_code not in self._renew_on:
            return response
        return self._renew(response, token, url, original(), **kwargs)

    def _renew(
        self,
        r: requests.Response,
        token: Token,
        url: str,
        original: requests.PreparedRequest | None,
        **kwargs: Any,
    ) -> requests.Response:
        """Re-send a request once with a new token after the resource server's 401 (or
        another ``renew_on`` status). *original* is the request the session sent (and
        follows redirects from).

        Like ``requests.auth.HTTPDigestAuth.handle_401``: the re-sent request goes straight
        to the connection, so no hook (this one included) sees its answer — never a loop.
        """
        sent = r.request
        min_generation = self._manager.refused(
            token, sent.headers.get("Authorization"), sent.url or "", url
        )
        if min_generation is None:
            return r
        renewed: list[Token] = []

        def new_token() -> Token:
            renewed.append(self._token_on_this_thread(self._send, min_generation))
            return renewed[0]

        retried = self._resend(r, new_token, **kwargs)
        if renewed and retried.is_redirect:
            # The session follows a redirect from a copy of the request it sent (the
            # original, or the redirect hop this answer is to): its copies get the new token
            # (requests strips it for another host), while it shows, in the history and in
            # requests-mock's, the token it was sent with.
            followed = [original] if original is not None else []
            if isinstance(sent, requests.PreparedRequest) and sent is not original:
                followed.append(sent)
            for request in followed:
                request.headers = _RenewedHeaders(request.headers, renewed[0].authorization)
        return retried

    def _resend(
        self, r: requests.Response, token_for: Callable[[], Token], **kwargs: Any
    ) -> requests.Response:
        """The request of answer *r* sent again with the token *token_for* gives (and a new
        DPoP proof for a DPoP-bound one); *r* itself when its body cannot be sent again."""
        sent = r.request
        prep = sent.copy()
        body = prep.body
        if body is not None and not isinstance(body, (bytes, str)):
            # A stream: re-sendable only if requests recorded where it started (a file).
            if not isinstance(getattr(prep, "_body_position", None), int):
                return r
            try:
                rewind_body(prep)
            except UnrewindableBodyError:
                return r
        # Release the connection of the first answer before sending again.
        r.content  # noqa: B018
        r.close()
        cookies = prep._cookies  # type: ignore[attr-defined]
        extract_cookies_to_jar(cookies, sent, r.raw)  # type: ignore[no-untyped-call]
        prep.prepare_cookies(cookies)
        token = token_for()
        prep.headers["Authorization"] = token.authorization
        dpop = self._manager.dpop
        if dpop is not None and token.dpop:
            prep.headers["DPoP"] = dpop.proof(prep.method or "GET", prep.url or "",
                                              token.access_token)
        retried: requests.Response = r.connection.send(prep, **kwargs)
        retried.history.append(r)
        retried.request = prep
        return retried


class _RenewedHeaders(CaseInsensitiveDict[str]):
    """The headers of a request as it was sent, whose copies carry the renewed token."""

    def __init__(self, sent: Mapping[str, str], authorization: str) -> None:
        super().__init__(sent)
        self._authorization = authorization

    def copy(self) -> CaseInsensitiveDict[str]:
        copied: CaseInsensitiveDict[str] = CaseInsensitiveDict(self)
        copied["Authorization"] = self._authorization
        return copied
