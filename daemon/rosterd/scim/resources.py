"""Reads SCIM User and Group documents into rosterd's terms and renders stored accounts back."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rosterd.accounts import DirectoryGroup, DirectoryUser
from rosterd.errors import InvalidValue
from rosterd.model import Group, User
from rosterd.names import check_id, shown
from rosterd.scim.errors import ScimError, invalid_value
from rosterd.scim.schema import (
    ENTERPRISE_SCHEMA,
    GROUP_SCHEMA,
    GROUPS,
    POSIX_GROUP_SCHEMA,
    POSIX_USER_SCHEMA,
    USER_SCHEMA,
    USERS,
    Attr,
    ResourceType,
    Schema,
)

log = logging.getLogger(__name__)

# Attributes kept in their own columns, or derived, rather than in users.scim_attributes.
_USER_COLUMNS = frozenset({"userName", "externalId", "active", "password"})

Document = dict[str, Any]


def _coerce(attr: Attr, value: Any, where: str) -> Any:
    """Checks one simple value against its type; None means unassigned (RFC 7644 §3.5.2)."""
    if value is None:
        return None
    kind = attr.type
    if kind == "boolean":
        # Entra ID sends "True"/"False" as strings without ?aadOptscim062020 (scim-clients.md
        # §2.5), and Microsoft's reference tests POST "active": "True".
        if isinstance(value, str) and value.casefold() in ("true", "false"):
            return value.casefold() == "true"
        if isinstance(value, bool):
            return value
    elif kind == "integer":
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)  # Entra's custom integer attributes may arrive as strings
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind == "decimal":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    elif kind == "dateTime":
        if isinstance(value, str):
            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise invalid_value(f"{where} must be an xsd:dateTime such as "
                                    f"2026-01-02T03:04:05Z, not {shown(value)}") from None
            return value
    elif isinstance(value, str):  # string, reference, binary
        return None if value == "" and not attr.required else value
    raise invalid_value(f"{where} must be {_a(kind)}, not {_json_type(value)} "
                        f"({shown(json.dumps(value))})")


def _a(kind: str) -> str:
    return {"integer": "an integer", "boolean": "a boolean (true or false)",
            "complex": "an object", "dateTime": "a dateTime string",
            "decimal": "a number"}.get(kind, "a string")


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "an array", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _read_complex(attr: Attr, value: Any, where: str) -> Document | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid_value(f"{where} must be an object, not {_json_type(value)}")
    out: Document = {}
    for key, raw in value.items():
        sub = attr.sub(key)
        if sub is None:
            if raw is None:
                continue  # Entra sends "$ref": null on members it has no URL for
            raise invalid_value(f"{where} has no sub-attribute {shown(key)}; it has "
                                f"{', '.join(a.name for a in attr.sub_attributes)}")
        if not sub.writable:
            continue  # read-only values in a request are ignored (RFC 7644 §3.3)
        coerced = _coerce(sub, raw, f"{where}.{sub.name}")
        if coerced is not None:
            out[sub.name] = coerced
    return out or None


def read_value(attr: Attr, value: Any, where: str) -> Any:
    """Checks and normalises an attribute's value: names in schema case, types coerced."""
    if attr.multi_valued:
        if value is None:
            return None
        if not isinstance(value, list):
            raise invalid_value(f"{where} is multi-valued and must be an array, "
                                f"not {_json_type(value)}")
        if attr.type == "complex":
            items = [_read_complex(attr, item, f"{where}[{i}]") for i, item in enumerate(value)]
        else:
            items = [_coerce(attr, item, f"{where}[{i}]") for i, item in enumerate(value)]
        kept = [item for item in items if item is not None]
        # RFC 7643 §2.4: "primary" may be true for at most one value.
        if sum(1 for item in kept if isinstance(item, dict) and item.get("primary") is True) > 1:
            raise invalid_value(f"{where} marks more than one value as primary")
        return kept or None
    if attr.type == "complex":
        return _read_complex(attr, value, where)
    return _coerce(attr, value, where)


