"""Tokens sealed for a shared cache: AES-256-GCM under a key derived from the client secret.

Only holders of the client secret (or private key) can read (or forge) an entry, and an entry
is bound to its cache key, so one cannot be moved under another key. Lifetimes are stored as
wall-clock times, because monotonic clocks differ between processes and hosts.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from oauth_cc_auth._token import Token

__all__ = ["Sealer"]

_MAGIC = b"occ1"
_NONCE = 12


class Sealer:
    """Seals and opens the tokens of one cache key."""

    def __init__(self, secret: str | bytes, cache_key: str) -> None:
        """*secret*: the client secret, or bytes only its private key's holder has."""
        self._aad = cache_key.encode()
        key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=b"oauth-cc-auth token cache v1",
            info=self._aad,
        ).derive(secret.encode() if isinstance(secret, str) else secret)
        self._aead = AESGCM(key)

    def seal(self, token: Token, now: float, wall: Callable[[], float] = time.time) -> bytes:
        """*token* (whose times are on a clock reading *now*) as an encrypted entry."""
        expires = None if token.expires_at is None else wall() + (token.expires_at - now)
        payload = {
            "access_token": token.access_token,
            "token_type": token.token_type,
            "scope": token.scope,
            "lifetime": token.expires_in,
            "expires_at": expires,
            "raw": dict(token.raw),
        }
        return self.seal_bytes(json.dumps(payload, separators=(",", ":"), default=str).encode())

    def seal_bytes(self, plain: bytes, purpose: bytes = b"") -> bytes:
        """*plain* as an encrypted entry, bound to this cache key and *purpose* (``b""``: a
        token; another purpose's entry is not opened as a token, nor the reverse)."""
        nonce = os.urandom(_NONCE)
        return _MAGIC + nonce + self._aead.encrypt(nonce, plain, self._bound(purpose))

    def open_bytes(self, blob: bytes, purpose: bytes = b"") -> bytes | None:
        """What :meth:`seal_bytes` sealed for *purpose* in *blob*; ``None`` if it cannot be
        read (another secret, key or purpose, tampered, not ours)."""
        if not blob.startswith(_MAGIC) or len(blob) < len(_MAGIC) + _NONCE + 16:
            return None
        nonce = blob[len(_MAGIC) : len(_MAGIC) + _NONCE]
        try:
            return self._aead.decrypt(nonce, blob[len(_MAGIC) + _NONCE :], self._bound(purpose))
        except InvalidTag:
            return None

    def _bound(self, purpose: bytes) -> bytes:
        return purpose + b"\0" + self._aad if purpose else self._aad

    def open(
        self, blob: bytes, now: float, leeway: float, wall: Callable[[], float] = time.time
    ) -> Token | None:
        """The token in *blob* on a clock reading *now*; ``None`` if it cannot be read (another
        secret, tampered, not ours) or has expired."""
        plain = self.open_bytes(blob)
        if plain is None:
            return None
        try:
            payload = json.loads(plain)
            lifetime, expires = payload["lifetime"], payload["expires_at"]
            if expires is None or lifetime is None:
                return Token.issued(payload["access_token"], obtained_at=now, lifetime=None,
                                    leeway=leeway, token_type=payload["token_type"],
                                    scope=payload["scope"], raw=payload["raw"])
            remaining = float(expires) - wall()
            if remaining <= 0:
                return None
            return Token.issued(
                payload["access_token"],
                obtained_at=now - (float(lifetime) - remaining),
                lifetime=float(lifetime),
                leeway=leeway,
                token_type=payload["token_type"],
                scope=payload["scope"],
                raw=payload["raw"],
            )
        except (ValueError, KeyError, TypeError):
            return None
