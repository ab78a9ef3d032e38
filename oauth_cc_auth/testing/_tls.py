"""Mutual TLS for the emulator (RFC 8705): serving over TLS on loopback, the client certificate
in the WSGI environ, and the server's checks of it.

- Serving: :func:`secured` adds TLS to the emulator's server and handler classes with a
  server-side ``ssl.SSLContext`` made by the caller (its certificate, and the CAs and
  ``verify_mode`` with which client certificates are requested and verified). Each handshake
  runs in the connection's own thread, bounded by :data:`HANDSHAKE_TIMEOUT`, never in the
  accepting one.
- The environ: ``HTTPS=on`` (so ``wsgi.url_scheme`` is ``https``) and, when the client
  presented a certificate, :data:`CLIENT_CERT` with it in PEM (as Apache's mod_ssl names it).
- ``tls_client_auth`` (RFC 8705 §2.1): the certificate, verified by the server context's CAs,
  has the subject DN registered (``EmulatedClient.tls_client_auth_subject_dn``, RFC 4514).
  ``self_signed_tls_client_auth`` (§2.2): the certificate is one registered in the client's
  ``jwks`` (a key's ``x5c``); the server context must trust it (it is its own CA).
- Bound tokens (§3): a token issued over a connection with a client certificate is bound to
  its ``x5t#S256``; the protected resource takes it only over a connection presenting it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from oauth_cc_auth.testing._emulator import EmulatedClient

__all__ = ["CLIENT_CERT", "HANDSHAKE_TIMEOUT", "refusal", "registered", "secured", "thumbprint"]

ServerT = TypeVar("ServerT")
HandlerT = TypeVar("HandlerT")

#: The environ key of the client certificate (PEM), as mod_ssl's ``SSLOptions +ExportCertData``.
CLIENT_CERT = "SSL_CLIENT_CERT"
#: Seconds a TLS handshake may take before the connection is closed.
HANDSHAKE_TIMEOUT = 10.0


class _TLSServer:
    """A mixin of the emulator's server: every connection wrapped in TLS in its own thread."""

    ssl_context: ssl.SSLContext
    _connections: set[socket.socket]
    _connections_lock: Any

    def finish_request(self, request: socket.socket, client_address: Any) -> None:
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            connection = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ValueError):
            return  # a failed handshake (no certificate where one is required...): closed
        connection.settimeout(None)
        with self._connections_lock:
            self._connections.add(connection)  # so that stop() can shut it down
        try:
            super().finish_request(connection, client_address)  # type: ignore[misc]
        finally:
            with self._connections_lock:
                self._connections.discard(connection)
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_WR)
            connection.close()


class _TLSHandler:
    """A mixin of the emulator's handler: what the connection's TLS says, in the environ."""

    connection: Any

    def get_environ(self) -> dict[str, str]:
        environ: dict[str, str] = super().get_environ()  # type: ignore[misc]
        environ["HTTPS"] = "on"
        der = self.connection.getpeercert(binary_form=True)
        if der:
            environ[CLIENT_CERT] = ssl.DER_cert_to_PEM_cert(der)
        return environ


def secured(
    server_class: type[ServerT], handler_class: type[HandlerT], context: ssl.SSLContext
) -> tuple[type[ServerT], type[HandlerT]]:
    """Subclasses of *server_class* and *handler_class* serving over TLS with the
    server-side *context*."""
    if not isinstance(context, ssl.SSLContext):
        raise TypeError(f"ssl_context must be an ssl.SSLContext, not {type(context).__name__}")
    server = type("TLS" + server_class.__name__, (_TLSServer, server_class),
                  {"ssl_context": context})
    handler = type("TLS" + handler_class.__name__, (_TLSHandler, handler_class), {})
    return cast("type[ServerT]", server), cast("type[HandlerT]", handler)


def _presented(environ: Mapping[str, Any]) -> bytes | None:
    """The DER of the client certificate of the request's connection, or ``None``."""
    pem = environ.get(CLIENT_CERT)
    if not isinstance(pem, str) or not pem:
        return None
    return ssl.PEM_cert_to_DER_cert(pem)


def thumbprint(environ: Mapping[str, Any]) -> str | None:
    """``x5t#S256`` (RFC 8705 §3.1) of the connection's client certificate, or ``None``."""
    der = _presented(environ)
    if der is None:
        return None
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")


def _registered_certificates(client: EmulatedClient) -> set[bytes]:
    """The DER of every certificate in the ``x5c`` of *client*'s ``jwks`` (RFC 8705 §2.2)."""
    found: set[bytes] = set()
    keys = (client.jwks or {}).get("keys", [])
    for key in keys if isinstance(keys, list) else []:
        chain = key.get("x5c") if isinstance(key, Mapping) else None
        if isinstance(chain, list) and chain and isinstance(chain[0], str):
            with contextlib.suppress(ValueError):
                found.add(base64.b64decode(chain[0], validate=True))
    return found


def registered(client: EmulatedClient) -> bool:
    """Whether *client* may authenticate with a TLS client certificate."""
    return client.tls_client_auth_subject_dn is not None or bool(
        _registered_certificates(client)
    )


def refusal(client: EmulatedClient, environ: Mapping[str, Any]) -> str | None:
    """Why the connection's certificate does not authenticate *client*, or ``None`` if it
    does: its subject DN (``tls_client_auth``) or the certificate itself (self-signed)."""
    der = _presented(environ)
    if der is None:
        return "no client certificate was presented (mutual TLS)"
    subject_dn = client.tls_client_auth_subject_dn
    if subject_dn is not None:
        from cryptography import x509

        subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        if subject == subject_dn:
            return None
    if der in _registered_certificates(client):
        return None
    return "the client certificate is not one registered for this client"
