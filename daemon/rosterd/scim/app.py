"""The SCIM 2.0 HTTP endpoints (RFC 7644 §3) as a Starlette app mounted at /scim/v2."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from typing import Any, Protocol

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rosterd.accounts import Accounts
from rosterd.activity import Activity
from rosterd.config import Config
from rosterd.errors import RosterError
from rosterd.model import Group, User
from rosterd.scim import discovery
from rosterd.scim.errors import ScimError, from_roster_error, invalid_value
from rosterd.scim.filters import (
    check_filter,
    equality_hint,
    matches,
    parse_filter,
    resource_resolver,
)
from rosterd.scim.patch import apply_patch, operations
from rosterd.scim.resources import (
    Document,
    Projection,
    directory_group,
    directory_user,
    etag,
    location_base,
    read_document,
    render_group,
    render_user,
)
from rosterd.scim.schema import GROUPS, RESOURCE_TYPES, SCHEMAS, USERS
from rosterd.store import Transaction, groups, users

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/scim+json"
# Request bodies we accept: RFC 7644 §8.1's own type, and plain JSON, which Okta's
# test suite POSTs with (scim-clients.md §0.1).
ACCEPTED_MEDIA_TYPES = frozenset({"application/scim+json", "application/json"})
MAX_BODY_BYTES = 1024 * 1024
_ETAG_NUMBER = re.compile(r'(?:W/)?"(\d+)"')


class Authenticator(Protocol):
    """What the app needs of rosterd.tokens.TokenStore."""

    def authenticate(self, authorization: str | None, client: str) -> Any: ...


def _response(status: int, body: Document | None = None,
              headers: dict[str, str] | None = None) -> Response:
    # RFC 7644 §8.1: answers are application/scim+json, which Entra ID requires (§2.1).
    content = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
    return Response(content, status_code=status, headers=headers,
                    media_type=MEDIA_TYPE if body is not None else None)


def _error(err: ScimError, headers: dict[str, str] | None = None) -> Response:
    return _response(err.status, err.body(), headers)


async def _read_json(request: Request) -> Any:
    media = request.headers.get("content-type", "").split(";")[0].strip().casefold()
    if media and media not in ACCEPTED_MEDIA_TYPES:
        raise ScimError(415, f"send the body as {MEDIA_TYPE} or application/json, not {media}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ScimError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ScimError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ScimError(400, f"the body is not valid JSON: {err}", "invalidSyntax") from None


def _if_match(request: Request) -> int | None:
    """The version an If-Match header requires (RFC 7644 §3.14); None: any."""
    header = request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return None
    found = _ETAG_NUMBER.search(header)
    return int(found.group(1)) if found else -1  # no version of ours: never matches


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise invalid_value(f"{name} must be an integer, not {raw!r}") from None


class ScimApp:
    """The endpoints; every blocking call (the store, token checks) runs in a worker thread."""

    def __init__(self, accounts: Accounts, tokens: Authenticator, config: Config,
                 activity: Activity) -> None:
        self._accounts = accounts
        self._tokens = tokens
        self._config = config
        self._activity = activity

    def _base(self, request: Request) -> str:
        # The mount's prefix (/scim/v2) is in root_path (ASGI spec, "root_path").
        here = f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}"
        return location_base(self._config.http.public_url, here)

    async def __call__(self, request: Request) -> Response:
        client = request.client.host if request.client else "unknown"
        label = ""
        try:
            verdict = await run_in_threadpool(
                self._tokens.authenticate, request.headers.get("authorization"), client)
            if verdict.ok:
                label = verdict.label or ""
                response = await self._dispatch(request)
            elif verdict.retry_after_s > 0:
                # Answered at once rather than held open: a slowed-down client costs
                # no worker while it waits (RFC 6585 §4).
                response = _error(ScimError(429, verdict.reason), {
                    "Retry-After": str(max(1, math.ceil(verdict.retry_after_s)))})
            else:
                response = _error(ScimError(401, verdict.reason), {
                    "WWW-Authenticate": 'Bearer realm="rosterd", error="invalid_token"'})
        except ScimError as err:
            response = _error(err)
        except RosterError as err:
            response = _error(from_roster_error(err))
        except Exception:
            log.exception("SCIM %s %s failed", request.method, request.url.path)
            response = _error(ScimError(500, "rosterd could not complete the request; "
                                             "its log says why"))
        log.debug("SCIM %s %s -> %d", request.method, request.url.path, response.status_code)
        self._activity.scim_request(request.method, request.url.path, client, label,
                                    response.status_code)
        return response

    async def _dispatch(self, request: Request) -> Response:
        parts = [p for p in request.path_params.get("path", "").split("/") if p]
        method = request.method
        head = parts[0].casefold() if parts else ""
        routes: dict[str, dict[str, Callable[..., Any]]] = {
            "users": {"GET": self._list_users, "POST": self._create_user},
            "groups": {"GET": self._list_groups, "POST": self._create_group},
        }
        one: dict[str, dict[str, Callable[..., Any]]] = {
            "users": {"GET": self._get_user, "PUT": self._put_user, "PATCH": self._patch_user,
                      "DELETE": self._delete_user},
            "groups": {"GET": self._get_group, "PUT": self._put_group,
                       "PATCH": self._patch_group, "DELETE": self._delete_group},
        }
        if head in ("serviceproviderconfig", "resourcetypes", "schemas") and len(parts) <= 2:
            if method != "GET":
                raise ScimError(405, f"{parts[0]} is read-only; use GET")
            return self._discovery(request, head, parts[1] if len(parts) == 2 else None)
        if head in ("bulk", "me") and len(parts) == 1:
            raise ScimError(501, f"/{parts[0]} is not supported (see /ServiceProviderConfig)")
        table = routes if len(parts) == 1 else one if len(parts) == 2 else {}
        handlers = table.get(head)
        if handlers is None:
            raise ScimError(404, f"nothing is served at {request.url.path}")
        handler = handlers.get(method)
        if handler is None:
            raise ScimError(405, f"{method} is not allowed on {request.url.path}")
        result: Response = await (handler(request) if len(parts) == 1
                                  else handler(request, parts[1]))
        return result

    def _discovery(self, request: Request, what: str, name: str | None) -> Response:
        base = self._base(request)
        if what == "serviceproviderconfig":
            if name is not None:
                raise ScimError(404, f"nothing is served at {request.url.path}")
            return _response(200, discovery.service_provider_config(base))
        if what == "resourcetypes":
            if name is None:
                return _response(200, discovery.list_response(
                    [discovery.resource_type(k, base) for k in RESOURCE_TYPES]))
            kind = discovery.find_resource_type(name)
            if kind is None:
                raise ScimError(404, f"there is no resource type {name!r}")
            return _response(200, discovery.resource_type(kind, base))
        if name is None:
            return _response(200, discovery.list_response(
                [discovery.schema(s, base) for s in SCHEMAS]))
        found = discovery.find_schema(name)
        if found is None:
            raise ScimError(404, f"there is no schema {name!r}")
        return _response(200, discovery.schema(found, base))

    # Users

    def _render_users(self, tx: Transaction, found: list[User], base: str) -> list[Document]:
        member_of = tx.groups_of_users(u.id for u in found)
        return [render_user(u, member_of.get(u.id, ()), base) for u in found]

    def _user_answer(self, request: Request, user: User, status: int,
                     extra: dict[str, str] | None = None) -> Response:
        with self._accounts.reading() as tx:
            doc = self._render_users(tx, [user], self._base(request))[0]
        projection = Projection.parse(request.query_params.get("attributes"),
                                      request.query_params.get("excludedAttributes"))
        headers = {"ETag": etag(user.version), **(extra or {})}
        return _response(status, projection.apply(USERS, doc), headers)

    async def _list_users(self, request: Request) -> Response:
        return await run_in_threadpool(self._query, request, USERS)

    async def _get_user(self, request: Request, user_id: str) -> Response:
        def read() -> Response:
            with self._accounts.reading() as tx:
                user = tx.user_by_id(user_id)
            if user is None:
                raise ScimError(404, f"no user has the id {user_id!r}")
            if request.headers.get("if-none-match") == etag(user.version):
                return _response(304, None, {"ETag": etag(user.version)})
            return self._user_answer(request, user, 200)
        return await run_in_threadpool(read)

    async def _create_user(self, request: Request) -> Response:
        doc = read_document(USERS, await _read_json(request))
        entry = directory_user(doc)
        rule = self._config.scim.login_name_rule
        user = await run_in_threadpool(lambda: self._accounts.provision_user(entry, rule=rule))
        location = f"{self._base(request)}{USERS.endpoint}/{user.id}"
        return await run_in_threadpool(self._user_answer, request, user, 201,
                                       {"Location": location})

    async def _put_user(self, request: Request, user_id: str) -> Response:
        doc = read_document(USERS, await _read_json(request))
        user = await run_in_threadpool(lambda: self._accounts.replace_user(
            user_id, lambda current: directory_user(doc, current),
            expect_version=_if_match(request)))
        return await run_in_threadpool(self._user_answer, request, user, 200)

    async def _patch_user(self, request: Request, user_id: str) -> Response:
        ops = operations(await _read_json(request))
        base = self._base(request)

        def patched(current: User) -> Any:
            doc = read_document(USERS, render_user(current, (), base))
            return directory_user(read_document(USERS, apply_patch(USERS, doc, ops)), current)

        user = await run_in_threadpool(lambda: self._accounts.replace_user(
            user_id, patched, expect_version=_if_match(request)))
        # Users answer 200 with the resource, which every client and checker accepts (§0.18).
        return await run_in_threadpool(self._user_answer, request, user, 200)

    async def _delete_user(self, request: Request, user_id: str) -> Response:
        await run_in_threadpool(lambda: self._accounts.delete_user_by_id(
            user_id, expect_version=_if_match(request)))
        return _response(204)

    # Groups

    def _render_groups(self, tx: Transaction, found: list[Group], base: str,
                       projection: Projection) -> list[Document]:
        if projection.excludes_members:  # Entra asks excludedAttributes=members (§2.2)
            return [render_group(g, None, base) for g in found]
        members = tx.members_of(g.id for g in found)
        return [render_group(g, members.get(g.id, []), base) for g in found]

    def _group_answer(self, request: Request, group: Group, status: int,
                      extra: dict[str, str] | None = None) -> Response:
        projection = Projection.parse(request.query_params.get("attributes"),
                                      request.query_params.get("excludedAttributes"))
        with self._accounts.reading() as tx:
            doc = self._render_groups(tx, [group], self._base(request), projection)[0]
        headers = {"ETag": etag(group.version), **(extra or {})}
        return _response(status, projection.apply(GROUPS, doc), headers)

    async def _list_groups(self, request: Request) -> Response:
        return await run_in_threadpool(self._query, request, GROUPS)

    async def _get_group(self, request: Request, group_id: str) -> Response:
        def read() -> Response:
            with self._accounts.reading() as tx:
                group = tx.group_by_id(group_id)
            if group is None or group.user_private:
                raise ScimError(404, f"no group has the id {group_id!r}")
            if request.headers.get("if-none-match") == etag(group.version):
                return _response(304, None, {"ETag": etag(group.version)})
            return self._group_answer(request, group, 200)
        return await run_in_threadpool(read)

    async def _create_group(self, request: Request) -> Response:
        entry = directory_group(read_document(GROUPS, await _read_json(request)))
        group = await run_in_threadpool(self._accounts.provision_group, entry)
        location = f"{self._base(request)}{GROUPS.endpoint}/{group.id}"
        return await run_in_threadpool(self._group_answer, request, group, 201,
                                       {"Location": location})

    async def _put_group(self, request: Request, group_id: str) -> Response:
        doc = read_document(GROUPS, await _read_json(request))
        group = await run_in_threadpool(lambda: self._accounts.replace_group(
            group_id, lambda current, _members: directory_group(doc, current),
            expect_version=_if_match(request)))
        return await run_in_threadpool(self._group_answer, request, group, 200)

    async def _patch_group(self, request: Request, group_id: str) -> Response:
        ops = operations(await _read_json(request))
        base = self._base(request)

        def patched(current: Group, member_ids: list[str]) -> Any:
            members = [(member_id, "", None) for member_id in member_ids]
            doc = read_document(GROUPS, render_group(current, members, base))
            return directory_group(read_document(GROUPS, apply_patch(GROUPS, doc, ops)), current)

        group = await run_in_threadpool(lambda: self._accounts.replace_group(
            group_id, patched, expect_version=_if_match(request)))
        # RFC 7644 §3.5.2: 204 is allowed and is what Entra advises for groups (§2.3), but
        # a request asking for attributes must get them, so 200 then.
        query = request.query_params
        if "attributes" in query or "excludedAttributes" in query:
            return await run_in_threadpool(self._group_answer, request, group, 200)
        return _response(204, None, {"ETag": etag(group.version)})

    async def _delete_group(self, request: Request, group_id: str) -> Response:
        await run_in_threadpool(lambda: self._accounts.delete_group_by_id(
            group_id, expect_version=_if_match(request)))
        return _response(204)

    # Queries (RFC 7644 §3.4.2)

    def _query(self, request: Request, kind: Any) -> Response:
        query = request.query_params
        text = query.get("filter")
        node = parse_filter(text) if text else None
        if node is not None:
            check_filter(node, resource_resolver(kind, {}))
        projection = Projection.parse(query.get("attributes"), query.get("excludedAttributes"))
        # RFC 7644 §3.4.2.4: startIndex below 1 counts as 1, a negative count as 0.
        start = max(1, _int_param(request, "startIndex", 1))
        count = min(max(0, _int_param(request, "count", discovery.MAX_RESULTS)),
                    discovery.MAX_RESULTS)
        base = self._base(request)
        is_users = kind is USERS
        with self._accounts.reading() as tx:
            if node is None:
                total = tx.count_users() if is_users else tx.count_shared_groups()
                page = (self._render_users(tx, tx.users_where(offset=start - 1, limit=count),
                                           base) if is_users else
                        self._render_groups(tx, tx.shared_groups_where(
                            offset=start - 1, limit=count), base, projection))
            else:
                docs = (self._render_users(tx, self._user_candidates(tx, node), base)
                        if is_users else
                        self._render_groups(tx, self._group_candidates(tx, node), base,
                                            Projection()))
                found = [d for d in docs if matches(node, resource_resolver(kind, d))]
                total, page = len(found), found[start - 1:start - 1 + count]
        return _response(200, {
            "schemas": [discovery.LIST_RESPONSE], "totalResults": total,
            "startIndex": start, "itemsPerPage": len(page),
            "Resources": [projection.apply(kind, d) for d in page]})

    def _user_candidates(self, tx: Transaction, node: Any) -> list[User]:
        hint = equality_hint(node, ("id", "userName", "externalId"))
        if hint is None:
            return tx.users_where()
        name, value = hint
        if name == "userName":
            found = tx.user_by_user_name(value)
            # An account made without SCIM answers to its login name as userName.
            by_login = tx.user_by_name(value)
            return [u for u in {found, by_login} if u is not None]
        column = users.c.id if name == "id" else users.c.external_id
        return tx.users_where(column == value)

    def _group_candidates(self, tx: Transaction, node: Any) -> list[Group]:
        hint = equality_hint(node, ("id", "externalId", "displayName"))
        if hint is None:
            return tx.shared_groups_where()
        name, value = hint
        if name == "id":
            return tx.shared_groups_where(groups.c.id == value)
        if name == "externalId":
            return tx.shared_groups_where(groups.c.external_id == value)
        if not value.isascii():  # SQLite's lower() folds ASCII only
            return tx.shared_groups_where()
        return tx.shared_groups_where(
            sa.func.lower(sa.func.coalesce(groups.c.display_name, groups.c.name)) == value.lower())


def build_scim_app(*, accounts: Accounts, tokens: Authenticator, config: Config,
                   activity: Activity) -> Starlette:
    """The SCIM app; http.py mounts it at /scim/v2."""
    scim = ScimApp(accounts, tokens, config, activity)

    async def endpoint(request: Request) -> Response:
        return await scim(request)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])
