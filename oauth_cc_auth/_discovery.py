"""Authorization server metadata (RFC 8414, and OpenID Connect Discovery 1.0) as pure
functions: the URLs to try for an issuer, what one answer means, the document read and
checked, and the client authentication method chosen from what the server offers.

Nothing here performs I/O or keeps state; the flow (``_flow``) fetches the documents with
the same ``Send``, timeout, retries and size cap as token requests, one fetch per issuer
and process (single flight, ``_slots.MetadataSlot``), and with a shared cache one per
fleet (``_shared.SharedTokens.metadata``).

What an answer means (:func:`judge_metadata`):

- 2xx: the document, read and checked (:func:`read_metadata`); unusable: ``ConfigurationError``.
- 404, 405, 410 (:data:`FALL_THROUGH`): no document at this URL; the next URL is tried (the
  OpenID Connect one after RFC 8414's), and after the last a ``ConfigurationError``.
- 429, 5xx, no answer: retried as token requests are (``Retry-After``, backoff, ``max_retries``);
  then ``TokenEndpointError``.
- Any other status (3xx: metadata is not redirected; 401, 403, ...): ``ConfigurationError``,
  as the issuer does not serve metadata where it is configured to.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from oauth_cc_auth._actions import TransportFailure
from oauth_cc_auth._config import Config, check_issuer, check_token_url
from oauth_cc_auth._exchange import Retry, check_request, retry_or_give_up
from oauth_cc_auth._messages import TokenHTTPResponse, TokenRequest
from oauth_cc_auth._methods import TLS_METHODS
from oauth_cc_auth.errors import ConfigurationError

__all__ = [
    "FALL_THROUGH",
    "NotHere",
    "ServerMetadata",
    "check_issuer",
    "choose_auth_method",
    "judge_metadata",
    "metadata_document",
    "metadata_request",
    "metadata_urls",
    "read_metadata",
    "resolve",
]

#: RFC 8414 §3: the well-known suffix; OpenID Connect Discovery 1.0 §4: its own.
OAUTH_SUFFIX = "/.well-known/oauth-authorization-server"
OPENID_SUFFIX = "/.well-known/openid-configuration"
#: Statuses that mean "no document at this URL": the next URL is tried.
FALL_THROUGH = frozenset({404, 405, 410})
#: The default client methods, in the order they are preferred when the server offers both.
DEFAULT_METHODS = ("client_secret_post", "client_secret_basic")
#: RFC 8414 §2: the methods a server supports when its metadata does not say.
UNSTATED_METHODS = ("client_secret_basic",)


def metadata_urls(issuer: str) -> tuple[str, str]:
    """The URLs of *issuer*'s metadata, in the order tried: RFC 8414's, with its §3.1 path
    insertion (``https://host/t`` -> ``https://host/.well-known/oauth-authorization-server/t``),
    then OpenID Connect's, appended (``https://host/t/.well-known/openid-configuration``)."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    oauth = urlunsplit((parts.scheme, parts.netloc, OAUTH_SUFFIX + path, "", ""))
    openid = urlunsplit((parts.scheme, parts.netloc, path + OPENID_SUFFIX, "", ""))
    return oauth, openid


def metadata_request(url: str) -> TokenRequest:
    """The GET of one metadata URL (no credentials: metadata is public)."""
    return TokenRequest(url, {"Accept": "application/json"}, b"", method="GET")


@dataclasses.dataclass(frozen=True, slots=True)
class ServerMetadata:
    """What this package uses of an authorization server's metadata (RFC 8414 §2)."""

    issuer: str
    token_endpoint: str
    #: ``None``: the document does not say (RFC 8414: then ``client_secret_basic`` only).
    token_endpoint_auth_methods_supported: tuple[str, ...] | None = None
    #: RFC 8705 §5: endpoints to use with mutual TLS (``token_endpoint`` among them).
    mtls_endpoint_aliases: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )
    #: RFC 9449 §5.1: the JWS algorithms the server accepts in DPoP proofs.
    dpop_signing_alg_values_supported: tuple[str, ...] | None = None
    #: The URL the document was read from.
    source: str = ""

    @property
    def auth_methods(self) -> tuple[str, ...]:
        """The client authentication methods the server takes (its default if unstated)."""
        offered = self.token_endpoint_auth_methods_supported
        return UNSTATED_METHODS if offered is None else offered


