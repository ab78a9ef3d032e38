"""Token-endpoint dialects: the :class:`Provider` type, the built-in providers, and what a
provider of your own works with.

A provider's hooks take and return the value types exported here: ``encode_request(provider,
client: ClientSettings) -> TokenRequest``, ``decode_response(provider, response:
TokenHTTPResponse) -> Mapping`` and ``decode_error(provider, response: TokenHTTPResponse) ->
(error, description)``, and ``check_settings(provider, client: ClientSettings) -> None``; the
functions here are the default hooks and their building blocks.
"""

from __future__ import annotations

from oauth_cc_auth._messages import ClientSettings, TokenHTTPResponse, TokenRequest
from oauth_cc_auth.providers._base import (
    Provider,
    client_credentials,
    decode_json_object,
    decode_oauth_error,
    decode_token_response,
    encode_token_request,
    json_object_or_none,
    oauth_error_or,
    require_token_path,
    token_path_check,
)

__all__ = [
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
