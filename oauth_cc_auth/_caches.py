"""Token caches shared between processes: the interface, the file cache, the Redis cache.

The auth object keeps its token in the in-process memory cache first, so a warm token costs no
cache I/O; a shared cache is consulted only when the memory cache has no fresh token. Entries
are sealed by the core (see ``_sealed``): a cache only ever sees opaque bytes, under keys that
are digests, never a secret. The backends live in ``_file_cache`` and ``_redis_cache``.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from oauth_cc_auth._file_cache import FileCache
from oauth_cc_auth._redis_cache import RedisCache, without_password
from oauth_cc_auth._token_cache import TokenCache
from oauth_cc_auth.errors import ConfigurationError

__all__ = ["FileCache", "RedisCache", "TokenCache", "open_cache", "without_password"]


def open_cache(url: str) -> TokenCache | None:
    """The cache a URL names: ``memory:`` (``None``: the in-process cache only), ``file:``
    or ``file:///dir``, ``redis://host:port/db`` (``rediss://`` for TLS). A
    ``lock_timeout`` query parameter sets the lock timeout. ``file:`` whose default directory
    is unsafe is ``None`` too, with a warning (see :class:`FileCache`).

    Raises:
        ConfigurationError: the URL names no known cache, or is malformed.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"cache must be a cache object or a URL, not {url!r}")
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    try:
        lock_timeout = float(query.pop("lock_timeout", 30.0))
    except ValueError:
        raise ConfigurationError("lock_timeout must be a number of seconds") from None
    if parts.scheme == "memory":
        return None
    if parts.scheme == "file":
        cache = FileCache(parts.path or None, lock_timeout=lock_timeout)
        # An unsafe default directory (warned about): the memory cache, and no file I/O.
        return None if cache.memory_only else cache
    if parts.scheme in ("redis", "rediss", "unix"):
        rest = urlunsplit(parts._replace(query=urlencode(query)))
        return RedisCache(rest, lock_timeout=lock_timeout)
    raise ConfigurationError(
        f"unknown cache {without_password(url)!r}; accepted: memory:, file:[///dir], "
        "redis://host:port/db"
    )
