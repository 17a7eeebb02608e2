"""rosterctl user ...: add, list, show, lock, unlock and delete accounts."""

from __future__ import annotations

import argparse
from typing import Any

from rosterd._generated import admin_pb2
from rosterd.cli.client import AdminClient
from rosterd.cli.views import UserView


def _add(client: AdminClient, args: argparse.Namespace) -> UserView:
    request = admin_pb2.AddUserRequest(
        name=args.name,
        full_name=args.full_name,
        home=args.home,
        shell=args.shell,
        groups=args.groups,
    )
    if args.uid is not None:
        request.uid = args.uid
    if args.gid is not None:
        request.gid = args.gid
    return UserView.of(client.call("AddUser", request))


def _list(client: AdminClient, args: argparse.Namespace) -> list[UserView]:
    reply = client.call("ListUsers", admin_pb2.ListUsersRequest())
    return [UserView.of(u) for u in reply.users]


def _by_name(rpc: str, request_type: Any) -> Any:
    def handler(client: AdminClient, args: argparse.Namespace) -> UserView:
        return UserView.of(client.call(rpc, request_type(name=args.name)))

    return handler


def _id_number(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 4294967294:
        raise argparse.ArgumentTypeError(f"{value} is outside 0-4294967294")
    return value


def register(nouns: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = nouns.add_parser("user", help="manage users")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    add = verbs.add_parser("add", help="create a user (and its private group)")
    add.add_argument("name")
    add.add_argument("--uid", type=_id_number, help="UID to use (default: the next free one)")
    add.add_argument("--gid", type=_id_number, help="primary GID (default: a private group)")
    add.add_argument("--full-name", default="", help="full name (GECOS)")
    add.add_argument("--home", default="", help="home directory (default: <home_root>/NAME)")
    add.add_argument("--shell", default="", help="login shell (default: default_shell)")
    add.add_argument(
        "--group", dest="groups", action="append", default=[], metavar="GROUP",
        help="an existing group to join (repeatable)",
    )
    add.set_defaults(handler=_add, command_words=("user", "add"))

    verbs.add_parser("list", help="list users").set_defaults(
        handler=_list, command_words=("user", "list")
    )
    for verb, rpc, request_type, text in (
        ("show", "GetUser", admin_pb2.GetUserRequest, "show one user"),
        ("lock", "LockUser", admin_pb2.LockUserRequest, "lock a user: it resolves, cannot log in"),
        ("unlock", "UnlockUser", admin_pb2.UnlockUserRequest, "unlock a user"),
        ("delete", "DeleteUser", admin_pb2.DeleteUserRequest,
         "delete a user (its UID is retired; its home is left alone)"),
    ):
        sub = verbs.add_parser(verb, help=text)
        sub.add_argument("name")
        sub.set_defaults(handler=_by_name(rpc, request_type), command_words=("user", verb))
