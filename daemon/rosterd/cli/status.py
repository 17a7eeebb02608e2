"""rosterctl status: what the running daemon holds and has been doing."""

from __future__ import annotations

import argparse

from rosterd._generated import admin_pb2
from rosterd.cli.client import AdminClient
from rosterd.cli.views import StatusView


def _status(client: AdminClient, args: argparse.Namespace) -> StatusView:
    return StatusView.of(client.call("GetStatus", admin_pb2.GetStatusRequest()))


def register(nouns: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    nouns.add_parser(
        "status", help="show counts, sockets, token labels, the last SCIM request and login, "
        "and recent warnings",
    ).set_defaults(handler=_status, command_words=("status",))
