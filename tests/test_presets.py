"""The identity-provider presets: each one's documented token request, through every adapter,
and the dialect it adds: required fields (the error says what to copy from which console
page), the URL and scope shapes it refuses, its auth methods, lifetime and error bodies."""

from __future__ import annotations

import base64
import dataclasses
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import urlsplit

import pytest

import oauth_cc_auth
from oauth_cc_auth import ConfigurationError, Provider
from oauth_cc_auth._registry import BUILTIN
from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth
from oauth_cc_auth.testing import EmulatedClient, Received, Reply
from tests.conftest import Harness, build_auth

FORM = "application/x-www-form-urlencoded"
PRESETS = ("entra", "auth0", "okta", "keycloak", "cognito", "salesforce", "pingone", "zitadel")
ENTRA = "https://login.microsoftonline.com/aaaabbbb-0000-cccc-1111-dddd2222eeee/oauth2/v2.0/token"
AUTH0 = "https://example-tenant.us.auth0.com/oauth/token"
OKTA = "https://dev-133337.okta.com/oauth2/default/v1/token"
OKTA_ORG = "https://dev-133337.okta.com/oauth2/v1/token"
KEYCLOAK = "https://sso.example.com/realms/demo/protocol/openid-connect/token"
COGNITO = "https://mydomain.auth.us-east-1.amazoncognito.com/oauth2/token"
SALESFORCE = "https://mydomain.my.salesforce.com/services/oauth2/token"
PINGONE = "https://auth.pingone.eu/abfba8f6-49eb-49f5-a5d9-80ad5c98f9f6/as/token"
ZITADEL = "https://my-instance-abc123.zitadel.cloud/oauth/v2/token"
#: A token URL of the right shape for each preset.
URLS = dict(zip(PRESETS, (ENTRA, AUTH0, OKTA, KEYCLOAK, COGNITO, SALESFORCE, PINGONE, ZITADEL),
                strict=True))
#: Settings each preset accepts, besides its token URL (for tests of one thing at a time).
GOOD: dict[str, dict[str, Any]] = {
    "entra": {"scope": "https://graph.microsoft.com/.default"},
    "auth0": {"extra": {"audience": "https://api.example.com"}},
    "zitadel": {"scope": "urn:zitadel:iam:org:project:id:zitadel:aud"},
}


@dataclasses.dataclass(frozen=True)
class Case:
    """A preset's documented example: what is configured and the exact request it makes."""

    provider: str
    token_url: str
    client_id: str
    secret: str
    options: dict[str, Any]
    body: bytes
    #: The ``Authorization`` header of client_secret_basic, or ``None`` (secret in the body).
    basic: str | None = None


CASES = [
    # "POST /{tenant}/oauth2/v2.0/token ... client_id=...&scope=https%3A%2F%2Fgraph.microsoft.com
    # %2F.default&client_secret=...&grant_type=client_credentials"
    Case("entra", ENTRA, "00001111-aaaa-2222-bbbb-3333cccc4444", "qWgdYAmab0YSkuL1qKv5bPX",
         {"scope": "https://graph.microsoft.com/.default"},
         b"grant_type=client_credentials&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"
         b"&client_id=00001111-aaaa-2222-bbbb-3333cccc4444&client_secret=qWgdYAmab0YSkuL1qKv5bPX"),
    Case("auth0", AUTH0, "YOUR_CLIENT_ID", "YOUR_CLIENT_SECRET",
         {"extra": {"audience": "https://api.example.com"}},
         b"grant_type=client_credentials&audience=https%3A%2F%2Fapi.example.com"
         b"&client_id=YOUR_CLIENT_ID&client_secret=YOUR_CLIENT_SECRET"),
    Case("okta", OKTA, "0oa1b2c3d4e5f6g7h8i9", "okta-secret-value", {"scope": "customScope"},
         b"grant_type=client_credentials&scope=customScope",
         "Basic MG9hMWIyYzNkNGU1ZjZnN2g4aTk6b2t0YS1zZWNyZXQtdmFsdWU="),
    # Keycloak's own example: product-sa-client / password.
    Case("keycloak", KEYCLOAK, "product-sa-client", "password", {},
         b"grant_type=client_credentials", "Basic cHJvZHVjdC1zYS1jbGllbnQ6cGFzc3dvcmQ="),
    # Cognito's own example header: djc98u3jiedmi283eu928:abcdef01234567890.
    Case("cognito", COGNITO, "djc98u3jiedmi283eu928", "abcdef01234567890",
         {"scope": ["resourceServerIdentifier1/scope1", "resourceServerIdentifier2/scope2"]},
         b"grant_type=client_credentials"
         b"&scope=resourceServerIdentifier1%2Fscope1+resourceServerIdentifier2%2Fscope2",
         "Basic ZGpjOTh1M2ppZWRtaTI4M2V1OTI4OmFiY2RlZjAxMjM0NTY3ODkw"),
    Case("salesforce", SALESFORCE, "3MVG9consumer.key", "consumer-secret-1234", {},
         b"grant_type=client_credentials&client_id=3MVG9consumer.key"
         b"&client_secret=consumer-secret-1234"),
    Case("pingone", PINGONE, "c8b2a1f0-1d2e-4f3a-9b8c-7d6e5f4a3b2c", "ping-secret~value", {},
         b"grant_type=client_credentials",
         "Basic YzhiMmExZjAtMWQyZS00ZjNhLTliOGMtN2Q2ZTVmNGEzYjJjOnBpbmctc2VjcmV0fnZhbHVl"),
    Case("zitadel", ZITADEL, "my-service-user", "zitadel-secret+value",
         {"scope": "openid profile urn:zitadel:iam:org:project:id:zitadel:aud"},
         b"grant_type=client_credentials"
         b"&scope=openid+profile+urn%3Azitadel%3Aiam%3Aorg%3Aproject%3Aid%3Azitadel%3Aaud",
         # RFC 6749 §2.3.1: the secret is form-encoded first ("+" -> "%2B").
         "Basic bXktc2VydmljZS11c2VyOnppdGFkZWwtc2VjcmV0JTJCdmFsdWU="),
]


