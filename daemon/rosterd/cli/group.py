"""rosterctl group ...: add, list, show and delete groups, and change their members."""

from __future__ import annotations

import argparse
from typing import Any

from rosterd._generated import admin_pb2
from rosterd.cli.client import AdminClient
from rosterd.cli.user import _id_number
from rosterd.cli.views import GroupView


def _add(client: AdminClient, args: argparse.Namespace) -> GroupView:
    request = admin_pb2.AddGroupRequest(name=args.name)
    if args.gid is not None:
        request.gid = args.gid
    return GroupView.of(client.call("AddGroup", request))


def _list(client: AdminClient, args: argparse.Namespace) -> list[GroupView]:
    reply = client.call("ListGroups", admin_pb2.ListGroupsRequest())
    return [GroupView.of(g) for g in reply.groups]


def _by_name(rpc: str, request_type: Any) -> Any:
    def handler(client: AdminClient, args: argparse.Namespace) -> GroupView:
        return GroupView.of(client.call(rpc, request_type(name=args.name)))

    return handler


def _membership(rpc: str, request_type: Any) -> Any:
    def handler(client: AdminClient, args: argparse.Namespace) -> GroupView:
        return GroupView.of(client.call(rpc, request_type(group=args.group, user=args.user)))

    return handler


def register(nouns: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = nouns.add_parser("group", help="manage groups")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    add = verbs.add_parser("add", help="create a group")
    add.add_argument("name")
    add.add_argument("--gid", type=_id_number, help="GID to use (default: the next free one)")
    add.set_defaults(handler=_add, command_words=("group", "add"))

    verbs.add_parser("list", help="list groups").set_defaults(
        handler=_list, command_words=("group", "list")
    )
    for verb, rpc, request_type, text in (
        ("show", "GetGroup", admin_pb2.GetGroupRequest, "show one group"),
        ("delete", "DeleteGroup", admin_pb2.DeleteGroupRequest,
         "delete a group (its GID is retired)"),
    ):
        sub = verbs.add_parser(verb, help=text)
        sub.add_argument("name")
        sub.set_defaults(handler=_by_name(rpc, request_type), command_words=("group", verb))
    for verb, rpc, member_request_type, text in (
        ("add-member", "AddGroupMember", admin_pb2.AddGroupMemberRequest, "add a user to a group"),
        ("remove-member", "RemoveGroupMember", admin_pb2.RemoveGroupMemberRequest,
         "remove a user from a group"),
    ):
        sub = verbs.add_parser(verb, help=text)
        sub.add_argument("group")
        sub.add_argument("user")
        sub.set_defaults(handler=_membership(rpc, member_request_type),
                         command_words=("group", verb))
