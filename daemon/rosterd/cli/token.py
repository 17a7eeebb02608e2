"""rosterctl token ...: bearer tokens for SCIM clients (generate prints the token once)."""

from __future__ import annotations

import argparse
from typing import Any

from rosterd._generated import admin_pb2
from rosterd.cli.client import AdminClient
from rosterd.cli.views import GeneratedTokenView, TokenView


def _generate(client: AdminClient, args: argparse.Namespace) -> GeneratedTokenView:
    reply = client.call("GenerateToken", admin_pb2.GenerateTokenRequest(label=args.label))
    return GeneratedTokenView(secret=reply.secret, token=TokenView.of(reply.token))


def _list(client: AdminClient, args: argparse.Namespace) -> list[TokenView]:
    reply = client.call("ListTokens", admin_pb2.ListTokensRequest())
    return [TokenView.of(t) for t in reply.tokens]


def _revoke(client: AdminClient, args: argparse.Namespace) -> Any:
    return TokenView.of(client.call("RevokeToken", admin_pb2.RevokeTokenRequest(label=args.label)))


def register(nouns: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = nouns.add_parser("token", help="bearer tokens for SCIM clients")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    generate = verbs.add_parser(
        "generate", help="create a token and print it (the only time it is shown)")
    generate.add_argument("label", help='what the token is for, e.g. "Okta provisioning"')
    generate.set_defaults(handler=_generate, command_words=("token", "generate"))
    verbs.add_parser("list", help="list tokens (never the tokens themselves)").set_defaults(
        handler=_list, command_words=("token", "list"))
    revoke = verbs.add_parser("revoke", help="revoke a token; the next request with it fails")
    revoke.add_argument("label")
    revoke.set_defaults(handler=_revoke, command_words=("token", "revoke"))
