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
