"""Turning an adapter's constructor arguments into validated settings."""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Unpack
from urllib.parse import urlsplit

from oauth_cc_auth._client_auth import (
    ClientAuthentication,
    ClientAuthOptions,
    build_authentication,
)
from oauth_cc_auth._dpop import DPoPKey
from oauth_cc_auth._messages import ClientSettings
from oauth_cc_auth._registry import get_provider
from oauth_cc_auth.errors import ConfigurationError
from oauth_cc_auth.providers._base import RESERVED_FIELDS, Provider

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES", "Config", "RetryPolicy", "build_config", "check_issuer",
    "check_token_url",
]

#: The largest token-endpoint answer read by default (1 MiB); a token answer is a few KiB.
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How the token request is retried after connection errors, timeouts, 429 and 5xx."""

    #: Retries after the first attempt.
    max_retries: int = 3
    #: Backoff before retry *n* (0-based) is ``backoff * 2**n`` seconds, with full jitter...
    backoff: float = 0.5
    #: ...and at most this many seconds.
    max_backoff: float = 8.0
    #: ``Retry-After`` is honoured up to this many seconds.
    max_retry_after: float = 60.0


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    """Everything an auth object was configured with, validated."""

    provider: Provider
    client: ClientSettings
    leeway: float
    timeout: float
    retry: RetryPolicy
    #: The API statuses after which the token is renewed and the request re-sent once.
    renew_on: frozenset[int]
    #: How the client authenticates, with what it signs or reads its assertions.
    authentication: ClientAuthentication = dataclasses.field(repr=False)
    #: Identifies the token in the cache: token URL, client id, scope, extra fields and a
    #: digest of the secret or the key's thumbprint (never the secret or key itself).
    cache_key: str = dataclasses.field(repr=False)
    #: Answers from the token endpoint larger than this are not read further.
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    #: With ``issuer=``: the authorization server whose metadata gives the token endpoint
    #: (``client.token_url`` is then the issuer until the flow resolves it, ``_discovery``).
    issuer: str | None = None
    #: Whether http:// is accepted for hosts that are not loopback (a discovered endpoint).
    insecure_transport: bool = False
    #: Whether ``auth_method`` was given (with ``issuer=``, else it is chosen from the
    #: methods the server offers).
    auth_method_given: bool = True
    #: The key DPoP proofs are signed with (RFC 9449); ``None``: Bearer tokens.
    dpop: DPoPKey | None = dataclasses.field(default=None, repr=False)
    #: Whether a token due for refresh but still valid is served while it is refreshed in
    #: the background (DESIGN §7 "Renewal"); ``False``: its callers wait for the refresh.
    refresh_ahead: bool = True

    def longest_token_request(self) -> float:
        """The longest a token request (all its attempts) may take, in seconds: a caller
        waiting for another's token request waits no longer than this.

        Every attempt is bounded by ``timeout``; between attempts the backoff is at most
        ``max_backoff`` (or the ``Retry-After`` cap, whichever is longer); one more
        ``timeout`` is added as slack for building requests and scheduling.
        """
        retry = self.retry
        waits = sum(
            max(min(retry.max_backoff, retry.backoff * 2.0**n), retry.max_retry_after)
            for n in range(retry.max_retries)
        )
        return (retry.max_retries + 2) * self.timeout + waits


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token_url(url: str, *, insecure_transport: bool) -> str:
    """Accept an ``https://`` URL, or ``http://`` on a loopback host or when allowed."""
    if not isinstance(url, str):
        raise ConfigurationError(f"token_url must be a string, not {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(f"token_url must be an absolute https:// URL, not {url!r}")
    if parts.username or parts.password:
        raise ConfigurationError("token_url must not carry credentials in its user info")
    if parts.scheme == "http" and not insecure_transport and not _is_loopback(parts.hostname):
        raise ConfigurationError(
            f"token_url {url!r} is not https://; http:// is accepted only for loopback hosts "
            "(localhost, 127.0.0.0/8, ::1) or with insecure_transport=True"
        )
    return url


def check_issuer(issuer: object, *, insecure_transport: bool = False) -> str:
    """Accept an issuer as RFC 8414 §2 says (https, no query, no fragment; http only on a
    loopback host or with *insecure_transport*); raise ``ConfigurationError`` otherwise."""
    if not isinstance(issuer, str):
        raise ConfigurationError(f"issuer must be a string, not {type(issuer).__name__}")
    parts = urlsplit(issuer)
    if parts.query or parts.fragment or issuer.endswith(("?", "#")):
        raise ConfigurationError(f"issuer must have no query or fragment: {issuer!r}")
    try:
        check_token_url(issuer, insecure_transport=insecure_transport)
    except ConfigurationError as exc:
        raise ConfigurationError(str(exc).replace("token_url", "issuer")) from None
    return issuer


def _scope(scope: str | Sequence[str] | None) -> str | None:
    if scope is None:
        return None
    if isinstance(scope, str):
        return scope
    if isinstance(scope, (bytes, bytearray)) or not isinstance(scope, Sequence):
        raise ConfigurationError(
            f"scope must be a string or a sequence of strings, not {type(scope).__name__}"
        )
    if not all(isinstance(s, str) for s in scope):
        raise ConfigurationError("scope must be a string or a sequence of strings")
    # RFC 6749 §3.3: a space-delimited list.
    return " ".join(scope)


def _number(name: str, value: object, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigurationError(f"{name} must be a number, not {value!r}")
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum:g}, not {value!r}")
    return float(value)


def _resolve_provider(provider: str | Provider) -> Provider:
    if isinstance(provider, Provider):
        return provider
    if isinstance(provider, str):
        return get_provider(provider)
    raise ConfigurationError(
        f"provider must be a registered name or a Provider, not {type(provider).__name__}"
    )


def _token_url(
    provider: Provider, environment: str | None, token_url: str | None
) -> str:
    if token_url is not None:
        return token_url
    if not provider.environments:
        where = provider.field_help.get("token_url")
        raise ConfigurationError(
            f"provider {provider.name!r} documents no token URL: pass token_url="
            + (f": {where}" if where else "")
        )
    env = environment if environment is not None else provider.default_environment
    if env is None or env not in provider.environments:
        accepted = ", ".join(sorted(provider.environments))
        what = "no environment given" if env is None else f"unknown environment {env!r}"
        raise ConfigurationError(
            f"{what} for provider {provider.name!r}; accepted: {accepted}, "
            "or pass token_url= for another one"
        )
    return provider.environments[env]


def _extra(provider: Provider, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    if extra is None:
        return {}
    if not isinstance(extra, Mapping):
        raise ConfigurationError(f"extra must be a mapping, not {type(extra).__name__}")
    fields = dict(extra)
    for name in fields:
        if not isinstance(name, str):
            raise ConfigurationError(f"extra field names must be strings, not {name!r}")
    reserved = sorted(RESERVED_FIELDS & fields.keys())
    if reserved:
        raise ConfigurationError(
            f"extra must not set {', '.join(reserved)}: pass them as arguments of their own"
        )
    if provider.extra_fields is not None:
        unknown = sorted(fields.keys() - provider.extra_fields)
        if unknown:
            accepted = ", ".join(sorted(provider.extra_fields)) or "none"
            raise ConfigurationError(
                f"unknown extra field(s) {', '.join(unknown)} for provider "
                f"{provider.name!r}; accepted: {accepted}"
            )
    return fields


def _wanted(provider: Provider, name: str) -> str:
    """A missing required field, and where to find it when the provider says."""
    where = provider.field_help.get(name)
    if where is None:
        return name
    how = "scope=" if name == "scope" else f"extra={{{name!r}: ...}}"
    return f"{name} ({how}): {where}"


def build_config(
    client_id: str | int,
    client_secret: str | None = None,
    *,
    provider: str | Provider = "rfc6749",
    environment: str | None = None,
    token_url: str | None = None,
    issuer: str | None = None,
    scope: str | Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
    leeway: float = 60.0,
    auth_method: Any = None,
    timeout: float = 30.0,
    max_retries: int = 3,
    backoff: float = 0.5,
    max_retry_after: float = 60.0,
    insecure_transport: bool = False,
    renew_on: Iterable[int] = (401,),
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    dpop: bool | None = None,
    dpop_key: Any = None,
    refresh_ahead: bool = True,
    **client_auth: Unpack[ClientAuthOptions],
) -> Config:
    """Validate an adapter's arguments; every mistake is a :class:`ConfigurationError`."""
    unknown = sorted(set(client_auth) - ClientAuthOptions.__optional_keys__)
    if unknown:  # a misspelt option would otherwise be ignored
        raise ConfigurationError(f"unknown option(s): {', '.join(unknown)}")
    prov = _resolve_provider(provider)
    if isinstance(client_id, bool) or not isinstance(client_id, (str, int)) or client_id == "":
        raise ConfigurationError("client_id must be a non-empty string (or an int)")
    if client_secret is not None and (not isinstance(client_secret, str) or not client_secret):
        raise ConfigurationError("client_secret must be a non-empty string")
    if client_secret is not None and not _is_utf8(client_secret):
        raise ConfigurationError("client_secret cannot be encoded as UTF-8 (a lone surrogate)")
    if issuer is not None:
        if token_url is not None or environment is not None:
            raise ConfigurationError(
                "give issuer= or token_url= (or environment=), not both: with issuer= the "
                "token endpoint comes from the server's metadata"
            )
        # The issuer stands for the token URL until the metadata names the endpoint.
        url = check_issuer(issuer, insecure_transport=insecure_transport)
    else:
        url = check_token_url(
            _token_url(prov, environment, token_url), insecure_transport=insecure_transport
        )
    scope_text = _scope(scope)
    if scope_text is not None and not prov.scope_supported:
        raise ConfigurationError(f"provider {prov.name!r} takes no scope")
    fields = _extra(prov, extra)
    given = set(fields) | ({"scope"} if scope_text else set())
    missing = [name for name in prov.required_fields if name not in given]
    if missing:
        raise ConfigurationError(
            f"provider {prov.name!r} requires {'; '.join(_wanted(prov, m) for m in missing)}"
            f" (required: {', '.join(prov.required_fields)})"
        )
    method = auth_method
    if method is None:
        # A key or an external assertion means private_key_jwt; a certificate without a
        # secret, tls_client_auth (RFC 8705 §2.1); else the provider's first.
        material = (client_auth.get("private_key"), client_auth.get("client_assertion"))
        if material != (None, None):
            method = "private_key_jwt"
        elif client_auth.get("cert") is not None and client_secret is None:
            method = "tls_client_auth"
        else:
            method = prov.auth_methods[0]
    if isinstance(method, str) and method not in prov.auth_methods:
        raise ConfigurationError(
            f"auth_method {method!r} is not accepted by provider {prov.name!r}; "
            f"accepted: {', '.join(prov.auth_methods)}"
        )
    if not isinstance(method, str) and not callable(method):
        raise ConfigurationError("auth_method must be a method name or an Authlib-style callable")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigurationError(f"max_retries must be an int >= 0, not {max_retries!r}")
    retry = RetryPolicy(
        max_retries=max_retries,
        backoff=_number("backoff", backoff),
        max_retry_after=_number("max_retry_after", max_retry_after),
    )
    timeout_s = _number("timeout", timeout)
    if timeout_s == 0 or math.isinf(timeout_s):
        raise ConfigurationError(f"timeout must be a finite number of seconds > 0, not {timeout!r}")
    if (
        isinstance(max_response_bytes, bool)
        or not isinstance(max_response_bytes, int)
        or max_response_bytes < 1
    ):
        raise ConfigurationError(
            f"max_response_bytes must be an int >= 1, not {max_response_bytes!r}"
        )
    if not isinstance(refresh_ahead, bool):
        raise ConfigurationError(f"refresh_ahead must be True or False, not {refresh_ahead!r}")
    authentication = build_authentication(method, client_secret, **client_auth)
    dpop_signer = _dpop_key(dpop, dpop_key)
    client = ClientSettings(url, client_id, client_secret, scope_text, fields, method)
    if prov.check_settings is not None and issuer is None:
        # With issuer=, the provider checks the token endpoint the metadata names, once it
        # is known (_discovery.resolve).
        prov.check_settings(prov, client)
    return Config(
        provider=prov,
        client=client,
        leeway=_number("leeway", leeway),
        timeout=timeout_s,
        retry=retry,
        renew_on=_renew_on(renew_on),
        authentication=authentication,
        cache_key=_cache_key(client, authentication, issuer is not None, dpop_signer),
        max_response_bytes=max_response_bytes,
        issuer=issuer,
        insecure_transport=bool(insecure_transport),
        auth_method_given=auth_method is not None,
        dpop=dpop_signer,
        refresh_ahead=refresh_ahead,
    )


def _dpop_key(dpop: object, key: object) -> DPoPKey | None:
    """``dpop=True``: a fresh P-256 key; ``dpop_key=``: that key (a fleet sharing a cache
    shares it, so that a cached token stays usable by every process)."""
    if dpop is not None and not isinstance(dpop, bool):
        raise ConfigurationError(f"dpop must be True or False, not {dpop!r}")
    if key is None:
        return DPoPKey.generate() if dpop else None
    if dpop is False:
        raise ConfigurationError("dpop_key is given but dpop=False: leave one of them out")
    return DPoPKey.load(key)


def _renew_on(statuses: object) -> frozenset[int]:
    """``renew_on``: one or more 4xx statuses, 401 among them (a 401 always means the token)."""
    if isinstance(statuses, int) and not isinstance(statuses, bool):
        statuses = (statuses,)
    if isinstance(statuses, (str, bytes)) or not isinstance(statuses, Iterable):
        raise ConfigurationError(f"renew_on must be HTTP statuses such as (401, 403), "
                                 f"not {statuses!r}")
    chosen = tuple(statuses)
    if not chosen or not all(
        isinstance(s, int) and not isinstance(s, bool) and 400 <= s < 500 for s in chosen
    ):
        raise ConfigurationError(f"renew_on takes 4xx statuses such as (401, 403), not {chosen!r}")
    if 401 not in chosen:
        raise ConfigurationError("renew_on must include 401 (the status of a refused token)")
    return frozenset(chosen)


def _cache_key(
    client: ClientSettings,
    authentication: ClientAuthentication,
    discovered: bool = False,
    dpop: DPoPKey | None = None,
) -> str:
    # With issuer=, the issuer (never the endpoint its metadata names, so that a client's
    # tokens are not split by a network answer), marked as such.
    where = ["issuer", client.token_url] if discovered else client.token_url
    material = json.dumps(
        [where, client.client_id, client.scope, client.extra,
         authentication.identity]
        # A DPoP-bound token is of use only with its key (RFC 9449 §6).
        + ([] if dpop is None else [f"dpop:{dpop.thumbprint}"]),
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(material.encode()).hexdigest()
