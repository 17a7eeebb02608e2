"""rosterctl's admin API client: one channel to admin.sock, refusals turned into sentences."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import grpc

from rosterd import __version__
from rosterd._generated import admin_pb2_grpc
from rosterd.activity import ROSTERCTL_USER_AGENT

CALL_TIMEOUT_S = 30.0


class Refused(Exception):
    """The daemon refused the request or could not be reached; str() is for a person."""


class AdminClient:
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self._channel = grpc.insecure_channel(
            f"unix:{socket_path}",
            options=[("grpc.primary_user_agent", f"{ROSTERCTL_USER_AGENT}{__version__}")])
        self._stub = admin_pb2_grpc.RosterAdminStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def call(self, rpc: str, request: Any) -> Any:
        self._check_reachable()
        try:
            return getattr(self._stub, rpc)(request, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.UNAVAILABLE:
                raise Refused(self._unreachable()) from None
            raise Refused(err.details() or err.code().name) from None

    def _check_reachable(self) -> None:
        path = self.socket_path
        if not path.exists():
            raise Refused(self._unreachable())
        if not os.access(path, os.R_OK | os.W_OK):
            raise Refused(
                f"permission denied on {path}: run as root, or as a member of the group "
                "named by [admin] group in rosterd.toml"
            )

    def _unreachable(self) -> str:
        return (
            f"cannot reach rosterd at {self.socket_path}: is it running? "
            "(systemctl status rosterd; or pass --config to name its config)"
        )