def configure(provider: str, **options: Any) -> Any:
    """An auth object of one flavour (configuration behaves the same in all of them) at the
    preset's own kind of token URL, with the settings it needs unless *options* say."""
    for name, value in GOOD.get(provider, {}).items():
        options.setdefault(name, value)
    options.setdefault("token_url", URLS[provider])
    return build_auth(RequestsAuth, provider=provider, **options)


def serve(harness: Harness, token_url: str, client_id: str, secret: str) -> None:
    """The emulator answers *token_url* as the generic site, knowing the client."""
    harness.server.add_token_path(urlsplit(token_url).path)
    harness.server.register_client(EmulatedClient("rfc6749", client_id, secret))


def only_token_request(harness: Harness) -> Received:
    [request] = harness.server.received_at("token")
    assert request.method == "POST"
    assert request.headers["content-type"] == FORM
    assert request.headers["accept"] == "application/json"
    return request


@pytest.mark.parametrize("case", CASES, ids=[c.provider for c in CASES])
def test_documented_token_request(harness: Harness, case: Case) -> None:
    serve(harness, case.token_url, case.client_id, case.secret)
    auth = harness.auth(provider=case.provider, token_url=case.token_url,
                        client_id=case.client_id, client_secret=case.secret, **case.options)
    assert harness.get(auth).status_code == 200
    request = only_token_request(harness)
    assert request.url == case.token_url
    assert request.body == case.body
    assert request.headers.get("authorization") == case.basic
    if case.basic is not None:
        user, _, _ = base64.b64decode(case.basic[6:]).decode().partition(":")
        assert user == case.client_id  # (the ids here need no form-encoding)
    [api_request] = harness.server.received_at("resource")
    assert api_request.headers["authorization"] == "Bearer tok-1"


def test_salesforce_answer_without_expires_in_lasts_the_session_timeout(
    harness: Harness,
) -> None:
    serve(harness, SALESFORCE, "3MVG9consumer.key", "consumer-secret-1234")
    # The document's answer: no expires_in.
    harness.server.answer_next(Reply(json={
        "access_token": "00DB0000000TfcR!AQQAQFhoK8vTMg_rKA7",
        "signature": "ZXx1mNqWXuSdGaoaPEHSJBcv9cY1S2dZj0dpZVB+u1A=",
        "instance_url": "https://mydomain.my.salesforce.com",
        "id": "https://login.salesforce.com/id/00DB0000000TfcRMAS/005B0000005Bk90IAC",
        "token_type": "Bearer",
        "issued_at": "1678402193837",
    }))
    auth = harness.auth(provider="salesforce", token_url=SALESFORCE,
                        client_id="3MVG9consumer.key", client_secret="consumer-secret-1234")
    harness.get(auth)
    assert auth.token.expires_in == 7200  # Session Settings → Timeout Value: 2 hours
    assert auth.token.refresh_at == auth.token.expires_at - 60
    harness.clock.advance(7200 - 60 - 1)
    harness.get(auth)
    assert len(harness.server.received_at("token")) == 1
    harness.clock.advance(2)
    harness.get(auth)
    assert len(harness.server.received_at("token")) == 2


