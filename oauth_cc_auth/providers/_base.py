"""The provider type: one token-endpoint dialect as data plus a few functions.

A provider says where its token endpoint is (per environment), how to word the token request
(``encode_request``), how to read the answer (``decode_response`` for 2xx, ``decode_error`` for
4xx), which fields it requires and accepts, and how long a token lives when the answer does
not say. The defaults implement RFC 6749 §4.4 with Authlib's building blocks.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from authlib.common.urls import add_params_to_qs
from authlib.oauth2 import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_token_request

from oauth_cc_auth._messages import ClientSettings, TokenHTTPResponse, TokenRequest
from oauth_cc_auth._methods import ASSERTION_TYPE, TLS_METHODS, basic_authorization
from oauth_cc_auth.errors import ConfigurationError, TokenResponseError

__all__ = [
    "Provider",
    "client_credentials",
    "decode_json_object",
    "decode_oauth_error",
    "decode_token_response",
    "encode_token_request",
    "json_object_or_none",
    "oauth_error_or",
    "require_token_path",
    "token_path_check",
]

#: Fields the package itself fills in; never accepted as ``extra``.
RESERVED_FIELDS = frozenset({
    "grant_type", "client_id", "client_secret", "scope", "client_assertion",
    "client_assertion_type",
})

Encoder = Callable[["Provider", ClientSettings], TokenRequest]
Decoder = Callable[["Provider", TokenHTTPResponse], Mapping[str, Any]]
ErrorDecoder = Callable[["Provider", TokenHTTPResponse], "tuple[str | None, str | None]"]
SettingsCheck = Callable[["Provider", ClientSettings], None]


def _pairs(extra: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Form pairs for extra fields; a list or tuple value becomes a repeated parameter."""
    pairs: list[tuple[str, str]] = []
    for name, value in extra.items():
        values: Iterable[Any] = value if isinstance(value, (list, tuple)) else (value,)
        pairs.extend((name, str(v)) for v in values)
    return pairs


def client_credentials(client: ClientSettings) -> tuple[dict[str, str], list[tuple[str, Any]]]:
    """The headers and body fields that authenticate *client* at the token endpoint.

    ``client_secret_post``: ``client_id`` and ``client_secret`` in the body;
    ``client_secret_basic``: an ``Authorization: Basic`` header form-encoded as RFC 6749
    §2.3.1 says; ``client_secret_jwt`` / ``private_key_jwt``: ``client_id``,
    ``client_assertion_type`` and the request's ``client_assertion`` (RFC 7523 §2.2);
    ``tls_client_auth`` / ``self_signed_tls_client_auth``: ``client_id`` only (RFC 8705 §2).
    Values keep their type (an int client id stays an int for JSON bodies).
    """
    method = client.auth_method
    if method == "client_secret_basic":
        if client.client_secret is None:
            raise ValueError("client_secret_basic needs a client secret")
        return {"Authorization": basic_authorization(client.client_id, client.client_secret)}, []
    if method in ("client_secret_jwt", "private_key_jwt"):
        if client.client_assertion is None:
            raise ValueError(f"{method} needs the request's client_assertion")
        return {}, [
            ("client_id", client.client_id),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", client.client_assertion),
        ]
    if method in TLS_METHODS:
        # RFC 8705 §2: the TLS client certificate authenticates; the body names the client.
        return {}, [("client_id", client.client_id)]
    if method == "client_secret_post":
        if client.client_secret is None:
            raise ValueError("client_secret_post needs a client secret")
        return {}, [("client_id", client.client_id), ("client_secret", client.client_secret)]
    raise ValueError(f"unknown client authentication method {method!r}")


def encode_token_request(provider: Provider, client: ClientSettings) -> TokenRequest:
    """Word a client-credentials token request as RFC 6749 §4.4.2 does, or as JSON.

    The form body is built with Authlib's ``prepare_token_request``; the client authenticates
    as :func:`client_credentials` says, or through an Authlib-style callable given as
    ``auth_method`` (Authlib's ``ClientAuth`` applies it).
    """
    headers = {"Accept": "application/json", **provider.headers}
    method = client.auth_method
    by_authlib = not isinstance(method, str)
    auth_headers, credentials = ({}, []) if by_authlib else client_credentials(client)
    headers.update(auth_headers)
    if provider.body_format == "json":
        # Values go on the wire as given: an int client id is a JSON number.
        payload: dict[str, Any] = {"grant_type": "client_credentials", **dict(credentials)}
        if client.scope is not None:
            payload["scope"] = client.scope
        payload.update(client.extra)
        headers["Content-Type"] = "application/json"
        body = json.dumps(payload, separators=(",", ":"))
    else:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        body = prepare_token_request("client_credentials", scope=client.scope)
        body = add_params_to_qs(body, _pairs(client.extra))
        body = add_params_to_qs(body, [(name, str(value)) for name, value in credentials])
    url = client.token_url
    if by_authlib:
        url, headers, body = ClientAuth(client.client_id, client.client_secret, method).prepare(
            "POST", url, headers, body
        )
    return TokenRequest(url, headers, body.encode())


