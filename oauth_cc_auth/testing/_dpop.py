"""The emulator's verification of DPoP proofs (RFC 9449 §4.3), for its token endpoints and
protected resources.

:func:`verify_proof` checks one proof as RFC 9449 §4.3 lists: one ``DPoP`` header, a JWS in
compact form, ``typ`` ``dpop+jwt``, an asymmetric ``alg`` (:data:`DPOP_ALGS`), a public ``jwk``
header the signature verifies with, ``htm`` and ``htu`` of the request (``htu`` without query
and fragment, compared after normalisation), ``iat`` within :data:`MAX_IAT_SKEW` seconds of
the clock, a ``jti``, the ``nonce`` the server demands, and at a resource ``ath``, the hash of
the access token. It returns the proof's key's thumbprint (RFC 7638, the ``jkt`` a token is
bound to) and its ``jti``; :class:`SeenJtis` refuses a ``jti`` seen before. A refusal is a
:class:`DPoPRefusal` carrying the OAuth ``error`` (``invalid_dpop_proof`` or
``use_dpop_nonce``) and a short ``reason``. Nothing here quotes a proof, a key or a token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from joserfc import jws
from joserfc.errors import JoseError, UnsupportedAlgorithmError
from joserfc.jwk import JWKRegistry, Key
from joserfc.jws import JWSRegistry

__all__ = [
    "DPOP_ALGS", "MAX_IAT_SKEW", "DPoPRefusal", "SeenJtis", "VerifiedProof",
    "access_token_hash", "normalise_url", "verify_proof",
]

#: The proof signing algorithms accepted: asymmetric ones only (RFC 9449 §4.3 check 5).
DPOP_ALGS = ("ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
             "EdDSA", "Ed25519")
#: Seconds a proof's ``iat`` may lie before or after the clock.
MAX_IAT_SKEW = 60.0
#: The proof's ``typ`` header (RFC 9449 §4.2).
PROOF_TYPE = "dpop+jwt"
#: A proof's largest size in characters: a 4096-bit RSA key in its header fits.
MAX_PROOF_LENGTH = 8192


class DPoPRefusal(Exception):
    """A refused proof: ``error`` is ``invalid_dpop_proof`` or ``use_dpop_nonce``,
    ``description`` says why (never quoting the proof), ``reason`` is a short key for
    counters (``"missing"``, ``"typ"``, ``"signature"``, ``"replayed"``, ``"nonce"``...)."""

    def __init__(self, description: str, reason: str, error: str = "invalid_dpop_proof") -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.reason = reason


@dataclass(frozen=True)
class VerifiedProof:
    """A proof that passed every check (its ``jti`` not yet checked for replay)."""

    #: The base64url SHA-256 thumbprint of the proof's key (RFC 7638).
    jkt: str
    jti: str
    claims: dict[str, Any]


class _ProofRegistry(JWSRegistry):
    """joserfc's registry for proofs: the key travels in the header (larger than joserfc's
    512-byte default for an RSA key), and only :data:`DPOP_ALGS` are taken, without the
    warning joserfc gives for ``EdDSA`` (a proof's algorithm is the client's choice)."""

    max_header_length = MAX_PROOF_LENGTH

    def get_alg(self, name: str) -> Any:
        if name not in DPOP_ALGS or name not in self.algorithms:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not accepted")
        return self.algorithms[name]


_REGISTRY = _ProofRegistry(algorithms=DPOP_ALGS)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)


def normalise_url(url: str) -> str:
    """*url* without query and fragment, normalised as RFC 3986 §6.2.2-3 says: scheme and
    host in lower case, the scheme's default port dropped, an empty path ``/``,
    percent-encodings in upper case and unreserved characters decoded."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"

    def percent(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    path = _PERCENT.sub(percent, parts.path) or "/"
    return f"{scheme}://{netloc}{path}"


def access_token_hash(access_token: str) -> str:
    """``ath``: base64url (unpadded) of the SHA-256 of the token's ASCII (RFC 9449 §4.2)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _public_key(header: dict[str, Any]) -> Key:
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise DPoPRefusal("the proof's jwk header is missing or not a JSON object", "jwk")
    if jwk.get("kty") not in ("EC", "RSA", "OKP"):
        raise DPoPRefusal("the proof's jwk must be an asymmetric public key (kty EC, RSA or "
                          "OKP)", "jwk")
    try:
        key = JWKRegistry.import_key(jwk)
    except (JoseError, ValueError, TypeError, KeyError):
        raise DPoPRefusal("the proof's jwk header is not a key", "jwk") from None
    if key.is_private or any(name in jwk for name in ("d", "p", "q", "dp", "dq", "qi", "k")):
        raise DPoPRefusal("the proof's jwk holds a private key", "private_jwk")
    return key


def verify_proof(
    values: Iterable[str],
    *,
    method: str,
    urls: Iterable[str],
    now: float,
    nonce: str | None = None,
    access_token: str | None = None,
) -> VerifiedProof:
    """Verify the ``DPoP`` header of a request (RFC 9449 §4.3).

    Args:
        values: The request's ``DPoP`` header values (a WSGI environ joins repeated headers
            with commas: pass them split, or the joined value, which a comma refuses).
        method: The request's method.
        urls: The request URL as addressed, and any other name of it the server answers
            to: ``htu`` must name one of them (query and fragment ignored, normalised).
        now: The current time (``time.time()``): ``iat`` must be within
            :data:`MAX_IAT_SKEW` seconds of it.
        nonce: The nonce the server demands, if it does.
        access_token: At a protected resource, the access token presented: ``ath`` must be
            its hash.

    Returns:
        The proof's key thumbprint (``jkt``), ``jti`` and claims.

    Raises:
        DPoPRefusal: the first check the proof fails.
    """
    proofs = list(values)
    if not proofs:
        raise DPoPRefusal("a DPoP proof is required", "missing")
    if len(proofs) > 1 or "," in proofs[0]:
        raise DPoPRefusal("more than one DPoP header", "several")
    proof = proofs[0].strip()
    if len(proof) > MAX_PROOF_LENGTH or proof.count(".") != 2:
        raise DPoPRefusal("the DPoP proof is not a JWS in compact serialization", "malformed")
    try:
        unverified = jws.extract_compact(proof.encode(), registry=_REGISTRY)
        header = dict(unverified.headers())
    except (JoseError, ValueError):
        raise DPoPRefusal("the DPoP proof is not a JWS in compact serialization",
                          "malformed") from None
    if header.get("typ") != PROOF_TYPE:
        raise DPoPRefusal(f"the proof's typ must be {PROOF_TYPE}", "typ")
    if header.get("alg") not in DPOP_ALGS:
        raise DPoPRefusal(f"the proof's alg is not accepted ({', '.join(DPOP_ALGS)})", "alg")
    key = _public_key(header)
    try:
        verified = jws.deserialize_compact(proof, key, algorithms=DPOP_ALGS, registry=_REGISTRY)
    except (JoseError, ValueError):
        raise DPoPRefusal("the proof's signature is invalid with its jwk", "signature") from None
    try:
        claims = json.loads(verified.payload)
    except ValueError:
        claims = None
    if not isinstance(claims, dict):
        raise DPoPRefusal("the proof's payload is not a JSON object", "malformed")
    if claims.get("htm") != method:
        raise DPoPRefusal(f"the proof's htm is not this request's method ({method})", "htm")
    htu = claims.get("htu")
    if not isinstance(htu, str) or not htu:
        raise DPoPRefusal("the proof has no htu", "htu")
    parts = urlsplit(htu)
    if parts.query or parts.fragment or "?" in htu or "#" in htu:
        raise DPoPRefusal("the proof's htu must be without query and fragment", "htu")
    if not parts.scheme or not parts.netloc:
        raise DPoPRefusal("the proof's htu is not an absolute URL", "htu")
    if normalise_url(htu) not in {normalise_url(url) for url in urls}:
        raise DPoPRefusal("the proof's htu is not this request's URL", "htu")
    iat = claims.get("iat")
    if not isinstance(iat, (int, float)) or isinstance(iat, bool) or iat != iat:
        raise DPoPRefusal("the proof's iat is missing or not a number", "iat")
    if abs(iat - now) > MAX_IAT_SKEW:
        raise DPoPRefusal(f"the proof's iat is more than {int(MAX_IAT_SKEW)} s from the "
                          f"server's clock", "iat")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        raise DPoPRefusal("the proof's jti is missing", "jti")
    if access_token is not None:
        ath = claims.get("ath")
        if ath is None:
            raise DPoPRefusal("the proof has no ath (the access token's hash)", "ath")
        if ath != access_token_hash(access_token):
            raise DPoPRefusal("the proof's ath is not the access token's hash", "ath")
    if nonce is not None and claims.get("nonce") != nonce:
        described = "has no nonce" if "nonce" not in claims else "has a stale nonce"
        raise DPoPRefusal(f"the proof {described}: use the DPoP-Nonce given", "nonce",
                          error="use_dpop_nonce")
    return VerifiedProof(key.thumbprint(), jti, claims)


class SeenJtis:
    """The ``jti``s of accepted proofs, remembered for :attr:`keep` seconds and at most
    :attr:`limit` of them (the oldest forgotten first): a replay within that time is refused.
    Thread-safe."""

    def __init__(self, keep: float = 300.0, limit: int = 100_000) -> None:
        self.keep = keep
        self.limit = limit
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, jti: str, now: float) -> None:
        """Remember *jti*, first seen at *now*.

        Raises:
            DPoPRefusal: *jti* was seen within :attr:`keep` seconds.
        """
        with self._lock:
            while self._seen:
                oldest, until = next(iter(self._seen.items()))
                if until > now and len(self._seen) < self.limit:
                    break
                del self._seen[oldest]
            if jti in self._seen:
                raise DPoPRefusal("the proof's jti was already used (a replayed proof)",
                                  "replayed")
            self._seen[jti] = now + self.keep

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)
