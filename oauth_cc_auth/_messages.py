"""Value objects passed between the core, the providers and the adapters."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["ClientSettings", "TokenHTTPResponse", "TokenRequest"]


@dataclasses.dataclass(frozen=True, slots=True)
class ClientSettings:
    """What a provider's encoder needs to build a token request; validated at construction."""

    token_url: str
    client_id: str | int
    #: ``None`` with the methods that need no secret (private_key_jwt).
    client_secret: str | None = dataclasses.field(repr=False)
    #: Space-joined scope (RFC 6749 §3.3), or ``None``.
    scope: str | None = None
    #: Provider-specific fields, sent in every token request.
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: How the client authenticates: ``client_secret_post``, ``client_secret_basic``,
    #: ``client_secret_jwt``, ``private_key_jwt``, or an Authlib client-auth callable.
    auth_method: Any = "client_secret_post"
    #: The RFC 7523 client assertion of this one token request (signed or read anew for
    #: every token request); ``None`` with the secret methods.
    client_assertion: str | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True, slots=True)
class TokenRequest:
    """One HTTP request to the token endpoint. Its body holds the secret: never log it."""

    url: str
    #: Not shown in ``repr``: a ``client_secret_basic`` header holds the secret.
    headers: Mapping[str, str] = dataclasses.field(repr=False)
    body: bytes = dataclasses.field(repr=False)
    method: str = "POST"


@dataclasses.dataclass(frozen=True, slots=True)
class TokenHTTPResponse:
    """The token endpoint's answer, as an adapter received it."""

    status_code: int
    headers: Mapping[str, str]
    body: bytes = dataclasses.field(repr=False)
    #: Why the body was not read to its end (*body* is then empty): ``"too large"`` (more
    #: than ``max_response_bytes``) or ``"undecodable"`` (a ``Content-Encoding`` that cannot
    #: be decoded). The core decides from the status which error that is.
    unread: Literal["too large", "undecodable"] | None = None