def decode_json_object(response: TokenHTTPResponse) -> dict[str, Any]:
    """The answer's body as a JSON object, or a :class:`TokenResponseError` saying why not."""
    try:
        payload = json.loads(response.body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's stack
        content_type = response.headers.get("Content-Type") or "no content type"
        raise TokenResponseError(
            f"token endpoint answered {response.status_code} with a body that is not JSON"
            f" ({content_type}, {len(response.body)} bytes)"
        ) from None
    if not isinstance(payload, dict):
        raise TokenResponseError(
            f"token endpoint answered {response.status_code} with JSON that is not an object"
        )
    return payload


def decode_token_response(provider: Provider, response: TokenHTTPResponse) -> Mapping[str, Any]:
    """Read a 2xx answer as the RFC 6749 §5.1 JSON object; the core checks its fields."""
    return decode_json_object(response)


def json_object_or_none(body: bytes) -> dict[str, Any] | None:
    """*body* as a JSON object, or ``None`` if it is not one (for reading error answers)."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return payload if isinstance(payload, dict) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def decode_oauth_error(
    provider: Provider, response: TokenHTTPResponse
) -> tuple[str | None, str | None]:
    """Read ``error`` and ``error_description`` (RFC 6749 §5.2) from a 4xx answer, if there."""
    payload = json_object_or_none(response.body) or {}
    return _text(payload.get("error")), _text(payload.get("error_description"))


def oauth_error_or(code_field: str, message_field: str) -> ErrorDecoder:
    """An error reader for a server that answers some 4xx in a shape of its own: RFC 6749
    §5.2's ``error`` and ``error_description`` when the answer has them, else its
    *code_field* and *message_field* (e.g. Okta's ``errorCode`` and ``errorSummary``)."""

    def decode(provider: Provider, response: TokenHTTPResponse) -> tuple[str | None, str | None]:
        payload = json_object_or_none(response.body) or {}
        error, description = _text(payload.get("error")), _text(payload.get("error_description"))
        if error is None and description is None:
            return _text(payload.get(code_field)), _text(payload.get(message_field))
        return error, description

    return decode


def require_token_path(
    provider: Provider, client: ClientSettings, path: str, shape: str
) -> re.Match[str]:
    """The match of the regular expression *path* on the path of the client's token URL, or
    a :class:`ConfigurationError` saying the URL should look like *shape* (for a provider's
    ``check_settings``: a URL of another endpoint would fail only at the first request)."""
    found = re.fullmatch(path, urlsplit(client.token_url).path)
    if found is None:
        raise ConfigurationError(
            f"provider {provider.name!r} takes a token URL of the form {shape}, "
            f"not {client.token_url!r}"
        )
    return found


def token_path_check(path: str, shape: str) -> SettingsCheck:
    """A ``check_settings`` that only checks the token URL's path (:func:`require_token_path`)."""

    def check(provider: Provider, client: ClientSettings) -> None:
        require_token_path(provider, client, path, shape)

    return check


@dataclasses.dataclass(frozen=True)
class Provider:
    """One token-endpoint dialect.

    Instantiate it (or subclass it) to describe a provider of your own, and register it under
    the ``oauth_cc_auth.providers`` entry point group, or pass it as ``provider=``.

    Example::

        acme = Provider(
            name="acme",
            environments={"production": "https://auth.acme.example/oauth/token"},
            default_environment="production",
            extra_fields=frozenset({"audience"}),
            required_fields=("audience",),
        )
    """

    #: Registered name (``provider="name"``).
    name: str
    #: Documented environments and their token URLs.
    environments: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: Environment used when none is given; ``None`` when there are none.
    default_environment: str | None = None
    #: ``"form"`` (``application/x-www-form-urlencoded``, RFC 6749) or ``"json"``.
    body_format: Literal["form", "json"] = "form"
    #: Client-auth methods the provider accepts; the first is the default.
    auth_methods: tuple[str, ...] = ("client_secret_post",)
    #: Extra fields the provider accepts; ``None`` accepts any.
    extra_fields: frozenset[str] | None = None
    #: Fields that must be given (``"scope"`` or extra field names).
    required_fields: tuple[str, ...] = ()
    #: Whether the token request takes a ``scope``.
    scope_supported: bool = True
    #: Lifetime in seconds to assume when the answer has no ``expires_in``; ``None``: use
    #: the token until the resource server answers 401.
    default_lifetime: float | None = None
    #: Headers sent with every token request besides the content type.
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: One line for ``oauth-cc-auth providers``.
    description: str = ""
    #: Where the user finds each value in the provider's console, by field name
    #: (``"token_url"``, ``"scope"``, an extra field's name, ``"client_id"``,
    #: ``"client_secret"``): said by the error when a required one is missing (and when
    #: ``token_url`` is missing), and listed by ``oauth-cc-auth providers``.
    field_help: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: Called once at construction, after the generic checks, with the validated settings;
    #: raises :class:`~oauth_cc_auth.ConfigurationError` for what the provider is documented
    #: to refuse (a scope of the wrong shape, a token URL of another endpoint). ``None``: no
    #: check of its own.
    check_settings: SettingsCheck | None = dataclasses.field(default=None, repr=False)
    encode_request: Encoder = dataclasses.field(default=encode_token_request, repr=False)
    decode_response: Decoder = dataclasses.field(default=decode_token_response, repr=False)
    decode_error: ErrorDecoder = dataclasses.field(default=decode_oauth_error, repr=False)

    def __post_init__(self) -> None:
        # Frozen means frozen: callers' dicts are copied, not shared.
        object.__setattr__(self, "environments", MappingProxyType(dict(self.environments)))
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))
        object.__setattr__(self, "field_help", MappingProxyType(dict(self.field_help)))
