"""The access token as the package keeps it."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["Token"]


@dataclasses.dataclass(frozen=True, slots=True)
class Token:
    """An access token with its lifetime on the auth object's monotonic clock.

    ``repr`` and ``str`` never show the access token itself. Times are seconds on the clock
    the auth object was given (``time.monotonic`` by default), not wall-clock times.
    """

    #: The bearer token. Never shown in ``repr``.
    access_token: str = dataclasses.field(repr=False)
    #: ``token_type`` as the endpoint sent it (``"Bearer"`` when it sent none).
    token_type: str = "Bearer"  # noqa: S105 - a token type, not a token
    #: Lifetime in seconds: ``expires_in`` or the provider's documented default; ``None``
    #: when neither is known (the token is then used until the resource server says 401).
    expires_in: float | None = None
    #: The scope the endpoint granted, if it said.
    scope: str | None = None
    #: Clock reading when the token request was sent.
    obtained_at: float = 0.0
    #: Clock reading at which the token expires (``None``: unknown).
    expires_at: float | None = None
    #: Clock reading from which a new token is fetched before this one expires.
    refresh_at: float = math.inf
    #: Every field of the token response; not shown in ``repr``.
    raw: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)
    #: The ``Authorization`` header value, built once: ``Bearer <token>`` (RFC 6750 §2.1), or
    #: ``DPoP <token>`` for a DPoP-bound token (RFC 9449 §7.1).
    authorization: str = dataclasses.field(init=False, repr=False, compare=False)
    #: Whether the token is DPoP-bound (``token_type`` ``DPoP``): each request carrying it
    #: needs a proof.
    dpop: bool = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        dpop = self.token_type.lower() == "dpop"
        object.__setattr__(self, "dpop", dpop)
        scheme = "DPoP" if dpop else "Bearer"
        object.__setattr__(self, "authorization", f"{scheme} {self.access_token}")

    @classmethod
    def issued(
        cls,
        access_token: str,
        *,
        obtained_at: float,
        lifetime: float | None,
        leeway: float,
        token_type: str = "Bearer",  # noqa: S107 - a token type, not a token
        scope: str | None = None,
        raw: Mapping[str, Any] | None = None,
    ) -> Token:
        """Build a token obtained at *obtained_at* that lives *lifetime* seconds.

        It is refreshed *leeway* seconds before it expires, but never earlier than half-way
        through its life, so that a token shorter-lived than the leeway is still used for a
        good part of its life rather than once per API request.
        """
        if lifetime is None:
            expires_at = None
            refresh_at = math.inf
        else:
            expires_at = obtained_at + lifetime
            refresh_at = expires_at - min(leeway, lifetime / 2)
        return cls(
            access_token,
            token_type=token_type,
            expires_in=lifetime,
            scope=scope,
            obtained_at=obtained_at,
            expires_at=expires_at,
            refresh_at=refresh_at,
            raw=dict(raw or {}),
        )

    def is_fresh(self, now: float) -> bool:
        """Whether the token is to be used as it is at clock reading *now*."""
        return now < self.refresh_at

    def is_expired(self, now: float) -> bool:
        """Whether the token has actually expired at clock reading *now*."""
        return self.expires_at is not None and now >= self.expires_at
