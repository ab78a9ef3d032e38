"""FinCalc: a JSON token request with required ``scope`` and ``email_address``, and answers in a
``{"success": ..., "data"|"message": ...}`` envelope.

Document: "Retrieve token", ``POST /api/oauth/token``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oauth_cc_auth._messages import TokenHTTPResponse
from oauth_cc_auth.errors import TokenResponseError
from oauth_cc_auth.providers._base import (
    Provider,
    decode_json_object,
    decode_oauth_error,
    json_object_or_none,
)

__all__ = ["provider"]


def _description(payload: Mapping[str, Any]) -> str | None:
    message = payload.get("message")
    if isinstance(message, Mapping) and isinstance(message.get("description"), str):
        return str(message["description"])
    if isinstance(message, str):
        return message
    return None


def decode_envelope(provider: Provider, response: TokenHTTPResponse) -> Mapping[str, Any]:
    """``{"success": true, "data": {token}}`` -> the token; anything else is unusable."""
    payload = decode_json_object(response)
    if payload.get("success") is not True:
        reason = _description(payload)
        raise TokenResponseError(
            f"FinCalc answered {response.status_code} with success={payload.get('success')!r}: "
            f"{reason or 'no reason given'}",
            description=reason,
        )
    data = payload.get("data")
    if not isinstance(data, dict):
        raise TokenResponseError(f"FinCalc answered {response.status_code} without a data object")
    return data


def decode_envelope_error(
    provider: Provider, response: TokenHTTPResponse
) -> tuple[str | None, str | None]:
    """``{"success": false, "message": {"description": ...}}`` -> ``(None, description)``.

    FinCalc sends no OAuth error code; an RFC 6749 error body is read as well, just in case.
    """
    error, description = decode_oauth_error(provider, response)
    payload = json_object_or_none(response.body) or {}
    return error, _description(payload) or description


provider = Provider(
    name="fincalc",
    environments={"production": "https://api.fincalc.co.uk/api/oauth/token"},
    default_environment="production",
    body_format="json",
    extra_fields=frozenset({"email_address"}),
    required_fields=("scope", "email_address"),
    # "The access token will be valid for 24 hours."
    default_lifetime=86400.0,
    description="FinCalc (JSON body; scope and email_address required; tokens for 24 h)",
    decode_response=decode_envelope,
    decode_error=decode_envelope_error,
)