def read_document(kind: ResourceType, body: Any) -> Document:
    """Checks a whole resource from a request, returning only its writable attributes.

    Unknown `schemas` URIs and unknown extension blocks are ignored: Entra ID lists
    a Microsoft URI in Group creates, and sends custom extension blocks without their
    URN in `schemas` (scim-clients.md §2.3, §2.4). An unknown core attribute with a
    value is refused, so a typo is never silently dropped; a null one is skipped
    (Entra's older samples send "department": null).
    """
    if not isinstance(body, dict):
        raise ScimError(400, f"the request body must be a JSON object, not {_json_type(body)}",
                        "invalidSyntax")
    doc: Document = {}
    for key, raw in body.items():
        if key.casefold() == "schemas":
            continue
        extension = kind.extension(key)
        if extension is not None:
            block = _read_extension(extension, raw, key)
            if block:
                doc[extension.id] = block
            continue
        attr = kind.attr(key)
        if attr is None:
            if raw is None or raw == [] or key.startswith("urn:"):
                if raw is not None and raw != []:
                    log.info("ignoring the unknown extension %s in a %s", shown(key), kind.name)
                continue
            raise invalid_value(f"{shown(key)} is not an attribute of a SCIM {kind.name} "
                                f"(see /Schemas/{kind.core.id})")
        if not attr.writable:
            continue  # id, meta, groups: read-only attributes are ignored (RFC 7644 §3.3)
        value = read_value(attr, raw, attr.name)
        if value is not None:
            doc[attr.name] = value
    return doc


def _read_extension(schema: Schema, raw: Any, key: str) -> Document:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise invalid_value(f"{shown(key)} must be an object of {schema.name} attributes")
    block: Document = {}
    for name, value in raw.items():
        attr = schema.attr(name)
        if attr is None:
            if value is None:
                continue
            raise invalid_value(f"{shown(name)} is not an attribute of {schema.id}")
        if not attr.writable:
            continue
        coerced = read_value(attr, value, f"{schema.id}:{attr.name}")
        if coerced is not None:
            block[attr.name] = coerced
    return block


