"""``oauth-cc-auth demo``: every seed provider, a generic client authenticating with
private_key_jwt, and a generic client located by its issuer (RFC 8414 discovery), through every
installed HTTP client, against the emulator: fetch, reuse, refresh before expiry, recovery after
revocation, a clear error for bad credentials."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TextIO

from oauth_cc_auth._discovery import metadata_urls
from oauth_cc_auth._registry import get_provider
from oauth_cc_auth._slots import MemoryCache
from oauth_cc_auth.errors import TokenRequestError
from oauth_cc_auth.testing._emulator import SITES, EmulatedClient, Emulator

__all__ = ["run_demo"]

PROVIDERS = ("fcc_finance", "fincalc", "figure")
#: The lifetime of the "refresh before expiry" step, and how long it sends requests.
SHORT_LIFETIME, SHORT_RUN = 1.0, 1.3


class StepFailed(Exception):
    """A step did not behave as it should."""


@dataclasses.dataclass
class Row:
    provider: str
    flavour: str
    token_requests: int = 0
    api_requests: int = 0
    outcome: str = "ok"


#: Sends one GET through a client with the auth object: the status of its answer.
Send = Callable[[Any, str], Awaitable[int]]
#: A client flavour: (auth class, send(auth, url) coroutine, cleanup).
Flavour = tuple[Any, Send, Callable[[], None]]
#: Every flavour the demo knows, in the order of its rows.
FLAVOURS = ("requests", "httpx sync", "httpx async", "httpx2 sync", "httpx2 async", "aiohttp",
            "niquests sync", "niquests async")


def _flavours() -> dict[str, Flavour]:
    """Installed client flavours, by name."""
    found: dict[str, Flavour] = {}
    if importlib.util.find_spec("requests") is not None:
        import requests

        from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth

        session = requests.Session()

        async def send_requests(auth: Any, url: str) -> int:
            return int(session.get(url, auth=auth, timeout=10).status_code)

        found["requests"] = (RequestsAuth, send_requests, session.close)
    for name in ("httpx", "httpx2"):
        if importlib.util.find_spec(name) is not None:
            found[f"{name} sync"], found[f"{name} async"] = _httpx_family(name)
    if importlib.util.find_spec("aiohttp") is not None:
        found["aiohttp"] = _aiohttp()
    if importlib.util.find_spec("niquests") is not None:
        found["niquests sync"], found["niquests async"] = _niquests()
    return found


def _niquests() -> tuple[Flavour, Flavour]:
    """niquests' Session and AsyncSession, each with its auth class."""
    import niquests

    from oauth_cc_auth.niquests import AsyncClientCredentialsAuth, ClientCredentialsAuth

    session = niquests.Session()

    async def send_sync(auth: Any, url: str) -> int:
        return int(session.get(url, auth=auth, timeout=10).status_code or 0)

    async def send_async(auth: Any, url: str) -> int:
        async with niquests.AsyncSession() as async_session:
            response = await async_session.get(url, auth=auth, timeout=10)
            return int(response.status_code or 0)

    return ((ClientCredentialsAuth, send_sync, session.close),
            (AsyncClientCredentialsAuth, send_async, lambda: None))


def _aiohttp() -> Flavour:
    """aiohttp, the auth object as the session's middleware."""
    import aiohttp

    from oauth_cc_auth.aiohttp import ClientCredentialsAuth as AiohttpAuth

    async def send(auth: Any, url: str) -> int:
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(middlewares=(auth,), timeout=timeout) as session,
            session.get(url) as response,
        ):
            await response.read()
            return response.status

    return AiohttpAuth, send, lambda: None


def _httpx_family(name: str) -> tuple[Flavour, Flavour]:
    """The sync and async flavours of httpx or httpx2 (the same interface)."""
    lib = importlib.import_module(name)
    auth_class = importlib.import_module(f"oauth_cc_auth.{name}").ClientCredentialsAuth
    client = lib.Client(timeout=10)

    async def send_sync(auth: Any, url: str) -> int:
        return int(client.get(url, auth=auth).status_code)

    async def send_async(auth: Any, url: str) -> int:
        async with lib.AsyncClient(timeout=10) as async_client:
            return int((await async_client.get(url, auth=auth)).status_code)

    return (auth_class, send_sync, client.close), (auth_class, send_async, lambda: None)