@dataclasses.dataclass(frozen=True, slots=True)
class NotHere:
    """No metadata document at *url* (a :data:`FALL_THROUGH` status): try the next URL."""

    url: str
    status: int


def _strings(document: Mapping[str, Any], name: str, source: str) -> tuple[str, ...] | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"metadata at {source}: {name} is not a list of strings")
    return tuple(value)


def read_metadata(issuer: str, body: bytes, source: str) -> ServerMetadata:
    """The metadata document *body* read from *source* for *issuer*, checked: a JSON object
    whose ``issuer`` equals *issuer* exactly (RFC 8414 §3.3) and with a ``token_endpoint``.
    (Whether that endpoint may be used, https unless loopback, is checked per client.)"""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        document = None
    if not isinstance(document, dict):
        raise ConfigurationError(f"metadata at {source} is not a JSON object")
    found = document.get("issuer")
    if found != issuer:
        shown = repr(found)[:200] if isinstance(found, str) else "none"
        raise ConfigurationError(
            f"metadata at {source} is for issuer {shown}, not the configured {issuer!r} "
            "(RFC 8414 §3.3: they must be equal)"
        )
    endpoint = document.get("token_endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise ConfigurationError(f"metadata at {source} has no token_endpoint")
    aliases = document.get("mtls_endpoint_aliases") or {}
    if not isinstance(aliases, dict) or not all(
        isinstance(v, str) for v in aliases.values()
    ):
        raise ConfigurationError(f"metadata at {source}: mtls_endpoint_aliases is not a mapping "
                                 "of endpoint URLs")
    return ServerMetadata(
        issuer=issuer,
        token_endpoint=endpoint,
        token_endpoint_auth_methods_supported=_strings(
            document, "token_endpoint_auth_methods_supported", source),
        mtls_endpoint_aliases=MappingProxyType(dict(aliases)),
        dpop_signing_alg_values_supported=_strings(
            document, "dpop_signing_alg_values_supported", source),
        source=source,
    )


def metadata_document(metadata: ServerMetadata) -> bytes:
    """*metadata* as the document :func:`read_metadata` reads it back from (what this
    package uses of it), for the shared caches."""
    document: dict[str, Any] = {
        "issuer": metadata.issuer, "token_endpoint": metadata.token_endpoint,
    }
    if metadata.token_endpoint_auth_methods_supported is not None:
        document["token_endpoint_auth_methods_supported"] = list(
            metadata.token_endpoint_auth_methods_supported)
    if metadata.mtls_endpoint_aliases:
        document["mtls_endpoint_aliases"] = dict(metadata.mtls_endpoint_aliases)
    if metadata.dpop_signing_alg_values_supported is not None:
        document["dpop_signing_alg_values_supported"] = list(
            metadata.dpop_signing_alg_values_supported)
    return json.dumps(document, separators=(",", ":")).encode()


def judge_metadata(
    config: Config,
    url: str,
    outcome: TokenHTTPResponse | TransportFailure,
    *,
    attempt: int,
    redactor: Callable[[str], str],
    rng: Callable[[], float],
) -> ServerMetadata | NotHere | Retry:
    """What the answer to attempt number *attempt* (0-based) at metadata URL *url* of
    ``config.issuer`` means: the document, :class:`NotHere`, a :class:`Retry`, or (raised)
    the error: the module's docstring lists them."""
    if isinstance(outcome, TransportFailure):
        return retry_or_give_up(config, f"metadata URL {url}", outcome,
                                redactor(outcome.description), attempt=attempt, rng=rng)
    status = outcome.status_code
    if status == 429 or status >= 500:
        return retry_or_give_up(config, f"metadata URL {url}", outcome, f"HTTP {status}",
                                attempt=attempt, rng=rng)
    if status in FALL_THROUGH:
        return NotHere(url, status)
    if not 200 <= status < 300:
        raise ConfigurationError(f"metadata URL {url} answered {status}")
    if outcome.unread is not None:
        raise ConfigurationError(
            f"metadata URL {url} answered {status} with "
            + ("more than max_response_bytes" if outcome.unread == "too large" else
               "a body whose Content-Encoding cannot be decoded")
        )
    return read_metadata(str(config.issuer), outcome.body, url)


def choose_auth_method(
    configured: str | None,
    offered: Sequence[str],
    accepted: Sequence[str],
    *,
    keyed: bool = False,
    certified: bool = False,
) -> str:
    """The client authentication method to use with a server offering *offered*.

    *configured*: the method the client was given, used if offered (an unstated list,
    ``None`` in :class:`ServerMetadata`, never refuses it: give *offered* as ``()`` then).
    Else, with a key or external assertion (*keyed*), ``private_key_jwt``; else the first of
    ``client_secret_post`` and ``client_secret_basic`` that the server offers and the
    provider *accepts*; with a client certificate and no secret (*certified*),
    ``tls_client_auth``, or ``self_signed_tls_client_auth`` if only that is offered. Raises
    ``ConfigurationError`` naming the offered methods.
    """
    shown = ", ".join(offered) or "none"
    if configured is not None:
        if offered and configured not in offered:
            raise ConfigurationError(
                f"auth_method {configured!r} is not offered by the authorization server; "
                f"it offers: {shown}"
            )
        return configured
    if keyed:
        if offered and "private_key_jwt" not in offered:
            raise ConfigurationError(
                f"the authorization server does not offer private_key_jwt; it offers: {shown}"
            )
        return "private_key_jwt"
    if certified:
        for method in TLS_METHODS:
            if not offered or method in offered:
                return method
        raise ConfigurationError(
            f"the authorization server offers no mutual-TLS client authentication "
            f"(tls_client_auth, self_signed_tls_client_auth); it offers: {shown}"
        )
    candidates = offered or UNSTATED_METHODS
    for method in DEFAULT_METHODS:
        if method in candidates and method in accepted:
            return method
    raise ConfigurationError(
        "the authorization server offers neither client_secret_post nor client_secret_basic "
        f"(it offers: {shown}); set auth_method= to one of them"
    )


def resolve(config: Config, metadata: ServerMetadata) -> Config:
    """*config* (configured with ``issuer=``) with what *metadata* says: its token endpoint
    (https unless loopback or ``insecure_transport``; with a client certificate, its
    ``mtls_endpoint_aliases`` one when named, RFC 8705 §5) and the auth method
    (:func:`choose_auth_method`). The cache key stays the issuer's."""
    client, authentication = config.client, config.authentication
    method = client.auth_method
    if isinstance(method, str):
        offered = metadata.token_endpoint_auth_methods_supported or ()
        method = choose_auth_method(
            method if config.auth_method_given else None, offered,
            config.provider.auth_methods, keyed=authentication.uses_assertion,
            certified=authentication.certificate is not None and client.client_secret is None,
        )
    name, endpoint = "token_endpoint", metadata.token_endpoint
    alias = metadata.mtls_endpoint_aliases.get("token_endpoint")
    if alias is not None and authentication.certificate is not None:  # (the TLS methods' too)
        name, endpoint = "mtls_endpoint_aliases token_endpoint", alias
    try:
        endpoint = check_token_url(endpoint, insecure_transport=config.insecure_transport)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"the {name} in the metadata at {metadata.source}: {exc}"
        ) from None
    if method != client.auth_method:
        authentication = dataclasses.replace(authentication, method=method)
    resolved = dataclasses.replace(
        config,
        client=dataclasses.replace(client, token_url=endpoint, auth_method=method),
        authentication=authentication,
    )
    provider = config.provider
    if provider.check_settings is not None:
        # A preset's checks of the token URL (and the rest), on the endpoint discovered.
        try:
            provider.check_settings(provider, resolved.client)
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"{exc} (the token_endpoint in the metadata at {metadata.source})"
            ) from None
    dpop, algs = config.dpop, metadata.dpop_signing_alg_values_supported
    if dpop is not None and algs is not None and dpop.alg not in algs:
        raise ConfigurationError(
            f"the server does not accept DPoP proofs signed with {dpop.alg} (the key's "
            f"algorithm); it accepts {', '.join(algs) or 'none'} (the metadata at "
            f"{metadata.source})"
        )
    check_request(resolved)  # the credentials encodable with the method chosen
    return resolved
