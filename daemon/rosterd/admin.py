"""Serves the admin API of proto/admin.proto on admin.sock; messages become model types here.

Nothing past this module imports generated code. Access is decided by the
socket file alone (Python gRPC tells a server nothing about its caller): mode
0600 for root, or 0660 with `[admin] group`.
"""

from __future__ import annotations

import collections
import logging
import os
from collections.abc import Callable, Iterable
from concurrent import futures
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from rosterd import __version__, config
from rosterd._generated import admin_pb2, admin_pb2_grpc
from rosterd.accounts import Accounts
from rosterd.activity import ROSTERCTL_USER_AGENT, Activity, LoginSeen, ScimRequestSeen
from rosterd.errors import (
    Conflict,
    IdTaken,
    InvalidName,
    InvalidValue,
    NameTaken,
    NotFound,
    RosterError,
)
from rosterd.hostfiles import HostFiles
from rosterd.lookup_process import LookupProcess
from rosterd.model import Group, User
from rosterd.openid.errors import LoginRefused, TokenRejected
from rosterd.tokens import TokenInfo, TokenStore

log = logging.getLogger(__name__)

ADMIN_WORKERS = 4
MAX_KEPT_WARNINGS = 50


class _WarningCollector(logging.Handler):
    """Keeps the warnings logged since start, for `rosterctl status`."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: collections.deque[str] = collections.deque(maxlen=MAX_KEPT_WARNINGS)

    def emit(self, record: logging.LogRecord) -> None:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.messages.append(f"{stamp} {record.name}: {record.getMessage()}")


WARNINGS = _WarningCollector()

# One table decides the gRPC code of each refusal; its text is safe to show.
_STATUS_OF_ERROR: tuple[tuple[type[RosterError], grpc.StatusCode], ...] = (
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (NameTaken, grpc.StatusCode.ALREADY_EXISTS),
    (IdTaken, grpc.StatusCode.ALREADY_EXISTS),
    (Conflict, grpc.StatusCode.ALREADY_EXISTS),
    (InvalidName, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidValue, grpc.StatusCode.INVALID_ARGUMENT),
    (TokenRejected, grpc.StatusCode.UNAUTHENTICATED),
    (LoginRefused, grpc.StatusCode.PERMISSION_DENIED),
)


def status_code_for(error: RosterError) -> grpc.StatusCode:
    for error_type, code in _STATUS_OF_ERROR:
        if isinstance(error, error_type):
            return code
    return grpc.StatusCode.FAILED_PRECONDITION


if TYPE_CHECKING:
    from rosterd.openid.registrar import Registrar

if TYPE_CHECKING:  # grpc-stubs makes the interceptor generic; the runtime class is not
    _InterceptorBase = grpc.ServerInterceptor[Any, Any]
else:
    _InterceptorBase = grpc.ServerInterceptor


class _RefusalInterceptor(_InterceptorBase):
    """Turns a RosterError into a gRPC status with its sentence; hides anything else."""

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        behaviour = handler.unary_unary
        method = handler_call_details.method.rsplit("/", 1)[-1]

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                return behaviour(request, context)
            except RosterError as err:
                log.info("%s refused: %s", method, err)
                context.abort(status_code_for(err), str(err))
            except Exception:
                log.exception("%s failed", method)
                context.abort(grpc.StatusCode.INTERNAL, "internal error; see the rosterd log")

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def user_message(user: User, groups: Iterable[str]) -> admin_pb2.User:
    return admin_pb2.User(
        id=user.id,
        name=user.name,
        uid=user.uid,
        gid=user.gid,
        full_name=user.gecos,
        home=user.home,
        shell=user.shell,
        locked=user.locked,
        external_id=user.external_id or "",
        groups=sorted(groups),
        created=_stamp(user.created),
        modified=_stamp(user.modified),
    )


def group_message(group: Group) -> admin_pb2.Group:
    return admin_pb2.Group(
        id=group.id,
        name=group.name,
        gid=group.gid,
        members=list(group.member_names),
        user_private=group.private_for_user_id is not None,
        external_id=group.external_id or "",
        created=_stamp(group.created),
        modified=_stamp(group.modified),
    )


class AdminService(admin_pb2_grpc.RosterAdminServicer):
    def __init__(
        self,
        accounts: Accounts,
        tokens: TokenStore,
        lookups: LookupProcess,
        cfg: config.Config,
        https_url: str,
        activity: Activity,
        registrar: Registrar | None = None,
    ) -> None:
        self._registrar = registrar
        self._activity = activity
        self._accounts = accounts
        self._tokens = tokens
        self._https_url = https_url
        self._lookups = lookups
        self._cfg = cfg
        self._started = datetime.now(UTC)

    def _groups_of(self, user_name: str) -> list[str]:
        return [g.name for g in self._accounts.groups_of(user_name)]

    def _user_reply(self, user: User) -> admin_pb2.User:
        return user_message(user, self._groups_of(user.name))

    def AddUser(self, request: Any, context: Any) -> admin_pb2.User:
        user = self._accounts.add_user(
            request.name,
            uid=request.uid if request.HasField("uid") else None,
            gid=request.gid if request.HasField("gid") else None,
            full_name=request.full_name,
            home=request.home or None,
            shell=request.shell or None,
            groups=tuple(request.groups),
        )
        return self._user_reply(user)

    def GetUser(self, request: Any, context: Any) -> admin_pb2.User:
        return self._user_reply(self._accounts.get_user(request.name))

    def ListUsers(self, request: Any, context: Any) -> admin_pb2.ListUsersResponse:
        groups_of: dict[str, list[str]] = collections.defaultdict(list)
        for group in self._accounts.list_groups():
            for member in group.member_names:
                groups_of[member].append(group.name)
        users = [user_message(u, groups_of[u.name]) for u in self._accounts.list_users()]
        return admin_pb2.ListUsersResponse(users=users)

    def LockUser(self, request: Any, context: Any) -> admin_pb2.User:
        return self._user_reply(self._accounts.lock_user(request.name))

    def UnlockUser(self, request: Any, context: Any) -> admin_pb2.User:
        return self._user_reply(self._accounts.unlock_user(request.name))

    def DeleteUser(self, request: Any, context: Any) -> admin_pb2.User:
        return user_message(self._accounts.delete_user(request.name), ())

    def AddGroup(self, request: Any, context: Any) -> admin_pb2.Group:
        gid = request.gid if request.HasField("gid") else None
        return group_message(self._accounts.add_group(request.name, gid=gid))

    def GetGroup(self, request: Any, context: Any) -> admin_pb2.Group:
        return group_message(self._accounts.get_group(request.name))

    def ListGroups(self, request: Any, context: Any) -> admin_pb2.ListGroupsResponse:
        return admin_pb2.ListGroupsResponse(
            groups=[group_message(g) for g in self._accounts.list_groups()]
        )

    def DeleteGroup(self, request: Any, context: Any) -> admin_pb2.Group:
        return group_message(self._accounts.delete_group(request.name))

    def AddGroupMember(self, request: Any, context: Any) -> admin_pb2.Group:
        return group_message(self._accounts.add_member(request.group, request.user))

    def RemoveGroupMember(self, request: Any, context: Any) -> admin_pb2.Group:
        return group_message(self._accounts.remove_member(request.group, request.user))

    def GenerateToken(self, request: Any, context: Any) -> admin_pb2.GeneratedToken:
        secret = self._tokens.generate(request.label)
        (info,) = [t for t in self._tokens.list() if t.label == request.label]
        return admin_pb2.GeneratedToken(token=token_message(info), secret=secret)

    def ListTokens(self, request: Any, context: Any) -> admin_pb2.ListTokensResponse:
        return admin_pb2.ListTokensResponse(
            tokens=[token_message(t) for t in self._tokens.list()]
        )

    def RevokeToken(self, request: Any, context: Any) -> admin_pb2.Token:
        return token_message(self._tokens.revoke(request.label))

    def GetStatus(self, request: Any, context: Any) -> admin_pb2.Status:
        user_count, locked_count = self._accounts.user_counts()
        lookups = self._lookups.stats()
        return admin_pb2.Status(
            version=__version__,
            users=user_count,
            locked_users=locked_count,
            groups=lookups.groups,
            started=_stamp(self._started),
            database=str(self._cfg.paths.state_dir / "rosterd.db"),
            nss_socket=str(self._cfg.paths.runtime_dir / "nss.sock"),
            lookups_served=lookups.lookups_served,
            lookup_connections=lookups.open_connections,
            warnings=list(WARNINGS.messages),
            token_labels=[t.label for t in self._tokens.list()],
            https_url=self._https_url,
            last_scim_request=_scim_request_message(self._activity.last_scim_request),
            last_login=_login_message(self._activity.last_login),
        )

    def RegisterOnFirstLogin(self, request: Any, context: Any) -> admin_pb2.LoginReport:
        if self._registrar is None:
            raise RosterError("OpenID is not configured: set [openid] issuer and "
                              "client_secret_file in the config, then restart rosterd")
        report = self._registrar.register(request.id_token, access_token=request.access_token,
                                          dry_run=request.dry_run,
                                          entry_point=_entry_point(context))
        reply = admin_pb2.LoginReport(
            claims_used=[admin_pb2.ClaimUse(field=u.field, claim=u.claim, value=u.value)
                         for u in report.uses],
            claims_present=report.claims_present, notes=report.notes,
            refusal=report.refusal, refused_by=report.refused_by, dry_run=request.dry_run)
        if report.outcome is not None:
            outcome = report.outcome
            groups = [] if request.dry_run else self._groups_of(outcome.user.name)
            reply.user.CopyFrom(user_message(outcome.user, groups))
            reply.created = outcome.created
            reply.groups_added.extend(outcome.groups_added)
            reply.groups_removed.extend(outcome.groups_removed)
            reply.groups_created.extend(outcome.groups_created)
        return reply


def _entry_point(context: grpc.ServicerContext) -> str:
    """rosterctl, which names itself in its user agent (cli/client.py), or any other gRPC client."""
    for key, value in context.invocation_metadata():
        if key == "user-agent" and str(value).startswith(ROSTERCTL_USER_AGENT):
            return "rosterctl"
    return "grpc"


def _scim_request_message(seen: ScimRequestSeen | None) -> admin_pb2.ScimRequestSeen | None:
    if seen is None:
        return None
    return admin_pb2.ScimRequestSeen(time=_stamp(seen.at), method=seen.method, path=seen.path,
                                     client=seen.client, token_label=seen.token_label,
                                     status=seen.status)


def _login_message(seen: LoginSeen | None) -> admin_pb2.LoginSeen | None:
    if seen is None:
        return None
    return admin_pb2.LoginSeen(time=_stamp(seen.at), user=seen.user,
                               entry_point=seen.entry_point)


def token_message(info: TokenInfo) -> admin_pb2.Token:
    return admin_pb2.Token(
        label=info.label,
        created=_stamp(info.created),
        last_used=_stamp(info.last_used) if info.last_used else "",
        last_used_from=info.last_used_from or "",
    )


def _secure_socket(path: Path, admin_group: str) -> None:
    """Gives admin.sock to its owner (0600) or to its owner and the admin group (0660).

    Root may always connect. The owner is the user rosterd runs as: root, or the
    unprivileged account of the packaged service.
    """
    if not admin_group:
        os.chmod(path, 0o600)
        return
    gid = HostFiles().group_id(admin_group)
    if gid is None:
        raise RosterError(
            f"admin.group {admin_group!r} is not a group in /etc/group "
            "(create it with groupadd, or set admin.group to an existing group)"
        )
    try:
        os.chown(path, -1, gid)
    except PermissionError:
        raise RosterError(
            f"rosterd (UID {os.geteuid()}) cannot give admin.sock to group {admin_group!r}: "
            "it must run as root or as a member of that group"
        ) from None
    os.chmod(path, 0o660)


def start_server(
    accounts: Accounts,
    tokens: TokenStore,
    lookups: LookupProcess,
    cfg: config.Config,
    *,
    socket_path: Path,
    https_url: str,
    activity: Activity,
    registrar: Registrar | None = None,
) -> grpc.Server:
    try:
        socket_path.unlink()
    except FileNotFoundError:
        pass
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=ADMIN_WORKERS, thread_name_prefix="admin"),
        interceptors=[_RefusalInterceptor()],
    )
    admin_pb2_grpc.add_RosterAdminServicer_to_server(
        AdminService(accounts, tokens, lookups, cfg, https_url, activity, registrar), server
    )
    # The process umask (0077) makes the socket 0600 from the moment it exists;
    # _secure_socket then widens it to the admin group only if one is configured.
    server.add_insecure_port(f"unix:{socket_path}")
    server.start()
    _secure_socket(socket_path, cfg.admin.group)
    return server
