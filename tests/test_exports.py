"""The public surface, and what importing the package pulls in."""

from __future__ import annotations

import subprocess
import sys

import pytest

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


def test_the_provider_api() -> None:
    """What a provider author imports: the hooks' value types and the default hooks."""
    from oauth_cc_auth import providers

    assert providers.__all__ == [
        "ClientSettings",
        "Provider",
        "TokenHTTPResponse",
        "TokenRequest",
        "client_credentials",
        "decode_json_object",
        "decode_oauth_error",
        "decode_token_response",
        "encode_token_request",
        "json_object_or_none",
        "oauth_error_or",
        "require_token_path",
        "token_path_check",
    ]
    client = providers.ClientSettings("https://auth.example/token", "id", "s+cret",
                                      auth_method="client_secret_basic")
    request = providers.encode_token_request(oauth_cc_auth.get_provider("rfc6749"), client)
    assert isinstance(request, providers.TokenRequest)
    assert providers.client_credentials(client) == (
        {"Authorization": request.headers["Authorization"]}, []
    )
    answer = providers.TokenHTTPResponse(400, {}, b'{"error": "invalid_client"}')
    assert providers.decode_oauth_error(oauth_cc_auth.Provider("x"), answer) == (
        "invalid_client", None
    )


def test_import_pulls_in_no_http_library() -> None:
    code = (
        "import sys, oauth_cc_auth\n"
        "loaded = [m for m in ('requests', 'httpx', 'httpx2', 'aiohttp', 'niquests', 'anyio',\n"
        "                      'redis', 'cryptography')\n"
        "          if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)  # noqa: S603


@pytest.mark.parametrize(("adapter", "other"), [("httpx", "httpx2"), ("httpx2", "httpx")])
def test_an_httpx_adapter_does_not_import_the_other_library(adapter: str, other: str) -> None:
    code = (
        f"import sys, oauth_cc_auth.{adapter}\n"
        f"assert {adapter!r} in sys.modules\n"
        f"loaded = [m for m in sys.modules if m.split('.')[0] in ({other!r}, 'requests')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)  # noqa: S603


def test_error_classes_of_the_adapters() -> None:
    import httpx
    import httpx2
    import requests

    import oauth_cc_auth.httpx as hx
    import oauth_cc_auth.httpx2 as hx2
    import oauth_cc_auth.requests as rq

    for module in (rq, hx, hx2):
        assert module.__all__ == [
            "ClientCredentialsAuth",
            "TokenEndpointError",
            "TokenRequestError",
            "TokenResponseError",
        ]
        assert issubclass(module.TokenRequestError, oauth_cc_auth.TokenRequestError)
        assert issubclass(module.TokenResponseError, oauth_cc_auth.TokenResponseError)
        assert issubclass(module.TokenEndpointError, oauth_cc_auth.TokenEndpointError)
    assert issubclass(rq.TokenEndpointError, requests.ConnectionError)
    assert issubclass(rq.TokenRequestError, requests.RequestException)
    for lib, adapter, other in ((httpx, hx, httpx2), (httpx2, hx2, httpx)):
        assert issubclass(adapter.TokenEndpointError, lib.TransportError)
        assert issubclass(adapter.TokenRequestError, lib.HTTPError)
        assert issubclass(adapter.TokenResponseError, lib.HTTPError)
        assert issubclass(adapter.ClientCredentialsAuth, lib.Auth)
        # httpx and httpx2 have classes of their own: an adapter's belong to its library only.
        assert not issubclass(adapter.ClientCredentialsAuth, other.Auth)
        assert not issubclass(adapter.TokenRequestError, other.HTTPError)


@pytest.mark.parametrize("module", ["httpx", "httpx2"])
def test_error_request_is_the_librarys_property(module: str) -> None:
    import importlib

    adapter = importlib.import_module(f"oauth_cc_auth.{module}")
    err = adapter.TokenRequestError("refused", status_code=400)
    with pytest.raises(RuntimeError, match="request"):  # unset, as the library says it
        err.request  # noqa: B018
