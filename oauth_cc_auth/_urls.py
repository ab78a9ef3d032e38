"""Where a URL points: its origin (RFC 6454), the unit tokens and nonces are kept for."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["origin"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """RFC 6454 origin of *url*: scheme, host and port (the scheme's default filled in)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)
