"""rosterctl register: registers the person an ID token names, showing which claim gave what."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rosterd._generated import admin_pb2
from rosterd.cli.client import AdminClient, Refused
from rosterd.cli.render import render


@dataclass
class RegisterView:
    """What rosterd did (or, with --dry-run or on a refusal, would do) with one ID token."""

    account: str
    uid: int | None
    created: bool
    dry_run: bool
    fields: list[str] = field(default_factory=list)
    claims_present: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    groups_added: list[str] = field(default_factory=list)
    groups_removed: list[str] = field(default_factory=list)
    groups_created: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refusal: str = ""
    refused_by: str = ""

    @classmethod
    def of(cls, reply: Any) -> RegisterView:
        has_user = reply.HasField("user")
        return cls(
            account=reply.user.name if has_user else "", uid=reply.user.uid if has_user else None,
            created=reply.created, dry_run=reply.dry_run,
            fields=[f"{u.field} <- {u.claim}: {u.value}" for u in reply.claims_used],
            claims_present=list(reply.claims_present),
            groups=list(reply.user.groups) if has_user else [],
            groups_added=list(reply.groups_added), groups_removed=list(reply.groups_removed),
            groups_created=list(reply.groups_created), notes=list(reply.notes),
            refusal=reply.refusal, refused_by=reply.refused_by)

    def plain_text(self) -> str:
        lines = []
        if self.refusal:
            lines.append(f"refused by {self.refused_by or 'a rule'}: {self.refusal}")
        elif self.account:
            verb = ("would create" if self.created else "would update") if self.dry_run else (
                "created" if self.created else "updated")
            lines.append(f"{verb} account {self.account} (UID {self.uid})")
        lines.append("claims used:" if self.fields else "claims used: none")
        lines.extend(f"  {line}" for line in self.fields)
        lines.append(f"claims present: {', '.join(self.claims_present) or 'none'}")
        for label, values in (("groups", self.groups), ("groups added", self.groups_added),
                              ("groups removed", self.groups_removed),
                              ("groups created", self.groups_created)):
            if values:
                lines.append(f"{label}: {', '.join(values)}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as err:
        raise Refused(f"cannot read the {what} file {path}: {err.strerror}") from None


def _register(client: AdminClient, args: argparse.Namespace) -> RegisterView:
    request = admin_pb2.RegisterOnFirstLoginRequest(
        id_token=_read(args.id_token, "ID token"),
        access_token=_read(args.access_token, "access token") if args.access_token else "",
        dry_run=args.dry_run)
    try:
        return RegisterView.of(client.call("RegisterOnFirstLogin", request))
    except Refused:
        # Show which claim gave what before the reason: ask again, changing nothing.
        request.dry_run = True
        view = RegisterView.of(client.call("RegisterOnFirstLogin", request))
        print(render(view, as_json=args.json))
        sys.stdout.flush()
        raise Refused(view.refusal or "refused") from None


def register(nouns: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = nouns.add_parser(
        "register", help="register (or update) the person an ID token names, as a first login "
        "would, and show which claim gave which field")
    parser.add_argument("--id-token", type=Path, required=True, metavar="FILE",
                        help="file holding the ID token (a compact JWT)")
    parser.add_argument("--access-token", type=Path, metavar="FILE",
                        help="file holding an access token: UserInfo claims are merged in")
    parser.add_argument("--dry-run", action="store_true",
                        help="show what would happen, change nothing")
    parser.set_defaults(handler=_register, command_words=("register",))
