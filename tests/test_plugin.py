"""The pytest fixture, used by a test suite outside this package's own."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


# A pytest of its own in a subprocess, about 3 s. The fixture itself, loaded through the same
# entry point, is used in the default run by tests/test_file_cache.py.
@pytest.mark.slow
def test_fixture_in_a_users_test_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_users_integration="""
        import requests
        from oauth_cc_auth.requests import ClientCredentialsAuth

        def test_my_integration(oauth_cc_emulator):
            client = oauth_cc_emulator.client("figure")
            auth = ClientCredentialsAuth(client.client_id, client.client_secret,
                                         token_url=oauth_cc_emulator.token_url("figure"),
                                         **client.options())
            url = oauth_cc_emulator.resource_url("figure")
            assert requests.get(url, auth=auth, timeout=10).status_code == 200
            oauth_cc_emulator.revoke_all()
            assert requests.get(url, auth=auth, timeout=10).status_code == 200
            assert oauth_cc_emulator.token_requests["figure"] == 2

        def test_each_test_gets_a_fresh_emulator(oauth_cc_emulator):
            assert oauth_cc_emulator.token_requests["figure"] == 0
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_fixture_with_aiohttp_and_niquests(oauth_cc_emulator: object) -> None:
    """The fixture's emulator serves the aiohttp middleware and niquests' two auth classes
    (loaded through the entry point, as a user's suite gets it)."""
    import asyncio

    import aiohttp
    import niquests

    from oauth_cc_auth.aiohttp import ClientCredentialsAuth as AiohttpAuth
    from oauth_cc_auth.niquests import AsyncClientCredentialsAuth, ClientCredentialsAuth
    from oauth_cc_auth.testing import Emulator

    assert isinstance(oauth_cc_emulator, Emulator)
    emulator = oauth_cc_emulator
    client = emulator.client("fincalc")
    url = emulator.resource_url("fincalc")

    def auth(cls: type) -> object:
        return cls(client.client_id, client.client_secret, cache="memory:",
                   token_url=emulator.token_url("fincalc"), **client.options())

    async def with_aiohttp() -> int:
        timeout = aiohttp.ClientTimeout(total=10)
        async with (aiohttp.ClientSession(middlewares=(auth(AiohttpAuth),),
                                          timeout=timeout) as session,
                    session.get(url) as response):
            return response.status

    async def with_async_niquests() -> int | None:
        async with niquests.AsyncSession() as session:
            response = await session.get(url, auth=auth(AsyncClientCredentialsAuth),
                                         timeout=10)
            return response.status_code

    assert asyncio.run(asyncio.wait_for(with_aiohttp(), 20)) == 200
    with niquests.Session() as session:
        assert session.get(url, auth=auth(ClientCredentialsAuth), timeout=10).status_code == 200
    assert asyncio.run(asyncio.wait_for(with_async_niquests(), 20)) == 200
    # One token between the three: the process's memory cache serves every adapter.
    assert emulator.token_requests["fincalc"] == 1
