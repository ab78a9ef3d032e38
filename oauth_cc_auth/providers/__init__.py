"""Token-endpoint dialects: the :class:`Provider` type and the built-in providers."""

from __future__ import annotations

from oauth_cc_auth.providers._base import (
    Provider as Provider,
)
from oauth_cc_auth.providers._base import (
    client_credentials as client_credentials,
)
from oauth_cc_auth.providers._base import (
    decode_json_object as decode_json_object,
)
from oauth_cc_auth.providers._base import (
    decode_oauth_error as decode_oauth_error,
)
from oauth_cc_auth.providers._base import (
    decode_token_response as decode_token_response,
)
from oauth_cc_auth.providers._base import (
    encode_token_request as encode_token_request,
)
from oauth_cc_auth.providers._base import (
    json_object_or_none as json_object_or_none,
)

__all__ = [
    "Provider",
    "client_credentials",
    "decode_json_object",
    "decode_oauth_error",
    "decode_token_response",
    "encode_token_request",
    "json_object_or_none",
]
