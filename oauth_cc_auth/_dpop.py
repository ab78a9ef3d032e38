"""DPoP (RFC 9449): proofs that the client holds the key its tokens are bound to.

A proof is a JWS (``typ: dpop+jwt``, the public key in its ``jwk`` header) over ``htm``,
``htu`` (the URL without query and fragment), ``iat``, a fresh ``jti``, ``ath`` (the hash of
the access token, on API requests) and the server's ``nonce`` when it gave one. One is made
for every token request and every API request, so its cost is on the hot path: the header
segment is encoded once per key, and only the claims that change are encoded per proof; the
signature is joserfc's.

Nothing here keeps the private key where a ``repr`` could show it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

from oauth_cc_auth._client_auth import algs_for, key_material, load_private_key
from oauth_cc_auth._urls import origin
from oauth_cc_auth.errors import ConfigurationError

__all__ = ["DPoP", "DPoPKey", "dpop_nonce", "nonce_demanded"]

#: RFC 9449 §8.1: ``nonce = 1*NQCHAR``, NQCHAR = %x21 / %x23-5B / %x5D-7E; capped in length.
_NONCE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,1024}$")
#: How many (method, URL) pairs a key remembers the encoding of.
_REMEMBERED = 256


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class DPoPKey:
    """The key DPoP proofs are signed with, and what every proof of it repeats."""

    __slots__ = ("_header", "_key", "_last_ath", "_signer", "_targets", "alg", "public_jwk",
                 "sealing_material", "thumbprint")

    def __init__(self, key: Any) -> None:
        from joserfc.jws import JWSRegistry

        algs = algs_for(key)
        if not algs:
            raise ConfigurationError(
                f"dpop_key is a {key.key_type} key on {getattr(key, 'curve_name', '?')}, "
                "which cannot sign a DPoP proof"
            )
        #: The JWS algorithm of the proofs (ES256 for a P-256 key, RS256 for RSA).
        self.alg: str = algs[0]
        self._key = key
        self._signer = JWSRegistry.algorithms[self.alg]
        #: The public key, as the proofs' ``jwk`` header carries it.
        self.public_jwk: dict[str, Any] = {
            name: value for name, value in key.as_dict(private=False).items()
            if name in ("kty", "crv", "x", "y", "n", "e")
        }
        #: RFC 7638 thumbprint of the key (``jkt``): what the server binds the token to.
        self.thumbprint: str = key.thumbprint()
        #: Bytes only the key's holder has (a shared cache's encryption key is derived from
        #: the client's own credentials; this is kept for symmetry with client keys).
        self.sealing_material: bytes = key_material(key)
        header = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.public_jwk}
        self._header = _b64(json.dumps(header, separators=(",", ":")).encode()) + b"."
        #: ``"htm":...,"htu":...`` per (method, URL) of the recent requests.
        self._targets: dict[tuple[str, str], str] = {}
        self._last_ath: tuple[str, str] | None = None
        self.proof("POST", "https://check.invalid/token")  # a key that cannot sign fails now

    @classmethod
    def generate(cls) -> DPoPKey:
        """A fresh P-256 key (ES256), kept in memory only."""
        from joserfc.jwk import ECKey

        return cls(ECKey.generate_key("P-256", private=True))

    @classmethod
    def load(cls, value: object) -> DPoPKey:
        """A key from PEM text, a path to a PEM file or a private JWK mapping."""
        return cls(load_private_key(value, "dpop_key"))

    def __repr__(self) -> str:
        return f"<DPoPKey {self.alg} jkt={self.thumbprint}>"

    def proof(
        self, htm: str, htu: str, access_token: str | None = None, nonce: str | None = None
    ) -> str:
        """A proof for one request: *htm* its method, *htu* its URL (query and fragment are
        dropped here), *access_token* the token it carries (API requests), *nonce* the
        server's (well-formed: :func:`dpop_nonce`)."""
        # The claims as JSON, written out: jti, ath and nonce need no escaping (base64url,
        # and RFC 9449's NQCHAR), method and URL are escaped once and remembered.
        target = self._targets.get((htm, htu))
        if target is None:
            target = self._target(htm, htu)
        claims = f'{{"jti":"{secrets.token_urlsafe(16)}",{target},"iat":{int(time.time())}'
        if access_token is not None:
            claims += f',"ath":"{self._ath(access_token)}"'
        if nonce is not None:
            claims += f',"nonce":"{nonce}"'
        signing_input = self._header + _b64((claims + "}").encode())
        signature = self._signer.sign(signing_input, self._key)
        return (signing_input + b"." + _b64(signature)).decode("ascii")

    def _target(self, htm: str, htu: str) -> str:
        """``"htm":...,"htu":...`` of a method and URL, remembered for the next proofs."""
        url = htu.partition("?")[0].partition("#")[0]
        target = f'"htm":{json.dumps(htm)},"htu":{json.dumps(url)}'
        if len(self._targets) >= _REMEMBERED:
            self._targets.clear()
        self._targets[htm, htu] = target
        return target

    def _ath(self, access_token: str) -> str:
        """``ath``: the base64url SHA-256 of the token (RFC 9449 §4.2), of the last token
        remembered."""
        last = self._last_ath
        if last is not None and last[0] == access_token:
            return last[1]
        value = _b64(hashlib.sha256(access_token.encode()).digest()).decode()
        self._last_ath = (access_token, value)
        return value


def dpop_nonce(headers: Mapping[str, str]) -> str | None:
    """A well-formed ``DPoP-Nonce`` header of an answer, or ``None``."""
    value = headers.get("DPoP-Nonce")
    if value is None or not _NONCE.match(value):
        return None
    return value


def nonce_demanded(headers: Mapping[str, str]) -> bool:
    """Whether a resource server's 401 asks for a proof with its nonce (RFC 9449 §9):
    ``WWW-Authenticate: DPoP error="use_dpop_nonce"``."""
    challenge = headers.get("WWW-Authenticate") or ""
    return "use_dpop_nonce" in challenge and "dpop" in challenge.lower()


class DPoP:
    """The DPoP proofs of one auth object, with the nonces servers gave it, per origin."""

    __slots__ = ("_nonces", "key")

    def __init__(self, key: DPoPKey) -> None:
        self.key = key
        self._nonces: dict[tuple[str, str, int | None], str] = {}

    def proof(self, method: str, url: str, access_token: str | None = None) -> str:
        """The ``DPoP`` header of a request to *url*, with the nonce of its origin if any."""
        nonce = self._nonces.get(origin(url)) if self._nonces else None
        return self.key.proof(method, url, access_token, nonce)

    def note(self, url: str, headers: Mapping[str, str]) -> bool:
        """Remember the nonce an answer from *url* gave (RFC 9449 §8.2: any answer may);
        whether it gave one."""
        nonce = dpop_nonce(headers)
        if nonce is None:
            return False
        self._nonces[origin(url)] = nonce
        return True
