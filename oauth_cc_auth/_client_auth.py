"""Client authentication at the token endpoint: how the client proves who it is.

- ``client_secret_post`` and ``client_secret_basic`` (RFC 6749 §2.3.1). The Basic header is
  written here, not by Authlib: the RFC wants client id and secret form-encoded before base64,
  which Authlib's ``encode_client_secret_basic`` does not do (a ``+`` in a secret is then read
  as a space by servers that follow the RFC).
- ``client_secret_jwt`` and ``private_key_jwt`` (RFC 7523 §2.2): an assertion signed with
  joserfc (Authlib's JOSE library) **for every token request**, with a fresh ``jti``.
- ``client_assertion=``: an assertion issued by someone else (a Kubernetes projected token, an
  Entra federated credential, a SPIFFE JWT-SVID), read for every token request.
- ``tls_client_auth`` and ``self_signed_tls_client_auth`` (RFC 8705 §2): the client certificate
  (``cert=``) presented in the TLS handshake by the adapter's own token client; the form body
  names the client. ``cert=`` with another method binds the tokens to the certificate (§3).

Nothing here keeps a key or an assertion where a ``repr`` could show it.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypedDict, Unpack

from oauth_cc_auth._methods import (
    ASSERTION_TYPE,
    SECRET_METHODS,
    TLS_METHODS,
    basic_authorization,
)
from oauth_cc_auth.errors import ConfigurationError

__all__ = [
    "ASSERTION_TYPE",
    "TLS_METHODS",
    "CertSpec",
    "ClientAuthOptions",
    "ClientAuthentication",
    "ClientCertificate",
    "basic_authorization",
    "build_authentication",
    "load_client_certificate",
]

#: Largest key, certificate or external assertion file read (a Kubernetes token is ~1 KiB).
MAX_FILE_BYTES = 64 * 1024

#: Signing algorithms per key type (RFC 7518 §3.1; EdDSA: RFC 8037).
_RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512", "secp256k1": "ES256K"}
_HMAC_ALGS = ("HS256", "HS384", "HS512")
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$")

AssertionSource = Callable[[], "str | bytes"] | str | os.PathLike[str]
#: A client certificate as requests' ``cert=`` takes it: a PEM file holding certificate and
#: key, or a ``(certificate file, key file)`` pair.
CertSpec = str | os.PathLike[str] | tuple[str | os.PathLike[str], str | os.PathLike[str]]


def _read_bounded(path: str | os.PathLike[str], what: str) -> bytes:
    """A regular file's bytes, at most :data:`MAX_FILE_BYTES`, opened so that a FIFO or a
    device at the path cannot hang or flood the caller. The path is never in the error: a
    secret given there by mistake would be echoed."""
    reason: str | None = None
    data = b""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    else:
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                reason = "not a regular file"
            elif info.st_size > MAX_FILE_BYTES:
                reason = f"larger than {MAX_FILE_BYTES} bytes"
            else:
                with os.fdopen(fd, "rb", closefd=False) as file:
                    data = file.read(MAX_FILE_BYTES + 1)
                if len(data) > MAX_FILE_BYTES:
                    reason = f"larger than {MAX_FILE_BYTES} bytes"
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
        finally:
            os.close(fd)
    if reason is not None:
        raise ConfigurationError(f"{what} cannot be read: {reason}")
    return data


def _pem_or_path(value: object, what: str) -> bytes:
    """PEM text given inline (str or bytes) or read from a path."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str) and "-----BEGIN" in value:
        return value.encode("ascii", "replace")
    if isinstance(value, (str, os.PathLike)):
        if isinstance(value, str) and (not value or "\n" in value):
            raise ConfigurationError(f"{what} is neither PEM text nor a path to a PEM file")
        return _read_bounded(value, f"{what} file")
    raise ConfigurationError(
        f"{what} must be PEM text, a path or (for keys) a JWK mapping, not {type(value).__name__}"
    )


# -- the signing key ----------------------------------------------------------------------------


