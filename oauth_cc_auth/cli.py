"""The ``oauth-cc-auth`` command: ``providers``, ``token``, ``discover``, ``emulator``,
``demo``."""

from __future__ import annotations

import argparse
import getpass
import importlib.util
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from oauth_cc_auth._registry import available_providers, get_provider
from oauth_cc_auth._settings import from_mapping
from oauth_cc_auth.errors import AuthError, ConfigurationError

__all__ = ["main"]

PROG = "oauth-cc-auth"
#: Client-authentication options of the token command (paths and names, never secrets).
_KEY_OPTIONS = (
    "auth_method",
    "private_key_file",
    "private_key_id",
    "signing_alg",
    "certificate_file",
    "client_assertion_file",
    "cert_file",
    "cert_key_file",
)


def _requires(environments: Mapping[str, str], required: Sequence[str]) -> list[str]:
    """What a provider needs besides a client id and secret: a token URL when it documents
    none, and its required fields."""
    return ([] if environments else ["token_url"]) + list(required)


def _providers(args: argparse.Namespace, out: TextIO) -> int:
    listing: list[dict[str, Any]] = []
    for name in available_providers():
        provider = get_provider(name)
        listing.append({
            "name": name,
            "description": provider.description,
            "default_environment": provider.default_environment,
            "environments": dict(provider.environments),
            "requires": _requires(provider.environments, provider.required_fields),
            "auth_methods": list(provider.auth_methods),
            "field_help": dict(provider.field_help),
        })
    if args.json:
        out.write(json.dumps(listing, indent=2, ensure_ascii=False) + "\n")
        return 0
    for entry in listing:
        out.write(f"{entry['name']}: {entry['description']}\n")
        environments: Mapping[str, str] = entry["environments"]
        if not environments and "token_url" not in entry["field_help"]:
            out.write("    (no documented token URL: pass --token-url)\n")
        for env, url in environments.items():
            default = " (default)" if env == entry["default_environment"] else ""
            out.write(f"    {env}{default}: {url}\n")
        if entry["requires"]:
            out.write(f"    requires: {', '.join(entry['requires'])}\n")
        for field, where in entry["field_help"].items():
            out.write(f"    {field}: {where}\n")
        methods = entry["auth_methods"]
        out.write(f"    auth methods: {methods[0]} (default)"
                  + "".join(f", {m}" for m in methods[1:]) + "\n")
    return 0


def _token_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """The token command's settings: OAUTH_CC_* variables, overridden by options."""
    settings = {
        name[len("OAUTH_CC_"):].lower(): value
        for name, value in environ.items()
        if name.startswith("OAUTH_CC_")
    }
    for key in ("provider", "environment", "token_url", "issuer", "scope", "client_id",
                *_KEY_OPTIONS):
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    for item in args.extra or ():
        field, sep, value = item.partition("=")
        if not sep or not field:
            raise ConfigurationError(f"--extra takes FIELD=VALUE, not {item!r}")
        settings[f"extra_{field}"] = value
    if args.insecure_transport:
        settings["insecure_transport"] = "true"
    keyed = {"private_key", "private_key_file", "client_assertion_file", "cert", "cert_file"
             } & settings.keys()
    if "client_secret" not in settings and "client_secret_file" not in settings and not keyed:
        if not sys.stdin.isatty():
            raise ConfigurationError(
                "no client secret: set OAUTH_CC_CLIENT_SECRET or OAUTH_CC_CLIENT_SECRET_FILE "
                "(secrets are never taken from the command line)"
            )
        settings["client_secret"] = getpass.getpass("client secret: ")
    return settings


def _auth_class() -> Any:
    """The adapter of the first installed HTTP library: requests, else httpx2 (the successor
    of httpx), else httpx. The token command only fetches a token: any of them will do."""
    for library in ("requests", "httpx2", "httpx"):
        if importlib.util.find_spec(library) is not None:
            return importlib.import_module(f"oauth_cc_auth.{library}").ClientCredentialsAuth
    raise ConfigurationError("no HTTP client installed: pip install 'oauth-cc-auth[requests]'")


#: What names a server or a client: taken from the emulator with ``--emulated``.
_SERVER_AND_CLIENT = ("environment", "token_url", "issuer", "scope", "client_id", "extra",
                      *_KEY_OPTIONS)


