"""The public surface, and what importing the package pulls in."""

from __future__ import annotations

import subprocess
import sys

import oauth_cc_auth


def test_top_level_names() -> None:
    assert oauth_cc_auth.__all__ == sorted(oauth_cc_auth.__all__)
    assert set(oauth_cc_auth.__all__) == {
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
    }
    for name in oauth_cc_auth.__all__:
        assert hasattr(oauth_cc_auth, name)


def test_import_pulls_in_no_http_library() -> None:
    code = (
        "import sys, oauth_cc_auth\n"
        "loaded = [m for m in ('requests', 'httpx', 'anyio', 'redis', 'cryptography')\n"
        "          if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)  # noqa: S603


def test_error_classes_of_the_adapters() -> None:
    import httpx
    import requests

    import oauth_cc_auth.httpx as hx
    import oauth_cc_auth.requests as rq

    for module in (rq, hx):
        assert issubclass(module.TokenRequestError, oauth_cc_auth.TokenRequestError)
        assert issubclass(module.TokenResponseError, oauth_cc_auth.TokenResponseError)
        assert issubclass(module.TokenEndpointError, oauth_cc_auth.TokenEndpointError)
    assert issubclass(rq.TokenEndpointError, requests.ConnectionError)
    assert issubclass(rq.TokenRequestError, requests.RequestException)
    assert issubclass(hx.TokenEndpointError, httpx.TransportError)
    assert issubclass(hx.TokenRequestError, httpx.HTTPError)
