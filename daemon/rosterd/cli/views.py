"""The result records rosterctl prints: built from API messages, rendered by render.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_HIDDEN_IN_TABLES: dict[str, Any] = {"column": False}
# Shown for a record's field that is unset (None), instead of "-".
_NEVER_SINCE_START: dict[str, Any] = {"when_empty": "never since start"}


@dataclass(frozen=True)
class UserView:
    name: str
    uid: int
    gid: int
    full_name: str
    home: str
    shell: str
    locked: bool
    groups: list[str]
    id: str = field(metadata=_HIDDEN_IN_TABLES)
    external_id: str = field(metadata=_HIDDEN_IN_TABLES)
    created: str = field(metadata=_HIDDEN_IN_TABLES)
    modified: str = field(metadata=_HIDDEN_IN_TABLES)

    @classmethod
    def of(cls, message: Any) -> UserView:
        return cls(
            name=message.name,
            uid=message.uid,
            gid=message.gid,
            full_name=message.full_name,
            home=message.home,
            shell=message.shell,
            locked=message.locked,
            groups=list(message.groups),
            id=message.id,
            external_id=message.external_id,
            created=message.created,
            modified=message.modified,
        )


@dataclass(frozen=True)
class GroupView:
    name: str
    gid: int
    members: list[str]
    user_private: bool
    id: str = field(metadata=_HIDDEN_IN_TABLES)
    external_id: str = field(metadata=_HIDDEN_IN_TABLES)
    created: str = field(metadata=_HIDDEN_IN_TABLES)
    modified: str = field(metadata=_HIDDEN_IN_TABLES)

    @classmethod
    def of(cls, message: Any) -> GroupView:
        return cls(
            name=message.name,
            gid=message.gid,
            members=list(message.members),
            user_private=message.user_private,
            id=message.id,
            external_id=message.external_id,
            created=message.created,
            modified=message.modified,
        )


@dataclass(frozen=True)
class TokenView:
    label: str
    created: str
    last_used: str
    last_used_from: str

    @classmethod
    def of(cls, message: Any) -> TokenView:
        return cls(label=message.label, created=message.created, last_used=message.last_used,
                   last_used_from=message.last_used_from)


@dataclass(frozen=True)
class GeneratedTokenView:
    """Rendered for people as the bare token alone (CONTRACT.md), so `$(...)` captures it."""

    secret: str
    token: TokenView

    def plain_text(self) -> str:
        return self.secret


@dataclass(frozen=True)
class ScimRequestView:
    time: str
    method: str
    path: str
    client: str
    token_label: str
    status: int

    @classmethod
    def of(cls, message: Any) -> ScimRequestView:
        return cls(time=message.time, method=message.method, path=message.path,
                   client=message.client, token_label=message.token_label,
                   status=message.status)

    def __str__(self) -> str:
        token = f"token {self.token_label!r}" if self.token_label else "no valid token"
        return (f"{self.time} {self.method} {self.path} from {self.client} "
                f"({token}) -> {self.status}")


@dataclass(frozen=True)
class LoginView:
    time: str
    user: str
    entry_point: str

    @classmethod
    def of(cls, message: Any) -> LoginView:
        return cls(time=message.time, user=message.user, entry_point=message.entry_point)

    def __str__(self) -> str:
        return f"{self.time} {self.user} via {self.entry_point}"


@dataclass(frozen=True)
class StatusView:
    version: str
    started: str
    users: int
    locked_users: int
    groups: int
    database: str
    nss_socket: str
    lookups_served: int
    lookup_connections: int
    https_url: str
    token_labels: list[str]
    last_scim_request: ScimRequestView | None = field(metadata=_NEVER_SINCE_START)
    last_login: LoginView | None = field(metadata=_NEVER_SINCE_START)
    warnings: list[str]

    @classmethod
    def of(cls, message: Any) -> StatusView:
        return cls(
            version=message.version,
            started=message.started,
            users=message.users,
            locked_users=message.locked_users,
            groups=message.groups,
            database=message.database,
            nss_socket=message.nss_socket,
            lookups_served=message.lookups_served,
            lookup_connections=message.lookup_connections,
            https_url=message.https_url,
            token_labels=list(message.token_labels),
            last_scim_request=(ScimRequestView.of(message.last_scim_request)
                               if message.HasField("last_scim_request") else None),
            last_login=(LoginView.of(message.last_login)
                        if message.HasField("last_login") else None),
            warnings=list(message.warnings),
        )