def _required_string(doc: Document, name: str, kind: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value.strip():
        raise invalid_value(f"{name} is required for a {kind} and must be a non-empty string")
    return value


def _explicit_id(block: Document, name: str, what: str) -> int | None:
    value = block.get(name)
    if value is None:
        return None
    try:
        return check_id(value, what=what)
    except InvalidValue as err:
        raise invalid_value(f"{name}: {err}") from None


def _full_name(doc: Document) -> str:
    if isinstance(doc.get("displayName"), str):
        return str(doc["displayName"])
    name = doc.get("name") or {}
    if isinstance(name.get("formatted"), str):
        return str(name["formatted"])
    return " ".join(str(name[part]) for part in ("givenName", "familyName") if name.get(part))


def directory_user(doc: Document, current: User | None = None) -> DirectoryUser:
    """What a create (current None) or a replace of `current` sets, from a read document."""
    user_name = _required_string(doc, "userName", "User")
    posix = doc.get(POSIX_USER_SCHEMA, {})
    uid = _explicit_id(posix, "uidNumber", "UID")
    gid = _explicit_id(posix, "gidNumber", "GID")
    if current is not None:
        # RFC 7643 §7: an immutable attribute may be sent again with its value, not changed.
        pairs = (("uidNumber", uid, current.uid), ("gidNumber", gid, current.gid))
        for name, number, held in pairs:
            if number is not None and number != held:
                raise ScimError(400, f"{name} is {held} and cannot change", "mutability")
    kept = {key: value for key, value in doc.items()
            if key not in _USER_COLUMNS and key != POSIX_USER_SCHEMA}
    return DirectoryUser(
        user_name=user_name, external_id=doc.get("externalId"),
        active=doc.get("active", True) is not False, full_name=_full_name(doc),
        attributes=json.dumps(kept, ensure_ascii=False, separators=(",", ":")) if kept else None,
        uid=uid, gid=gid, home=posix.get("homeDirectory"), shell=posix.get("loginShell"),
    )


def directory_group(doc: Document, current: Group | None = None) -> DirectoryGroup:
    display_name = _required_string(doc, "displayName", "Group")
    gid = _explicit_id(doc.get(POSIX_GROUP_SCHEMA, {}), "gidNumber", "GID")
    if current is not None and gid is not None and gid != current.gid:
        raise ScimError(400, f"gidNumber is {current.gid} and cannot change", "mutability")
    member_ids = []
    for member in doc.get("members", []):
        if not isinstance(member.get("value"), str):
            raise invalid_value("every member needs a value: the id of a user")
        member_ids.append(member["value"])
    return DirectoryGroup(display_name=display_name, external_id=doc.get("externalId"),
                          member_ids=tuple(member_ids), gid=gid)


def _timestamp(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def etag(version: int) -> str:
    """meta.version and the ETag header: a weak validator (RFC 7644 §3.14, RFC 7232 §2.3)."""
    return f'W/"{version}"'


def _meta(kind: str, resource_id: str, created: datetime, modified: datetime, version: int,
          base_url: str) -> Document:
    endpoint = USERS.endpoint if kind == "User" else GROUPS.endpoint
    return {"resourceType": kind, "created": _timestamp(created),
            "lastModified": _timestamp(modified),
            "location": f"{base_url}{endpoint}/{resource_id}", "version": etag(version)}


def render_user(user: User, groups: Iterable[tuple[str, str]], base_url: str) -> Document:
    """The full SCIM representation of a user (before any attributes projection)."""
    stored: Document = json.loads(user.scim_attributes) if user.scim_attributes else {}
    if not stored and user.gecos:
        stored["displayName"] = user.gecos  # an account made by rosterctl
    schemas = [USER_SCHEMA] + ([ENTERPRISE_SCHEMA] if ENTERPRISE_SCHEMA in stored else [])
    doc: Document = {"schemas": [*schemas, POSIX_USER_SCHEMA], "id": user.id}
    if user.external_id is not None:
        doc["externalId"] = user.external_id
    doc["userName"] = user.user_name if user.user_name is not None else user.name
    doc.update(stored)
    doc["active"] = user.active
    member_of = [{"value": group_id, "$ref": f"{base_url}{GROUPS.endpoint}/{group_id}",
                  "display": display, "type": "direct"} for group_id, display in groups]
    if member_of:
        doc["groups"] = member_of
    doc[POSIX_USER_SCHEMA] = {"loginName": user.name, "uidNumber": user.uid,
                              "gidNumber": user.gid, "homeDirectory": user.home,
                              "loginShell": user.shell}
    doc["meta"] = _meta("User", user.id, user.created, user.modified, user.version, base_url)
    return doc


def render_group(group: Group, members: Iterable[tuple[str, str, str | None]] | None,
                 base_url: str) -> Document:
    """The SCIM representation of a group; members None leaves them out (not loaded)."""
    doc: Document = {"schemas": [GROUP_SCHEMA, POSIX_GROUP_SCHEMA], "id": group.id}
    if group.external_id is not None:
        doc["externalId"] = group.external_id
    doc["displayName"] = group.display_name if group.display_name is not None else group.name
    if members is not None:
        doc["members"] = [{"value": user_id, "$ref": f"{base_url}{USERS.endpoint}/{user_id}",
                           "display": user_name if user_name is not None else name,
                           "type": "User"} for user_id, name, user_name in members]
    doc[POSIX_GROUP_SCHEMA] = {"gidNumber": group.gid, "groupName": group.name}
    doc["meta"] = _meta("Group", group.id, group.created, group.modified, group.version,
                        base_url)
    return doc


@dataclass(frozen=True)
class Projection:
    """The `attributes` / `excludedAttributes` query parameters (RFC 7644 §3.4.2.5)."""

    attributes: frozenset[str] = frozenset()
    excluded: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, attributes: str | None, excluded: str | None) -> Projection:
        def names(text: str | None) -> frozenset[str]:
            return frozenset(p.strip().casefold() for p in (text or "").split(",") if p.strip())
        return cls(names(attributes), names(excluded))

    @property
    def excludes_members(self) -> bool:
        return "members" in self.excluded or bool(
            self.attributes and not any(a.startswith("members") for a in self.attributes))

    def apply(self, kind: ResourceType, doc: Document) -> Document:
        """Keeps what `attributes` asks for, or drops what `excludedAttributes` names.

        `id` and `schemas` are returned always (RFC 7643 §7). Names are full paths,
        matched ignoring case: `name.givenName`, or `<extension URN>:<attribute>`.
        """
        if not self.attributes and not self.excluded:
            return doc
        out: Document = {}
        for key, value in doc.items():
            full = key.casefold()
            if key in ("schemas", "id"):
                out[key] = value
                continue
            joiner = ":" if kind.extension(key) is not None else "."
            if self.attributes:
                if full in self.attributes:
                    out[key] = value
                elif isinstance(value, dict):
                    kept = {k: v for k, v in value.items()
                            if f"{full}{joiner}{k.casefold()}" in self.attributes}
                    if kept:
                        out[key] = kept
                elif any(a.startswith(full + ".") for a in self.attributes):
                    out[key] = value  # emails.value asked for: the values come whole
            elif full not in self.excluded:
                if isinstance(value, dict):
                    value = {k: v for k, v in value.items()
                             if f"{full}{joiner}{k.casefold()}" not in self.excluded}
                out[key] = value
        return out


def location_base(public_url: str, request_base: str) -> str:
    """The absolute base URL of the SCIM endpoints, for meta.location (RFC 7643 §3.1)."""
    if public_url:
        return public_url.rstrip("/") + "/scim/v2"
    return request_base.rstrip("/")