@dataclasses.dataclass(frozen=True)
class Login:
    """One row group: a provider site of the emulator and how its client authenticates."""

    label: str
    site: str
    client: EmulatedClient
    #: Constructor keywords that authenticate the client, and ones that must be refused.
    good: dict[str, Any]
    bad: dict[str, Any]
    #: Texts the error for the wrong credentials must not show.
    hidden: tuple[str, ...]
    #: Located by this issuer (its metadata names the token endpoint) instead of token_url=.
    issuer: str | None = None


def _logins(emulator: Emulator) -> list[Login]:
    """Each seed provider with its secret, a generic client with private_key_jwt, and a
    generic client with its secret located by ``issuer=``."""
    logins = []
    for provider in PROVIDERS:
        client = emulator.client(provider)
        secret = client.client_secret or ""
        wrong = "wrong-" + secret
        logins.append(Login(provider, provider, client, {"client_secret": secret},
                            {"client_secret": wrong}, (secret, wrong)))
    from joserfc.jwk import ECKey

    key, other = ECKey.generate_key("P-256"), ECKey.generate_key("P-256")
    public = {**key.as_dict(private=False), "kid": "demo-key"}
    client = emulator.register_client(
        EmulatedClient("rfc6749", "demo-private-key-jwt", jwks={"keys": [public]})
    )
    pem, wrong_pem = (k.as_pem(private=True).decode() for k in (key, other))
    logins.append(Login(
        "private_key_jwt", "rfc6749", client,
        {"private_key": pem, "private_key_id": "demo-key"},
        {"private_key": wrong_pem, "private_key_id": "demo-key"},
        (pem, wrong_pem),
    ))
    client = emulator.client("rfc6749")
    secret = client.client_secret or ""
    wrong = "wrong-" + secret
    logins.append(Login("rfc6749 via issuer", "rfc6749", client, {"client_secret": secret},
                        {"client_secret": wrong}, (secret, wrong), issuer=emulator.issuer))
    return logins


async def _case(emulator: Emulator, login: Login, auth_class: Any, send: Send, row: Row) -> None:
    client, provider = login.client, login.site
    url = emulator.resource_url(provider)

    def make_auth(credentials: dict[str, Any] = login.good, **overrides: Any) -> Any:
        options = {**client.options(), **credentials, **overrides}
        if login.issuer is not None:
            options["issuer"] = login.issuer
        else:
            options["token_url"] = emulator.token_url(provider)
        return auth_class(client.client_id, cache=MemoryCache(), **options)

    def tokens() -> int:
        return emulator.token_requests[provider]

    def metadata_fetches() -> int:
        # This row's issuer's only: the other sites' rows run meanwhile, in other threads.
        if login.issuer is None:
            return 0
        urls = metadata_urls(login.issuer)
        return sum(r.url in urls for r in emulator.received_at("metadata"))

    async def get(auth: Any) -> int:
        """One API request: how many requests reached the API for it (2 after a 401)."""
        row.api_requests += 1
        sent = emulator.resource_requests[provider]
        status = await send(auth, url)
        if status != 200:
            raise StepFailed(f"the API answered {status}")
        return emulator.resource_requests[provider] - sent

    auth = make_auth()
    before, fetched = tokens(), metadata_fetches()
    await get(auth)
    if tokens() - before != 1:
        raise StepFailed(f"first request: {tokens() - before} token requests, expected 1")
    expected = 0 if login.issuer is None else 1
    if metadata_fetches() - fetched != expected:
        raise StepFailed(f"first request: {metadata_fetches() - fetched} metadata fetches, "
                         f"expected {expected}")
    if login.issuer is not None and auth.token_url != emulator.token_url(provider):
        raise StepFailed(f"discovery: token endpoint {auth.token_url}")
    before, fetched = tokens(), metadata_fetches()
    for _ in range(20):
        await get(auth)
    if tokens() != before or metadata_fetches() != fetched:
        raise StepFailed(f"reuse: {tokens() - before} token requests and "
                         f"{metadata_fetches() - fetched} metadata fetches for 20 API requests")

    emulator.set_lifetime(provider, SHORT_LIFETIME)
    try:
        overrides: dict[str, Any] = {}
        if not SITES[provider].says_expires_in:
            # The answer has no expires_in (Figure): tell the client the lifetime, as a user
            # whose environment issues shorter tokens than documented would.
            documented = get_provider(provider)
            overrides["provider"] = dataclasses.replace(
                documented, default_lifetime=SHORT_LIFETIME
            )
        short = make_auth(**overrides)
        before, end = tokens(), time.monotonic() + SHORT_RUN
        while time.monotonic() < end:
            if await get(short) != 1:
                raise StepFailed("refresh: a request met an expired token")
            await asyncio.sleep(0.02)
        if tokens() - before < 2:
            raise StepFailed("refresh: the short-lived token was not refreshed")
    finally:
        emulator.set_lifetime(provider, None)

    emulator.revoke_all(provider)  # (the other sites' rows run meanwhile)
    before = tokens()
    if await get(auth) != 2 or tokens() - before != 1:
        raise StepFailed("revocation: the 401 was not recovered with one new token")

    try:
        await send(make_auth(login.bad), url)
    except TokenRequestError as exc:
        if any(text in f"{exc}{exc!r}" for text in login.hidden):
            raise StepFailed("bad credentials: the error shows a secret") from None
    else:
        raise StepFailed("bad credentials: no TokenRequestError")