@pytest.mark.parametrize(
    ("provider", "token_url", "body", "error", "description"),
    [
        # Entra: RFC 6749 §5.2 plus error_codes, timestamp, trace_id, correlation_id.
        ("entra", ENTRA,
         {"error": "invalid_scope",
          "error_description": "AADSTS70011: The provided value for the input parameter "
                               "'scope' is not valid.\r\nTrace ID: 0000aaaa-11bb",
          "error_codes": [70011], "timestamp": "2024-01-01 00:00:00Z",
          "trace_id": "0000aaaa-11bb", "correlation_id": "aaaa0000-bb11"},
         "invalid_scope", "AADSTS70011: The provided value for the input parameter 'scope' "
         "is not valid.\r\nTrace ID: 0000aaaa-11bb"),
        # Okta: an unknown authorization server is answered in Okta's own error shape...
        ("okta", OKTA,
         {"errorCode": "E0000007", "errorSummary": "Not found: Resource not found: default "
          "(AuthorizationServer)", "errorLink": "E0000007", "errorId": "oaeX", "errorCauses": []},
         "E0000007", "Not found: Resource not found: default (AuthorizationServer)"),
        # ...and an OAuth refusal as RFC 6749 says.
        ("okta", OKTA, {"error": "invalid_scope", "error_description": "One or more scopes are "
                        "not configured for the authorization server resource."},
         "invalid_scope",
         "One or more scopes are not configured for the authorization server resource."),
        # PingOne: the platform's error shape.
        ("pingone", PINGONE,
         {"id": "5a6b7c8d", "code": "NOT_FOUND", "message": "The requested resource was not "
          "found."}, "NOT_FOUND", "The requested resource was not found."),
    ],
    ids=["entra", "okta-own-shape", "okta-rfc", "pingone"],
)
def test_error_bodies(harness: Harness, provider: str, token_url: str, body: dict[str, Any],
                      error: str, description: str) -> None:
    harness.server.add_token_path(urlsplit(token_url).path)
    harness.server.answer_next(Reply(404 if "errorCode" in body or "code" in body else 400,
                                     json=body))
    auth = harness.auth(provider=provider, token_url=token_url, **GOOD.get(provider, {}))
    with pytest.raises(oauth_cc_auth.TokenRequestError) as info:
        harness.get(auth)
    assert (info.value.error, info.value.description) == (error, description)


class TestRequiredFields:
    """What to copy from which console page, when it is missing."""

    @pytest.mark.parametrize(
        ("provider", "options", "message"),
        [
            ("auth0", {"extra": None},
             "provider 'auth0' requires audience (extra={'audience': ...}): the API Identifier "
             "(Auth0 Dashboard → Applications → APIs → your API → Settings → Identifier) "
             "(required: audience)"),
            ("entra", {"scope": None},
             "provider 'entra' requires scope (scope=): the API's Application ID URI followed "
             "by /.default, e.g. api://<application id>/.default or "
             "https://graph.microsoft.com/.default (Microsoft Entra admin center → App "
             "registrations → the API's registration → Expose an API → Application ID URI) "
             "(required: scope)"),
            ("zitadel", {"scope": None},
             "provider 'zitadel' requires scope (scope=): urn:zitadel:iam:org:project:id:"
             "{projectId}:aud with your API's project Resource Id (ZITADEL Console → Projects "
             "→ your project → Resource Id; 'zitadel' for ZITADEL's APIs) (required: scope)"),
        ],
    )
    def test_required_field(self, provider: str, options: dict[str, Any], message: str) -> None:
        with pytest.raises(ConfigurationError) as info:
            configure(provider, **options)
        assert str(info.value) == message

    @pytest.mark.parametrize(
        ("provider", "where"),
        [
            ("entra", "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token with your "
                      "Directory (tenant) ID (Microsoft Entra admin center → App registrations "
                      "→ your app → Overview)"),
            ("auth0", "https://{your domain}/oauth/token, the Domain (Auth0 Dashboard → "
                      "Applications → Applications → your application → Settings → Domain)"),
            ("okta", "https://{yourOktaDomain}/oauth2/{authServerId}/v1/token, e.g. "
                     ".../oauth2/default/v1/token (Admin Console → Security → API → "
                     "Authorization Servers → your server's Issuer URI + /v1/token)"),
            ("keycloak", "https://{host}/realms/{realm}/protocol/openid-connect/token (Realm "
                         "settings → General → Endpoints → OpenID Endpoint Configuration → "
                         "token_endpoint)"),
            ("cognito", "https://{domain}.auth.{region}.amazoncognito.com/oauth2/token or "
                        "https://{custom domain}/oauth2/token (Amazon Cognito console → User "
                        "pools → your user pool → Branding → Domain)"),
            ("salesforce", "https://{MyDomainName}.my.salesforce.com/services/oauth2/token "
                           "(Setup → My Domain → Current My Domain URL)"),
            ("pingone", "https://auth.pingone.{com|eu|asia|ca}/{environmentId}/as/token "
                        "(PingOne admin console → your environment → Applications → "
                        "Applications → your app → Overview → Token Endpoint)"),
            ("zitadel", "https://{instance}/oauth/v2/token (your instance's domain: ZITADEL "
                        "Console → Default settings → Domains, or the Cloud console's "
                        "instance)"),
        ],
    )
    def test_token_url(self, provider: str, where: str) -> None:
        with pytest.raises(ConfigurationError) as info:
            configure(provider, token_url=None)
        assert str(info.value) == (
            f"provider {provider!r} documents no token URL: pass token_url=: {where}"
        )