def load_private_key(value: object, what: str = "private_key") -> Any:
    """A joserfc private key (*what*: the option it was given as) from PEM text, a PEM file
    or a JWK mapping."""
    from joserfc.errors import JoseError
    from joserfc.jwk import ECKey, OKPKey, RSAKey

    failure: str | None = None
    key: Any = None
    if isinstance(value, Mapping):
        if "d" not in value:
            raise ConfigurationError(f"{what} is a public JWK: the private key is needed")
        kty = value.get("kty")
        loaders: dict[str, Any] = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}
        if kty not in loaders:
            raise ConfigurationError(
                f"{what} JWK has kty {kty!r}; accepted: RSA, EC, OKP (use "
                "client_secret_jwt for a shared secret)"
            )
        try:
            key = loaders[kty].import_key(dict(value))
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            failure = type(exc).__name__
    else:
        pem = _pem_or_path(value, what)
        if b"ENCRYPTED" in pem:
            raise ConfigurationError(
                f"{what} is encrypted: give it decrypted (from a secret store, or with "
                "`openssl pkey -in key.pem -out plain.pem`)"
            )
        for loader in (RSAKey, ECKey, OKPKey):
            try:
                key = loader.import_key(pem)
                break
            except (JoseError, ValueError, TypeError) as exc:
                failure = type(exc).__name__
        else:
            key = None
    if key is None:
        # Raised outside the except blocks: the parsing error may hold the key's bytes.
        raise ConfigurationError(
            f"{what} cannot be loaded as an RSA, EC or OKP key ({failure})"
        )
    if not key.is_private:
        raise ConfigurationError(f"{what} is a public key: the private key is needed")
    return key


def _default_alg(key: Any) -> str:
    kty = key.key_type
    if kty == "RSA":
        return "RS256"
    algs = algs_for(key)
    if not algs:
        raise ConfigurationError(
            f"private_key is a {kty} key on {key.curve_name}, which cannot sign a JWS"
        )
    return algs[0]


def algs_for(key: Any) -> tuple[str, ...]:
    """The JWS algorithms *key* can sign with, the default first."""
    kty = key.key_type
    if kty == "RSA":
        return _RSA_ALGS
    curve = key.curve_name
    if kty == "EC":
        return (_EC_ALGS[curve],) if curve in _EC_ALGS else ()
    # RFC 9864's fully specified names first; "EdDSA" (RFC 8037) for older servers.
    return (curve, "EdDSA") if curve in ("Ed25519", "Ed448") else ()


def _certificate_thumbprint(value: object, key: Any) -> str:
    """``x5t#S256`` (RFC 7515 §4.1.8) of a PEM certificate, checked against *key*."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pem = _pem_or_path(value, "certificate")
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        certificate = None
    if certificate is None:
        raise ConfigurationError("certificate is not a PEM X.509 certificate")
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(*spki) != key.public_key.public_bytes(*spki):
        raise ConfigurationError("certificate is not the certificate of private_key")
    digest = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def key_material(key: Any) -> bytes:
    """Bytes only a holder of the private key has: what a shared cache's key is derived from."""
    from cryptography.hazmat.primitives import serialization

    return bytes(
        key.private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


# -- the TLS client certificate (RFC 8705) ----------------------------------------------------

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL
)


@dataclasses.dataclass(frozen=True, eq=False)
class ClientCertificate:
    """A client certificate checked at construction: where it is, and what derives from it."""

    #: The files as given (``os.fspath``'d): a path, or a ``(certificate, key)`` pair.
    files: str | tuple[str, str]
    #: ``x5t#S256`` of the certificate (RFC 8705 §3.1): what a bound token's ``cnf`` holds.
    thumbprint: str
    #: The private key's bytes (PKCS #8 DER): a shared cache's key material. Never shown.
    key_material: bytes = dataclasses.field(repr=False)

    @property
    def pair(self) -> tuple[str, str | None]:
        """``(certfile, keyfile)`` as ``ssl.SSLContext.load_cert_chain`` takes them."""
        return (self.files, None) if isinstance(self.files, str) else self.files


def _cert_path(value: object, what: str) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigurationError(
            "cert must be a path to a PEM file holding certificate and key, or a "
            f"(certificate path, key path) pair, not {type(value).__name__}"
        )
    path = os.fspath(value)
    if not isinstance(path, str) or not path or "\n" in path or "-----BEGIN" in path:
        raise ConfigurationError(f"cert: the {what} must be a path to a PEM file")
    return path