def run_demo(out: TextIO) -> int:
    """Run the demo, print its table to *out*; 0 if everything behaved, else 1."""
    flavours = _flavours()
    if not flavours:
        out.write("no HTTP client installed: pip install 'oauth-cc-auth[all]'\n")
        return 1
    with Emulator() as emulator:
        out.write(f"emulator serving on {emulator.url}\n\n")
        logins = _logins(emulator)

        def site_rows(site: str) -> list[Row]:
            """The rows of one site of the emulator, in order: each row's counts are the
            site's, so the sites run side by side, each in a thread of its own."""
            done = []
            for login in (login for login in logins if login.site == site):
                for flavour, (auth_class, send, _) in flavours.items():
                    row = Row(login.label, flavour)
                    start = emulator.token_requests[login.site]
                    try:
                        asyncio.run(_case(emulator, login, auth_class, send, row))
                    except StepFailed as exc:
                        row.outcome = f"FAILED: {exc}"
                    except Exception as exc:  # a demo reports, it does not crash
                        row.outcome = f"FAILED: {type(exc).__name__}: {exc}"
                    row.token_requests = emulator.token_requests[login.site] - start
                    done.append(row)
            return done

        sites = list(dict.fromkeys(login.site for login in logins))
        try:
            with ThreadPoolExecutor(len(sites)) as pool:
                by_site = dict(zip(sites, pool.map(site_rows, sites), strict=True))
        finally:
            for _, _, cleanup in flavours.values():
                cleanup()
    rows = [row for login in logins for row in by_site[login.site] if row.provider == login.label]
    _table(rows, out)
    missing = [name for name in FLAVOURS if name not in flavours]
    if missing:
        out.write(f"\nnot installed, not shown: {', '.join(missing)}\n")
    failed = [row for row in rows if row.outcome != "ok"]
    out.write(
        "\nsteps per row: first request fetches a token; 20 more reuse it; a 1 s token is "
        "refreshed before it expires; revoked tokens recovered after a 401; wrong "
        "credentials give TokenRequestError. private_key_jwt: the generic provider with an "
        "EC key, a new signed assertion for every token request. rfc6749 via issuer: the "
        "generic provider located by issuer= instead of token_url=, its token endpoint read "
        "from the RFC 8414 metadata fetched once with the first token request\n"
    )
    verdict = "all behaved" if not failed else f"{len(failed)} misbehaved"
    out.write(f"\n{len(rows)} provider/client rows: {verdict}\n")
    return 1 if failed else 0


def _table(rows: list[Row], out: TextIO) -> None:
    header = ("provider", "client", "token requests", "API requests", "outcome")
    cells = [header] + [
        (r.provider, r.flavour, str(r.token_requests), str(r.api_requests), r.outcome)
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    for n, cell in enumerate(cells):
        out.write(" | ".join(v.ljust(w) for v, w in zip(cell, widths, strict=True)).rstrip())
        out.write("\n")
        if n == 0:
            out.write("-+-".join("-" * w for w in widths) + "\n")
