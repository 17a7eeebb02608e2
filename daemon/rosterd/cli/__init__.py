"""rosterctl: parses arguments, calls the admin API and renders each result one way.

Exit status (CONTRACT.md) is chosen here and nowhere else: 0 done, 1 refused or
failed (the reason on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc

from rosterd import config
from rosterd.cli import doctor, group, register, status, token, user
from rosterd.cli.client import AdminClient, Refused
from rosterd.cli.render import render
from rosterd.errors import ConfigError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

DEFAULT_CONFIG = Path("/etc/rosterd/rosterd.toml")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rosterctl", description="Manage the users and groups rosterd provides to this host."
    )
    parser.add_argument("--config", type=Path, help="rosterd's config file (to find its sockets)")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    nouns = parser.add_subparsers(dest="noun", metavar="COMMAND", required=True)
    user.register(nouns)
    group.register(nouns)
    token.register(nouns)
    status.register(nouns)
    doctor.register(nouns)
    register.register(nouns)
    return parser


def _load_config(path: Path | None) -> config.Config:
    # Without --config or $ROSTERD_CONFIG, a host that has no config file yet is
    # using the defaults, and so is rosterctl.
    if path is None and not os.environ.get("ROSTERD_CONFIG") and not DEFAULT_CONFIG.exists():
        return config.Config()
    return config.load_config(path)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    subject = [getattr(args, k) for k in ("group", "name", "user", "label")
               if getattr(args, k, None)]
    command = " ".join([*args.command_words, *subject])
    try:
        cfg = _load_config(args.config)
    except ConfigError as err:
        print(f"rosterctl: {err}", file=sys.stderr)
        return EXIT_FAILED
    args.loaded_config = cfg
    client = AdminClient(cfg.paths.runtime_dir / "admin.sock")
    try:
        result = args.handler(client, args)
    except Refused as err:
        print(f"rosterctl: {command}: {err}", file=sys.stderr)
        return EXIT_FAILED
    except grpc.RpcError as err:  # pragma: no cover - Refused covers the API's own errors
        print(f"rosterctl: {command}: {err}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        client.close()
    print(render(result, as_json=args.json))
    # A result that reports failed checks (doctor) printed them all; the status says so.
    return EXIT_FAILED if getattr(result, "failed", False) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