def load_client_certificate(cert: object) -> ClientCertificate:
    """*cert* (``cert=``) read, bounded, and checked: a PEM certificate whose public key is
    the one of the PEM private key with it, unencrypted. Nothing read is ever in an error."""
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    if isinstance(cert, (tuple, list)):
        if len(cert) != 2:
            raise ConfigurationError("cert pair must be (certificate path, key path)")
        files: str | tuple[str, str] = (_cert_path(cert[0], "certificate"),
                                        _cert_path(cert[1], "key"))
        cert_pem = _read_bounded(files[0], "cert certificate file")
        key_pem = _read_bounded(files[1], "cert key file")
    else:
        files = _cert_path(cert, "certificate and key file")
        cert_pem = key_pem = _read_bounded(files, "cert file")
    blocks = [(match.group(1), match.group(0)) for match in _PEM_BLOCK.finditer(cert_pem)]
    certificates = [block for kind, block in blocks if kind == b"CERTIFICATE"]
    key_blocks = [(match.group(1), match.group(0)) for match in _PEM_BLOCK.finditer(key_pem)
                  if match.group(1).endswith(b"PRIVATE KEY")]
    if not certificates:
        raise ConfigurationError("cert holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    if len(key_blocks) != 1:
        raise ConfigurationError(
            "cert holds no PEM private key" if not key_blocks
            else "cert holds more than one PEM private key"
        )
    kind, key_block = key_blocks[0]
    if kind == b"ENCRYPTED PRIVATE KEY" or b"ENCRYPTED" in key_block.split(b"\n", 2)[1]:
        raise ConfigurationError(
            "cert's private key is encrypted: give it decrypted (from a secret store, or with "
            "`openssl pkey -in key.pem -out plain.pem`)"
        )
    certificate: Any = None
    try:
        certificate = x509.load_pem_x509_certificate(certificates[0])
    except ValueError:
        certificate = None
    if certificate is None:
        raise ConfigurationError("cert's certificate is not a PEM X.509 certificate")
    key: Any = None
    failure = ""
    try:
        key = serialization.load_pem_private_key(key_block, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        failure = type(exc).__name__
    if key is None:
        # Raised outside the except block: the parsing error may hold the key's bytes.
        raise ConfigurationError(f"cert's private key cannot be loaded ({failure})")
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise ConfigurationError("cert's certificate and private key do not match")
    digest = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest()
    material = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return ClientCertificate(
        files, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"), bytes(material)
    )


# -- what an auth object authenticates with --------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class ClientAuthentication:
    """The client authentication of one configured client.

    :meth:`assertion` gives the ``client_assertion`` of one token request: signed anew, or
    read anew from an external source; ``None`` for the secret-in-the-request methods.
    """

    #: A method name, or an Authlib-style client-auth callable.
    method: Any
    #: What distinguishes this client's credentials in a cache key (a digest or a public
    #: thumbprint, never the secret itself).
    identity: str
    #: Key material a shared cache's encryption key is derived from; ``None``: none exists
    #: (an external assertion), so no shared cache can be used.
    sealing_material: bytes | None = dataclasses.field(default=None, repr=False)
    #: joserfc key signing the assertion (private_key_jwt, client_secret_jwt).
    key: Any = dataclasses.field(default=None, repr=False)
    alg: str | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    audience: str | None = None
    lifetime: float = 60.0
    #: An external assertion: a callable, or a file to re-read.
    source: Any = dataclasses.field(default=None, repr=False)
    #: The TLS client certificate (``cert=``) the token client presents, if any.
    certificate: ClientCertificate | None = dataclasses.field(default=None, repr=False)

    @property
    def uses_assertion(self) -> bool:
        """Whether token requests carry a ``client_assertion``."""
        return self.key is not None or self.source is not None

    def assertion(self, client_id: str | int, token_url: str) -> str | None:
        """The ``client_assertion`` for one token request, or ``None``."""
        if self.key is not None:
            return self._sign(client_id, self.audience or token_url)
        if self.source is not None:
            return self._external()
        return None

    def _sign(self, client_id: str | int, audience: str) -> str:
        from joserfc import jwt

        alg = self.alg
        if alg is None:  # pragma: no cover - build_authentication always sets one
            raise ConfigurationError("no signing algorithm for the client assertion")
        issued_at = int(time.time())
        # RFC 7523 §3: iss = sub = the client id; the audience; a fresh jti; a short life.
        claims = {
            "iss": str(client_id),
            "sub": str(client_id),
            "aud": audience,
            "jti": secrets.token_urlsafe(24),
            "iat": issued_at,
            "exp": issued_at + max(1, int(self.lifetime)),
        }
        header = {"alg": alg, "typ": "JWT", **self.headers}
        return jwt.encode(header, claims, self.key, algorithms=[alg])

    def _external(self) -> str:
        source = self.source
        if callable(source):
            value = source()
            where = "the client_assertion callable"
        else:
            value = _read_bounded(source, "client_assertion file")
            where = "the client_assertion file"
        if isinstance(value, bytes):
            try:
                value = value.decode("ascii")
            except UnicodeDecodeError:
                value = None
        if not isinstance(value, str) or not _JWT_SHAPE.match(value.strip()):
            raise ConfigurationError(f"{where} gave no JWT (expected header.payload.signature)")
        return value.strip()


def _check_alg(alg: object, accepted: tuple[str, ...], what: str) -> str:
    if not isinstance(alg, str) or alg not in accepted:
        raise ConfigurationError(
            f"signing_alg {alg!r} cannot be used with {what}; accepted: {', '.join(accepted)}"
        )
    return alg


def _secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ClientAuthOptions(TypedDict, total=False):
    """The client-authentication keywords of ``ClientCredentialsAuth``."""

    private_key: Any
    private_key_id: str | None
    signing_alg: str | None
    certificate: Any
    assertion_audience: str | None
    assertion_lifetime: float
    client_assertion: AssertionSource | None
    cert: CertSpec | None


def build_authentication(
    method: Any, client_secret: str | None, **options: Unpack[ClientAuthOptions]
) -> ClientAuthentication:
    """Validate the client-authentication options; every mistake is a ConfigurationError."""
    cert = options.pop("cert", None)
    if isinstance(method, str) and method in TLS_METHODS:
        if cert is None:
            raise ConfigurationError(
                f"auth_method {method!r} needs cert= (a PEM file holding certificate and key, "
                "or a (certificate, key) pair)"
            )
        if client_secret is not None:
            raise ConfigurationError(
                f"client_secret is not used with auth_method {method!r}: leave it out"
            )
        given = [name for name, value in options.items()
                 if value is not None and name != "assertion_lifetime"]
        if given:
            raise ConfigurationError(
                f"{', '.join(sorted(given))} cannot be used with auth_method {method!r}"
            )
        _check_lifetime(options.get("assertion_lifetime", 60.0))
        certificate = load_client_certificate(cert)
        # RFC 8705 §2: the certificate is the credential; its key is the key material.
        return ClientAuthentication(method, "cert:" + certificate.thumbprint,
                                    certificate.key_material, certificate=certificate)
    auth = _build_authentication(method, client_secret, **options)
    if cert is None:
        return auth
    certificate = load_client_certificate(cert)
    # Tokens bound to the certificate (RFC 8705 §3) are of no use with another: a key of
    # their own. An external assertion has no key material; the certificate's key is some.
    return dataclasses.replace(
        auth, identity=f"{auth.identity}+cert:{certificate.thumbprint}",
        sealing_material=auth.sealing_material or certificate.key_material,
        certificate=certificate,
    )


def _check_lifetime(assertion_lifetime: object) -> None:
    if (
        isinstance(assertion_lifetime, bool)
        or not isinstance(assertion_lifetime, (int, float))
        or not 1 <= assertion_lifetime <= 3600
    ):
        raise ConfigurationError(
            f"assertion_lifetime must be a number of seconds from 1 to 3600, not "
            f"{assertion_lifetime!r}"
        )


def _build_authentication(
    method: Any, client_secret: str | None, **options: Unpack[ClientAuthOptions]
) -> ClientAuthentication:
    private_key = options.get("private_key")
    private_key_id = options.get("private_key_id")
    signing_alg = options.get("signing_alg")
    certificate = options.get("certificate")
    assertion_audience = options.get("assertion_audience")
    client_assertion = options.get("client_assertion")
    assertion_lifetime = options.get("assertion_lifetime", 60.0)
    _check_lifetime(assertion_lifetime)
    if assertion_audience is not None and (
        not isinstance(assertion_audience, str) or not assertion_audience
    ):
        raise ConfigurationError("assertion_audience must be a non-empty string")
    jwt_options = {
        "private_key_id": private_key_id,
        "signing_alg": signing_alg,
        "certificate": certificate,
        "assertion_audience": assertion_audience,
    }
    if not isinstance(method, str):  # an Authlib-style callable: it brings its own material
        identity = _secret_digest(client_secret) if client_secret else "callable"
        material = client_secret.encode() if client_secret else None
        return ClientAuthentication(method, identity, material)

    def unused(names: Mapping[str, object], why: str) -> None:
        given = [name for name, value in names.items() if value is not None]
        if given:
            raise ConfigurationError(f"{', '.join(given)} {why}")

    if method in SECRET_METHODS:
        if client_secret is None:
            raise ConfigurationError(f"client_secret is required with auth_method {method!r}")
        unused({"private_key": private_key, "client_assertion": client_assertion},
               f"cannot be used with auth_method {method!r}: use 'private_key_jwt'")
        identity, material = _secret_digest(client_secret), client_secret.encode()
        if method != "client_secret_jwt":
            unused(jwt_options, "only apply to auth_method 'client_secret_jwt' or "
                   "'private_key_jwt'")
            return ClientAuthentication(method, identity, material)
        unused({"certificate": certificate}, "only applies to private_key_jwt")
        from joserfc.jwk import OctKey

        alg = _check_alg(signing_alg or "HS256", _HMAC_ALGS, "client_secret_jwt")
        key = OctKey.import_key(client_secret)
        kid_header = {"kid": private_key_id} if private_key_id else {}
        return _checked(ClientAuthentication(method, identity, material, key, alg, kid_header,
                                             assertion_audience, float(assertion_lifetime)))

    if method != "private_key_jwt":  # pragma: no cover - the config checks names first
        raise ConfigurationError(f"unknown auth_method {method!r}")
    if (private_key is None) == (client_assertion is None):
        raise ConfigurationError(
            "auth_method 'private_key_jwt' needs private_key= or client_assertion= (one of them)"
        )
    if client_secret is not None:
        raise ConfigurationError(
            "client_secret is not used with auth_method 'private_key_jwt': leave it out"
        )
    if client_assertion is not None:
        unused(jwt_options, "cannot be used with client_assertion=: its issuer signs it")
        if isinstance(client_assertion, str) and _JWT_SHAPE.match(client_assertion.strip()):
            raise ConfigurationError(
                "client_assertion takes a path to a file or a callable, not the assertion "
                "itself (it would expire): for a fixed one, pass a callable returning it"
            )
        if callable(client_assertion):
            identity = f"assertion-callable:{id(client_assertion)}:{secrets.token_hex(8)}"
        elif isinstance(client_assertion, (str, os.PathLike)):
            path = os.fspath(client_assertion)
            if not path:
                raise ConfigurationError("client_assertion path is empty")
            identity = "assertion-file:" + hashlib.sha256(
                str(Path(path).absolute()).encode()
            ).hexdigest()
        else:
            raise ConfigurationError(
                "client_assertion must be a callable or a path, not "
                f"{type(client_assertion).__name__}"
            )
        return ClientAuthentication(method, identity, None, source=client_assertion)

    key = load_private_key(private_key)
    alg = _check_alg(signing_alg or _default_alg(key), algs_for(key),
                     f"this {key.key_type} private key")
    headers: dict[str, str] = {}
    kid = private_key_id
    if kid is None and isinstance(private_key, Mapping) and isinstance(private_key.get("kid"), str):
        kid = private_key["kid"]
    if kid is not None:
        if not isinstance(kid, str) or not kid:
            raise ConfigurationError("private_key_id must be a non-empty string")
        headers["kid"] = kid
    if certificate is not None:
        headers["x5t#S256"] = _certificate_thumbprint(certificate, key)
    return _checked(ClientAuthentication(
        method, "key:" + key.thumbprint(), key_material(key), key, alg, headers,
        assertion_audience, float(assertion_lifetime),
    ))


def _checked(auth: ClientAuthentication) -> ClientAuthentication:
    """*auth*, once it has signed an assertion: a key that cannot sign fails here, at
    construction, not at the first token request."""
    from joserfc.errors import JoseError

    failure: str | None = None
    try:
        auth.assertion("check", "https://check.invalid/token")
    except (JoseError, ValueError, TypeError) as exc:
        failure = type(exc).__name__
    if failure is not None:
        raise ConfigurationError(f"signing a client assertion with {auth.alg} failed ({failure})")
    return auth