def _emulated(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """``token --emulated``: the emulator, started for this one command, and the settings of
    its test client of ``--provider`` (the environment is not read: a real configuration's
    secret never goes to the emulator)."""
    from oauth_cc_auth.testing._emulator import PRESET_SITES, Emulator

    given = [f"--{name.replace('_', '-')}" for name in _SERVER_AND_CLIENT
             if getattr(args, name) is not None]
    if given:
        raise ConfigurationError(f"--emulated takes the server and the client from the "
                                 f"emulator: leave out {', '.join(given)}")
    provider = args.provider or "rfc6749"
    emulator = Emulator()
    if provider in PRESET_SITES:
        emulator.add_preset(provider)
    try:
        client = emulator.client(provider)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    settings: dict[str, Any] = {
        "provider": provider, "client_id": client.client_id,
        "client_secret": client.client_secret,
    }
    if client.scope is not None:
        settings["scope"] = client.scope
    settings.update({f"extra_{field}": value for field, value in client.extra.items()})
    return emulator, settings


def _token(args: argparse.Namespace, out: TextIO) -> int:
    if not args.emulated:
        return _print_token(args, _token_settings(args, os.environ), out)
    emulator, settings = _emulated(args)
    with emulator:  # serving: its token URL names its port
        settings["token_url"] = emulator.token_url(settings["provider"])
        return _print_token(args, settings, out)


def _print_token(args: argparse.Namespace, settings: dict[str, Any], out: TextIO) -> int:
    client_id, secret, options = from_mapping(settings)
    # One token and the process ends: a token due for refresh is refreshed now, not in a
    # background thread that the exit would cut short.
    options.setdefault("refresh_ahead", False)
    auth = _auth_class()(client_id, secret, **options)
    try:
        token = auth.get_token()
    finally:
        auth.close()
    if args.json:
        out.write(json.dumps({
            "access_token": token.access_token,
            "token_type": token.token_type,
            "expires_in": token.expires_in,
            "scope": token.scope,
        }) + "\n")
    else:
        out.write(token.access_token + "\n")
    return 0


def _discover(args: argparse.Namespace, out: TextIO) -> int:
    from oauth_cc_auth._drivers import run_sync
    from oauth_cc_auth._slots import MemoryCache

    # Metadata is public: the placeholder client is never sent anywhere.
    auth = _auth_class()("oauth-cc-auth-discover", "unused", issuer=args.issuer,
                         insecure_transport=args.insecure_transport, cache=MemoryCache(),
                         timeout=args.timeout)
    try:
        metadata = run_sync(auth._manager.discover(), auth._send)
    finally:
        auth.close()
    methods = metadata.token_endpoint_auth_methods_supported
    dpop = metadata.dpop_signing_alg_values_supported
    if args.json:
        out.write(json.dumps({
            "issuer": metadata.issuer,
            "source": metadata.source,
            "token_endpoint": metadata.token_endpoint,
            "token_endpoint_auth_methods_supported": methods,
            "dpop_signing_alg_values_supported": dpop,
            "mtls_endpoint_aliases": dict(metadata.mtls_endpoint_aliases),
        }, indent=2) + "\n")
        return 0
    out.write(f"issuer: {metadata.issuer}\n")
    out.write(f"metadata: {metadata.source}\n")
    out.write(f"token endpoint: {metadata.token_endpoint}\n")
    out.write("client authentication methods: "
              + (", ".join(methods) if methods is not None
                 else "not stated (RFC 8414 default: client_secret_basic)") + "\n")
    out.write("DPoP signing algorithms: " + (", ".join(dpop) if dpop else "none") + "\n")
    for name, url in metadata.mtls_endpoint_aliases.items():
        out.write(f"mTLS {name}: {url}\n")
    return 0


def _emulator(args: argparse.Namespace, out: TextIO) -> int:
    from oauth_cc_auth.testing._emulator import DEFAULT_CLIENTS, Emulator

    try:
        emulator = Emulator(args.host, args.port)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    emulator.start()
    out.write(f"emulator serving on {emulator.url} (Ctrl-C to stop)\n")
    for client in DEFAULT_CLIENTS:
        out.write(
            f"  {client.provider}: token {emulator.token_url(client.provider)}  "
            f"resource {emulator.resource_url(client.provider)}\n"
            f"    client_id={client.client_id} client_secret={client.client_secret}"
        )
        if client.scope:
            out.write(f" scope={client.scope}")
        for field, value in client.extra.items():
            out.write(f" {field}={value}")
        out.write("\n")
    out.flush()
    try:
        # Stopped by Ctrl-C, and by SIGTERM as service managers and test harnesses stop it.
        signal.signal(signal.SIGTERM, _interrupt)
        emulator.serve_forever()
    except KeyboardInterrupt:
        out.write("stopped\n")
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from oauth_cc_auth._demo import run_demo

    return run_demo(out)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="OAuth 2.0 client-credentials tokens for finance APIs."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    providers = commands.add_parser("providers", help="list the installed providers",
                                    description="List the installed providers: their "
                                    "environments and token URLs, what each requires and "
                                    "where to find it, and their client authentication "
                                    "methods.")
    providers.add_argument("--json", action="store_true", help="print JSON")
    providers.set_defaults(run=_providers)

    token = commands.add_parser(
        "token", help="print an access token",
        description="Fetch and print an access token (for curl and the like). Settings come "
        "from the OAUTH_CC_* environment (as ClientCredentialsAuth.from_env) and the options "
        "below; the secret from OAUTH_CC_CLIENT_SECRET, OAUTH_CC_CLIENT_SECRET_FILE or a "
        "prompt, never from the command line; with private_key_jwt, no secret: a key file "
        "or a client assertion file; with mutual TLS, a certificate file.",
    )
    token.add_argument("--provider", help="provider name (default: OAUTH_CC_PROVIDER or rfc6749)")
    token.add_argument("--environment", help="provider environment")
    token.add_argument("--token-url", help="token endpoint URL")
    token.add_argument("--issuer", help="authorization server issuer: the token endpoint "
                       "from its metadata (instead of --token-url)")
    token.add_argument("--scope", help="space-separated scope")
    token.add_argument("--client-id", help="client id (default: OAUTH_CC_CLIENT_ID)")
    token.add_argument("--extra", action="append", metavar="FIELD=VALUE",
                       help="extra token-request field (repeatable)")
    token.add_argument("--auth-method", help="client authentication: client_secret_post, "
                       "client_secret_basic, client_secret_jwt, private_key_jwt, "
                       "tls_client_auth or self_signed_tls_client_auth")
    token.add_argument("--private-key-file", metavar="PATH",
                       help="PEM private key for private_key_jwt (OAUTH_CC_PRIVATE_KEY_FILE)")
    token.add_argument("--private-key-id", metavar="KID", help="the key's id (JWS kid)")
    token.add_argument("--signing-alg", metavar="ALG",
                       help="JWS algorithm (default: RS256 for RSA, ES256 for P-256 keys)")
    token.add_argument("--certificate-file", metavar="PATH",
                       help="PEM certificate of the private key (x5t#S256, Microsoft Entra)")
    token.add_argument("--client-assertion-file", metavar="PATH",
                       help="a file holding a client assertion issued elsewhere, re-read for "
                       "every token request (Kubernetes projected token)")
    token.add_argument("--cert-file", metavar="PATH",
                       help="PEM client certificate (and key, unless --cert-key-file) for "
                       "mutual TLS (OAUTH_CC_CERT_FILE)")
    token.add_argument("--cert-key-file", metavar="PATH",
                       help="PEM private key of --cert-file (OAUTH_CC_CERT_KEY_FILE)")
    token.add_argument("--insecure-transport", action="store_true",
                       help="allow an http:// token URL that is not loopback")
    token.add_argument("--json", action="store_true",
                       help="print the whole token as JSON, not just the access token")
    token.add_argument("--emulated", action="store_true",
                       help="fetch it from the package's emulator, started on 127.0.0.1 for "
                       "this command, with its test client of --provider (default rfc6749): "
                       "a first token without any account")
    token.set_defaults(run=_token)

    discover = commands.add_parser(
        "discover", help="print what an authorization server's metadata says",
        description="Fetch the RFC 8414 (else OpenID Connect) metadata of ISSUER and print "
        "its token endpoint, client authentication methods and DPoP algorithms.",
    )
    discover.add_argument("issuer", metavar="ISSUER", help="the issuer URL (https://...)")
    discover.add_argument("--timeout", type=float, default=30.0,
                          help="seconds per request (default 30)")
    discover.add_argument("--insecure-transport", action="store_true",
                          help="allow an http:// issuer that is not loopback")
    discover.add_argument("--json", action="store_true", help="print JSON")
    discover.set_defaults(run=_discover)

    emulator = commands.add_parser(
        "emulator", help="serve the provider emulator",
        description="Serve the emulator of the seed providers' token endpoints and protected "
        "resources on loopback until interrupted.",
    )
    emulator.add_argument("--host", default="127.0.0.1", help="loopback address (127.0.0.1)")
    emulator.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    emulator.set_defaults(run=_emulator)

    demo = commands.add_parser(
        "demo", help="walk every provider through the emulator",
        description="Start the emulator in-process and show, for every seed provider and "
        "every installed client, token fetch, reuse, refresh before expiry, recovery from "
        "revocation and the error for bad credentials. Exit status 0 only if all behaved.",
    )
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.run(args, sys.stdout)
    except ConfigurationError as exc:
        print(f"{PROG}: configuration error: {exc}", file=sys.stderr)
        return 2
    except AuthError as exc:
        print(f"{PROG}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