class TestShapes:
    """Settings each IdP is documented to refuse, refused at construction."""

    @pytest.mark.parametrize(
        ("provider", "token_url", "shape"),
        [
            ("entra", "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/token",
             "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
            ("auth0", "https://example-tenant.us.auth0.com/oauth2/token",
             "https://{your Auth0 domain or custom domain}/oauth/token"),
            ("okta", "https://dev-133337.okta.com/oauth2/default/token",
             "https://{yourOktaDomain}/oauth2/{authServerId}/v1/token"),
            ("keycloak", "https://sso.example.com/realms/demo/protocol/saml",
             "https://{host}/realms/{realm}/protocol/openid-connect/token"),
            ("cognito", "https://mydomain.auth.us-east-1.amazoncognito.com/token",
             "https://{domain}.auth.{region}.amazoncognito.com/oauth2/token"),
            ("salesforce", "https://mydomain.my.salesforce.com/services/oauth2/authorize",
             "https://{MyDomainName}.my.salesforce.com/services/oauth2/token"),
            ("pingone", "https://auth.pingone.com/abc/as/authorize",
             "https://auth.pingone.{com|eu|asia|ca}/{environmentId}/as/token"),
            ("zitadel", "https://my-instance-abc123.zitadel.cloud/oauth/token",
             "https://{instance}/oauth/v2/token"),
        ],
    )
    def test_token_url_of_another_endpoint(self, provider: str, token_url: str,
                                           shape: str) -> None:
        with pytest.raises(ConfigurationError) as info:
            configure(provider, token_url=token_url)
        assert str(info.value).startswith(
            f"provider {provider!r} takes a token URL of the form {shape}, not {token_url!r}"
        )

    @pytest.mark.parametrize(
        ("provider", "token_url"),
        [
            ("keycloak", "https://sso.example.com/auth/realms/demo/protocol/openid-connect/token"),
            ("auth0", "https://login.example.com/oauth/token"),  # a custom domain
            ("pingone", "https://auth.example.com/as/token"),  # a custom domain
            ("pingone", "https://auth.pingone.ca/abfba8f6-49eb-49f5-a5d9-80ad5c98f9f6/as/token"),
            ("salesforce", "https://mydomain--uat.sandbox.my.salesforce.com/services/oauth2/token"),
        ],
    )
    def test_other_documented_urls(self, provider: str, token_url: str) -> None:
        assert configure(provider, token_url=token_url).token_url == token_url

    def test_entra_scope_must_end_in_default(self) -> None:
        with pytest.raises(ConfigurationError) as info:
            configure("entra", scope="User.Read")
        assert str(info.value).startswith(
            "entra client credentials take scopes ending in /.default, not 'User.Read': the "
            "API's Application ID URI followed by /.default"
        )
        with pytest.raises(ConfigurationError, match="not 'api://x/read'"):
            configure("entra", scope=["api://x/.default", "api://x/read"])
        with pytest.raises(ConfigurationError, match=r"one /\.default scope, not 2"):
            configure("entra", scope=["api://x/.default", "https://graph.microsoft.com/.default"])
        assert configure("entra", scope="api://x/.default")._config.client.scope == "api://x/.default"

    @pytest.mark.parametrize("tenant", ["common", "organizations", "Consumers"])
    def test_entra_needs_a_tenant(self, tenant: str) -> None:
        url = f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
        with pytest.raises(ConfigurationError, match=(
            f"entra client credentials need a tenant, not '{tenant}', in the token URL: the "
            "Directory \\(tenant\\) ID"
        )):
            configure("entra", token_url=url)

    def test_okta_org_server_refuses_custom_scopes(self) -> None:
        with pytest.raises(ConfigurationError) as info:
            configure("okta", token_url=OKTA_ORG, scope="okta.users.read customScope")
        assert str(info.value).startswith(
            "okta's org authorization server (/oauth2/v1/token) refuses custom scopes such as "
            "'customScope': it issues tokens for Okta's own APIs (okta.* scopes); for your API "
            "use a custom authorization server: https://{yourOktaDomain}/oauth2/{authServerId}"
            "/v1/token"
        )
        # Okta's own scopes at the org server, any scope at a custom one.
        org = configure("okta", token_url=OKTA_ORG, scope="okta.users.read")
        assert org._config.client.scope == "okta.users.read"
        custom = configure("okta", token_url=OKTA, scope="customScope")
        assert custom._config.client.scope == "customScope"

    def test_cognito_takes_custom_scopes_only(self) -> None:
        with pytest.raises(ConfigurationError, match=(
            "cognito client credentials take custom scopes only, not 'openid': "
            "resource-server-identifier/scope-name"
        )):
            configure("cognito", scope="orders/read openid")
        assert configure("cognito", scope="https://api.example.com/orders.read")._config.client.scope

    def test_salesforce_needs_my_domain_and_takes_no_scope(self) -> None:
        with pytest.raises(ConfigurationError, match=(
            r"salesforce's client credentials flow is served at your My Domain, not "
            r"login\.salesforce\.com"
        )):
            configure("salesforce", token_url="https://login.salesforce.com/services/oauth2/token")
        with pytest.raises(ConfigurationError, match="'salesforce' takes no scope"):
            configure("salesforce", scope="api")

    def test_zitadel_needs_the_audience_scope(self) -> None:
        with pytest.raises(ConfigurationError, match=(
            "zitadel takes the audience as a scope: add urn:zitadel:iam:org:project:id:"
            r"\{projectId\}:aud"
        )):
            configure("zitadel", scope="openid profile")
        auth = configure("zitadel", scope="urn:zitadel:iam:org:project:id:170079925099:aud")
        assert auth._config.client.scope == "urn:zitadel:iam:org:project:id:170079925099:aud"


class TestAuthMethods:
    @pytest.mark.parametrize(
        ("provider", "default"),
        [("entra", "client_secret_post"), ("auth0", "client_secret_post"),
         ("okta", "client_secret_basic"), ("keycloak", "client_secret_basic"),
         ("cognito", "client_secret_basic"), ("salesforce", "client_secret_post"),
         ("pingone", "client_secret_basic"), ("zitadel", "client_secret_basic")],
    )
    def test_default_per_documents(self, provider: str, default: str) -> None:
        assert configure(provider)._config.client.auth_method == default

    @pytest.mark.parametrize("method", ["private_key_jwt", "client_secret_jwt"])
    def test_cognito_refuses_jwt_client_authentication(self, method: str) -> None:
        with pytest.raises(ConfigurationError) as info:
            configure("cognito", auth_method=method)
        assert str(info.value) == (
            f"auth_method {method!r} is not accepted by provider 'cognito'; "
            "accepted: client_secret_basic, client_secret_post"
        )

    def test_cognito_refuses_a_key(self) -> None:
        # A key alone means private_key_jwt, which Cognito does not take.
        with pytest.raises(ConfigurationError, match="'private_key_jwt' is not accepted"):
            configure("cognito", client_secret=None, private_key={"kty": "oct", "k": "AAAA"})

    @pytest.mark.parametrize("provider", ["entra", "auth0", "salesforce", "zitadel"])
    def test_no_client_secret_jwt(self, provider: str) -> None:
        with pytest.raises(ConfigurationError, match="'client_secret_jwt' is not accepted"):
            configure(provider, auth_method="client_secret_jwt")


class TestRegistered:
    def test_builtin_and_in_the_metadata(self) -> None:
        assert set(PRESETS) <= set(BUILTIN)
        assert set(PRESETS) <= set(oauth_cc_auth.available_providers())
        found = {ep.name: ep for ep in entry_points(group="oauth_cc_auth.providers")}
        for name in PRESETS:
            provider = oauth_cc_auth.get_provider(name)
            assert isinstance(provider, Provider)
            assert provider.name == name
            assert found[name].load() is provider
            assert provider.environments == {}  # located by token_url=
            assert {"token_url", "client_id", "client_secret"} <= set(provider.field_help)
            assert set(provider.required_fields) <= set(provider.field_help)
