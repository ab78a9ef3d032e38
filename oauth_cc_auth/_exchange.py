"""One token exchange, as pure functions: the request of an attempt, what its answer means
(a token, a retry after a delay, or an error), and the redaction of every message.

Nothing here keeps state between attempts or performs I/O; each function is one call. The flow
(``_flow``) strings the attempts together.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import quote, quote_plus

from oauth_cc_auth._actions import TransportFailure
from oauth_cc_auth._config import Config, RetryPolicy
from oauth_cc_auth._messages import TokenHTTPResponse, TokenRequest
from oauth_cc_auth._methods import basic_authorization
from oauth_cc_auth._token import Token
from oauth_cc_auth.errors import (
    AuthError,
    ConfigurationError,
    TokenEndpointError,
    TokenRequestError,
    TokenResponseError,
    redact,
)

__all__ = [
    "Redactor",
    "Retry",
    "check_request",
    "judge",
    "parse_retry_after",
    "read_token",
    "refusal",
    "retry_delay",
    "retry_or_give_up",
    "token_request",
]

logger = logging.getLogger("oauth_cc_auth")


# -- the request -----------------------------------------------------------------------------

#: Stands in for the client assertion when the request is built at construction.
_PLACEHOLDER_ASSERTION = "e30.e30.checking-the-encoding"


def token_request(config: Config) -> tuple[TokenRequest, tuple[str, ...]]:
    """The token request of one attempt, and the secrets it carries beyond the configured
    ones (its client assertion, signed or read for this attempt alone)."""
    client = config.client
    assertion = config.authentication.assertion(client.client_id, client.token_url)
    if assertion is None:
        return config.provider.encode_request(config.provider, client), ()
    client = dataclasses.replace(client, client_assertion=assertion)
    return config.provider.encode_request(config.provider, client), (assertion,)


def check_request(config: Config) -> TokenRequest:
    """The token request built once at construction, so that credentials the provider cannot
    encode are a configuration error; raised outside the except block, as the encoding error
    holds them. Token requests themselves are built anew for every attempt."""
    client = config.client
    if config.authentication.uses_assertion:
        client = dataclasses.replace(client, client_assertion=_PLACEHOLDER_ASSERTION)
    try:
        return config.provider.encode_request(config.provider, client)
    except (UnicodeError, ValueError, TypeError) as exc:
        failure = type(exc).__name__
    raise ConfigurationError(
        f"the client id or secret cannot be encoded for the token request ({failure})"
    )


# -- redaction -------------------------------------------------------------------------------


def secret_forms(secret: str) -> set[str]:
    """*secret* as an endpoint might echo it (raw, form-encoded, percent-encoded, JSON-escaped)
    and as a message might show it (escaped by ``repr`` inside single or double quotes)."""
    # repr() of a text holding both quote kinds escapes the single quotes: strip the 3-char
    # tail and the delimiters again to get the secret's own escaped form.
    in_single = repr(secret + "'\"")[1:-4]
    return {
        secret,
        quote_plus(secret),
        quote(secret, safe=""),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        in_single,
        in_single.replace("\\'", "'"),
        ascii(secret + "'\"")[1:-4],
    }


class Redactor:
    """Takes a client's secrets out of a text: its secret, its Basic credentials, the tokens
    *known* returns (those its slot held or saw refused) and the values it was made
    :meth:`carrying` (an attempt's client assertion), in every form an echo or a ``repr``
    gives them."""

    __slots__ = ("_known", "_secrets")

    def __init__(
        self, config: Config, checked: TokenRequest, known: Callable[[], Iterable[str]] = tuple
    ) -> None:
        secret = config.client.client_secret
        self._secrets = secret_forms(secret) if secret is not None else set()
        # A client_secret_basic header carries the secret too (base64); with issuer= the
        # method may become client_secret_basic only once the metadata is known.
        authorization = checked.headers.get("Authorization", "")
        if secret is not None and not authorization:
            try:
                authorization = basic_authorization(config.client.client_id, secret)
            except (UnicodeError, ValueError):  # not encodable: never sent either
                authorization = ""
        if authorization:
            self._secrets.update({authorization, authorization.partition(" ")[2]})
        self._known = known

    def carrying(self, values: Iterable[str]) -> Redactor:
        """This redactor, also taking out *values*."""
        other = object.__new__(Redactor)
        other._secrets = set(self._secrets)
        for value in values:
            other._secrets.update(secret_forms(value))
        other._known = self._known
        return other

    def __call__(self, text: str, extra: Iterable[str] = ()) -> str:
        secrets = set(self._secrets)
        for value in (*extra, *self._known()):
            secrets.update(secret_forms(value))
        return redact(text, secrets)


# -- retries ---------------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 §10.2.3), or ``None``."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    import email.utils  # only for the rare HTTP-date form

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now())


def retry_delay(
    policy: RetryPolicy, attempt: int, retry_after: float | None, rng: Callable[[], float]
) -> float | None:
    """Seconds to wait before retry number *attempt* (0-based), or ``None`` to give up."""
    if attempt >= policy.max_retries:
        return None
    if retry_after is not None:
        return min(retry_after, policy.max_retry_after)
    # Exponential backoff with full jitter, so that a fleet does not retry in lockstep.
    return min(policy.max_backoff, policy.backoff * 2.0**attempt) * rng()


# -- what an answer means --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Retry:
    """Try again after *delay* seconds; *failure* says why (for the log). A re-send that
    answers the server's demand (a DPoP nonce) does not *count* against ``max_retries``."""

    delay: float
    failure: str
    counts: bool = True


def judge(
    config: Config,
    request: TokenRequest,
    outcome: TokenHTTPResponse | TransportFailure,
    *,
    attempt: int,
    sent_at: float,
    redactor: Redactor,
    rng: Callable[[], float],
) -> Token | Retry:
    """What the outcome of attempt number *attempt* (0-based) means: the token, a
    :class:`Retry`, or (raised) the error to give the caller. *redactor* carries the
    attempt's own secrets; *sent_at* is when the request was sent (on the flow's clock)."""
    if isinstance(outcome, TransportFailure):
        failure = redactor(outcome.description)
    elif isinstance(outcome, TokenHTTPResponse):
        status = outcome.status_code
        if outcome.unread is not None and status != 429 and status < 500:
            raise _unread(config, outcome)
        if 200 <= status < 300:
            return read_token(config, outcome, sent_at, redactor)
        if status != 429 and status < 500:
            raise refusal(config, outcome, redactor)
        failure = f"HTTP {status}"
    else:  # pragma: no cover - a driver bug
        raise TypeError(f"unexpected answer to Send: {outcome!r}")
    return retry_or_give_up(config, f"token endpoint {request.url}", outcome, failure,
                            attempt=attempt, rng=rng)


def retry_or_give_up(
    config: Config,
    what: str,
    outcome: TokenHTTPResponse | TransportFailure,
    failure: str,
    *,
    attempt: int,
    rng: Callable[[], float],
) -> Retry:
    """After a retryable *failure* (no answer, 429, 5xx) of attempt number *attempt* at
    *what* (``"token endpoint <url>"``): the :class:`Retry`, or (raised) the
    ``TokenEndpointError`` when the retries are spent."""
    retry_after = None
    if isinstance(outcome, TokenHTTPResponse):
        retry_after = parse_retry_after(outcome.headers.get("Retry-After"))
    delay = retry_delay(config.retry, attempt, retry_after, rng)
    if delay is None:
        raise TokenEndpointError(
            f"{what} failed after {attempt + 1} attempt(s): {failure}",
            status_code=outcome.status_code if isinstance(outcome, TokenHTTPResponse) else None,
        )
    return Retry(delay, failure)


def _unread(config: Config, response: TokenHTTPResponse) -> AuthError:
    """An answer not read to its end (too large, or its encoding undecodable): the class
    its status says (a 5xx or 429 is retried without reading its body)."""
    status = response.status_code
    what = (
        f"more than max_response_bytes={config.max_response_bytes}"
        if response.unread == "too large"
        else "a body whose Content-Encoding cannot be decoded"
    )
    message = (
        f"token endpoint {config.client.token_url} answered {status} with {what}; "
        "not read further"
    )
    if 400 <= status < 500:
        return TokenRequestError(message, status_code=status)
    return TokenResponseError(message, status_code=status)


def refusal(config: Config, response: TokenHTTPResponse, redactor: Redactor) -> AuthError:
    """The error for a token request refused (4xx) or answered with a 3xx or 1xx."""
    status = response.status_code
    url = config.client.token_url
    if not 400 <= status < 500:
        where = response.headers.get("Location")
        return TokenResponseError(
            f"token endpoint {url} answered {status}"
            + (" (a redirect; token requests are not redirected)" if where else ""),
            status_code=status,
        )
    provider = config.provider
    try:
        error, description = provider.decode_error(provider, response)
    except Exception:  # a provider's decoder failing on a malformed refusal
        error = description = None
    error = redactor(error) if error else None
    description = redactor(description) if description else None
    message = f"token endpoint {url} refused the token request: HTTP {status}"
    if error:
        message += f" {error}"
    if description:
        message += f": {description}"
    return TokenRequestError(message, status_code=status, error=error, description=description)


def read_token(
    config: Config, response: TokenHTTPResponse, sent_at: float, redactor: Redactor
) -> Token:
    """The token of a 2xx answer, read through the provider's decoder; raises
    ``TokenResponseError`` for an answer that holds no usable Bearer token."""
    url = config.client.token_url
    provider = config.provider
    unusable: TokenResponseError | None = None
    try:
        fields = provider.decode_response(provider, response)
        if not isinstance(fields, Mapping):
            raise TypeError(f"the provider read a {type(fields).__name__}, not a mapping")
    except (AuthError, ValueError) as exc:
        error = getattr(exc, "error", None)
        description = getattr(exc, "description", None)
        unusable = TokenResponseError(
            redactor(str(exc)),
            status_code=response.status_code,
            error=redactor(error) if error else None,
            description=redactor(description) if description else None,
        )
    except Exception as exc:  # anything else a decoder raises on a malformed answer
        unusable = TokenResponseError(
            f"token endpoint {url} answered {response.status_code} with a body that "
            f"cannot be read ({type(exc).__name__})",
            status_code=response.status_code,
        )
    if unusable is not None:
        # Raised outside the except block: the provider's exception, which may hold the
        # answer's unredacted text, must not stay reachable as __context__.
        raise unusable
    access_token = fields.get("access_token")
    issued = (access_token,) if isinstance(access_token, str) else ()

    def bad(why: str) -> TokenResponseError:
        return TokenResponseError(
            redactor(f"token endpoint {url} answered {response.status_code} {why}", issued),
            status_code=response.status_code,
        )

    if not isinstance(access_token, str) or not access_token:
        raise bad("without an access_token")
    token_type = fields.get("token_type", "Bearer")
    kind = token_type.lower() if isinstance(token_type, str) else None
    if kind == "dpop" and config.dpop is None:
        raise bad("with a DPoP-bound token, but DPoP is not configured: pass dpop=True")
    if kind not in ("bearer", "dpop"):
        raise bad(f"with token_type {_preview(token_type)}; only Bearer and DPoP tokens "
                  "are supported")
    if kind == "bearer" and config.dpop is not None:
        # RFC 9449 §5: a server that does not bind the token answers Bearer; used as such.
        logger.warning("token endpoint %s answered the DPoP token request of client %s with "
                       "a Bearer token: it is sent as a Bearer token, without proofs",
                       url, config.client.client_id)
    lifetime = _lifetime(fields.get("expires_in", None))
    if lifetime is False:
        raise bad(f"with an unusable expires_in {_preview(fields.get('expires_in'))}")
    if lifetime is None:
        lifetime = provider.default_lifetime
    scope = fields.get("scope")
    if isinstance(scope, str):  # shown by repr(token): never an echoed secret
        scope = redactor(scope, issued)
    token = Token.issued(
        access_token,
        obtained_at=sent_at,
        lifetime=lifetime,
        leeway=config.leeway,
        token_type=token_type,
        scope=scope if isinstance(scope, str) else None,
        raw=fields,
    )
    logger.info(
        "obtained a token for client %s from %s (expires in %s s)",
        config.client.client_id,
        url,
        "?" if lifetime is None else f"{lifetime:g}",
    )
    return token


def _preview(value: object, limit: int = 80) -> str:
    """A short ``repr`` of a value from an answer, for a message (redacted after)."""
    try:
        text = repr(value)
    except RecursionError:
        return f"<a deeply nested {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _lifetime(value: object) -> float | bool | None:
    """``expires_in`` as seconds, ``None`` when absent, ``False`` when unusable."""
    if value is None:
        return None
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return False
    if isinstance(value, int) and not isinstance(value, bool) and value > 10**12:
        return False  # more than 30,000 years; and float() of a huge int overflows
    if not isinstance(value, (int, float)):
        return False
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        return False
    return seconds
