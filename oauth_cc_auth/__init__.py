"""OAuth 2.0 client-credentials authentication for requests, httpx, httpx2 and aiohttp.

The adapters live in ``oauth_cc_auth.requests``, ``oauth_cc_auth.httpx``,
``oauth_cc_auth.httpx2`` and ``oauth_cc_auth.aiohttp``; importing this package imports none of
the HTTP libraries.
"""

from __future__ import annotations

from oauth_cc_auth._caches import FileCache as FileCache
from oauth_cc_auth._caches import RedisCache as RedisCache
from oauth_cc_auth._caches import TokenCache as TokenCache
from oauth_cc_auth._registry import available_providers as available_providers
from oauth_cc_auth._registry import get_provider as get_provider
from oauth_cc_auth._slots import MemoryCache as MemoryCache
from oauth_cc_auth._token import Token as Token
from oauth_cc_auth.errors import AuthError as AuthError
from oauth_cc_auth.errors import ConfigurationError as ConfigurationError
from oauth_cc_auth.errors import TokenEndpointError as TokenEndpointError
from oauth_cc_auth.errors import TokenRequestError as TokenRequestError
from oauth_cc_auth.errors import TokenResponseError as TokenResponseError
from oauth_cc_auth.providers import Provider as Provider

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "ConfigurationError",
    "FileCache",
    "MemoryCache",
    "Provider",
    "RedisCache",
    "Token",
    "TokenCache",
    "TokenEndpointError",
    "TokenRequestError",
    "TokenResponseError",
    "__version__",
    "available_providers",
    "get_provider",
]
