"""rosterctl doctor: checks this host's set-up, step by step, and prints each fix."""

from __future__ import annotations

import argparse
from pathlib import Path

from rosterd import doctor
from rosterd._generated import admin_pb2
from rosterd.cli.client import AdminClient


def _doctor(client: AdminClient, args: argparse.Namespace) -> doctor.Report:
    def admin_status() -> str:
        status = client.call("GetStatus", admin_pb2.GetStatusRequest())
        return f"{status.users} users, {status.groups} groups"

    host = doctor.Host(cfg=args.loaded_config, root=args.root, admin_status=admin_status)
    return doctor.run_checks(host)


def register(nouns: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = nouns.add_parser(
        "doctor", help="check nsswitch.conf, PAM, nscd, certificates and the daemon; print fixes")
    parser.add_argument("--root", type=Path, default=Path("/"),
                        help="look at the host files under this directory instead of / "
                        "(a chroot or image)")
    parser.set_defaults(handler=_doctor, command_words=("doctor",))
