"""Defines every SCIM schema rosterd serves: the one source for parsing input and /Schemas."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
# rosterd's own extension: there is no IETF POSIX extension, and urn:ietf: is not ours
# to take (RFC 7643 §10.2 registers that namespace with IANA).
POSIX_USER_SCHEMA = "urn:rosterd:params:scim:schemas:extension:posix:2.0:User"
POSIX_GROUP_SCHEMA = "urn:rosterd:params:scim:schemas:extension:posix:2.0:Group"


@dataclass(frozen=True)
class Attr:
    """One attribute definition as RFC 7643 §7 describes it."""

    name: str
    type: str = "string"  # string boolean decimal integer dateTime reference binary complex
    multi_valued: bool = False
    description: str = ""
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"  # readOnly readWrite immutable writeOnly
    returned: str = "default"  # always never default request
    uniqueness: str = "none"  # none server global
    sub_attributes: tuple[Attr, ...] = ()
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()

    def sub(self, name: str) -> Attr | None:
        """The sub-attribute called `name`, matched ignoring case (RFC 7643 §2.1)."""
        folded = name.casefold()
        return next((a for a in self.sub_attributes if a.name.casefold() == folded), None)

    @property
    def writable(self) -> bool:
        return self.mutability != "readOnly"


@dataclass(frozen=True)
class Schema:
    id: str
    name: str
    description: str
    attributes: tuple[Attr, ...]
    _by_name: dict[str, Attr] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({a.name.casefold(): a for a in self.attributes})

    def attr(self, name: str) -> Attr | None:
        """The attribute called `name`, matched ignoring case (RFC 7643 §2.1)."""
        return self._by_name.get(name.casefold())


def _multi(name: str, description: str, *, types: tuple[str, ...] = (),
           value_type: str = "string", value_case_exact: bool = False) -> Attr:
    """A multi-valued attribute with RFC 7643 §2.4's value, display, type and primary."""
    return Attr(name, "complex", multi_valued=True, description=description, sub_attributes=(
        Attr("value", value_type, case_exact=value_case_exact, description=f"The {name} value."),
        Attr("display", description="A human-readable name."),
        Attr("type", canonical_values=types, description="A label for the value's function."),
        Attr("primary", "boolean", description="Whether this is the preferred value."),
    ))


_ID = Attr("id", case_exact=True, mutability="readOnly", returned="always", uniqueness="server",
           description="The identifier rosterd issued for the resource.")
_EXTERNAL_ID = Attr("externalId", case_exact=True,
                    description="The identifier the provisioning client gives the resource.")
_META = Attr("meta", "complex", mutability="readOnly", description="Resource metadata.",
             sub_attributes=(
                 Attr("resourceType", case_exact=True, mutability="readOnly"),
                 Attr("created", "dateTime", mutability="readOnly"),
                 Attr("lastModified", "dateTime", mutability="readOnly"),
                 Attr("location", "reference", case_exact=True, mutability="readOnly",
                      reference_types=("uri",)),
                 Attr("version", case_exact=True, mutability="readOnly"),
             ))
COMMON_ATTRIBUTES: tuple[Attr, ...] = (_ID, _EXTERNAL_ID, _META)

USER = Schema(USER_SCHEMA, "User", "A person with a POSIX account on this host", (
    Attr("userName", required=True, uniqueness="server",
         description="The provider's unique name for the person, kept verbatim; the POSIX "
                     "login name is derived from it."),
    Attr("name", "complex", description="The components of the person's name.",
         sub_attributes=tuple(Attr(n) for n in (
             "formatted", "familyName", "givenName", "middleName", "honorificPrefix",
             "honorificSuffix"))),
    Attr("displayName", description="The name shown for the person; becomes the GECOS field."),
    Attr("nickName"),
    Attr("profileUrl", "reference", reference_types=("external",)),
    Attr("title"),
    Attr("userType"),
    Attr("preferredLanguage"),
    Attr("locale"),
    Attr("timezone"),
    Attr("active", "boolean",
         description="false locks the account: it still resolves, but cannot sign in."),
    Attr("password", mutability="writeOnly", returned="never",
         description="Accepted and discarded: rosterd keeps no passwords."),
    _multi("emails", "E-mail addresses.", types=("work", "home", "other")),
    _multi("phoneNumbers", "Phone numbers.", types=("work", "home", "mobile", "fax", "pager",
                                                    "other")),
    _multi("ims", "Instant messaging addresses."),
    _multi("photos", "Photo URLs.", types=("photo", "thumbnail"), value_type="reference"),
    Attr("addresses", "complex", multi_valued=True, description="Physical addresses.",
         sub_attributes=(
             *(Attr(n) for n in ("formatted", "streetAddress", "locality", "region",
                                 "postalCode", "country")),
             Attr("type", canonical_values=("work", "home", "other")),
             Attr("primary", "boolean"),
         )),
    Attr("groups", "complex", multi_valued=True, mutability="readOnly",
         description="The groups the person is a member of (set through the groups).",
         sub_attributes=(
             Attr("value", case_exact=True, mutability="readOnly"),
             Attr("$ref", "reference", mutability="readOnly", reference_types=("Group",)),
             Attr("display", mutability="readOnly"),
             Attr("type", mutability="readOnly", canonical_values=("direct",)),
         )),
    _multi("entitlements", "Entitlements."),
    _multi("roles", "Roles."),
    _multi("x509Certificates", "Certificates.", value_type="binary", value_case_exact=True),
))

ENTERPRISE_USER = Schema(ENTERPRISE_SCHEMA, "EnterpriseUser", "Enterprise user (RFC 7643 §4.3)", (
    Attr("employeeNumber"),
    Attr("costCenter"),
    Attr("organization"),
    Attr("division"),
    Attr("department"),
    Attr("manager", "complex", sub_attributes=(
        Attr("value", case_exact=True), Attr("$ref", "reference", reference_types=("User",)),
        Attr("displayName", mutability="readOnly"),
    )),
))

POSIX_USER = Schema(POSIX_USER_SCHEMA, "PosixUser", "The person's POSIX account on this host", (
    Attr("loginName", case_exact=True, mutability="readOnly", uniqueness="server",
         description="The login name rosterd derived from userName (scim.login_name_rule)."),
    Attr("uidNumber", "integer", mutability="immutable", uniqueness="server",
         description="The UID; allocated by rosterd unless sent on create."),
    Attr("gidNumber", "integer", mutability="immutable",
         description="The primary GID; the user's private group unless sent on create."),
    Attr("homeDirectory", case_exact=True,
         description="The home directory, under provisioning.home_root; kept when left out."),
    Attr("loginShell", case_exact=True, canonical_values=("/bin/bash", "/bin/sh"),
         description="The login shell; kept when left out."),
))

GROUP = Schema(GROUP_SCHEMA, "Group", "A POSIX group on this host", (
    Attr("displayName", required=True,
         description="The provider's name for the group, kept verbatim; the POSIX group "
                     "name is derived from it."),
    Attr("members", "complex", multi_valued=True, description="The group's members (users).",
         sub_attributes=(
             Attr("value", case_exact=True, mutability="immutable",
                  description="The member's id."),
             Attr("$ref", "reference", mutability="readOnly", reference_types=("User",)),
             Attr("display", mutability="readOnly"),
             Attr("type", mutability="readOnly", canonical_values=("User",)),
         )),
))

POSIX_GROUP = Schema(POSIX_GROUP_SCHEMA, "PosixGroup", "The group's POSIX side on this host", (
    Attr("gidNumber", "integer", mutability="immutable", uniqueness="server",
         description="The GID; allocated by rosterd unless sent on create."),
    Attr("groupName", case_exact=True, mutability="readOnly", uniqueness="server",
         description="The POSIX group name rosterd derived from displayName."),
))


@dataclass(frozen=True)
class ResourceType:
    """A resource type (RFC 7643 §6): its endpoint, core schema and extensions."""

    name: str
    endpoint: str
    core: Schema
    extensions: tuple[Schema, ...]

    def extension(self, urn: str) -> Schema | None:
        folded = urn.casefold()
        return next((s for s in self.extensions if s.id.casefold() == folded), None)

    def attr(self, name: str) -> Attr | None:
        """A core or common attribute by name, ignoring case."""
        found = self.core.attr(name)
        if found is None:
            folded = name.casefold()
            found = next((a for a in COMMON_ATTRIBUTES if a.name.casefold() == folded), None)
        return found


USERS = ResourceType("User", "/Users", USER, (ENTERPRISE_USER, POSIX_USER))
GROUPS = ResourceType("Group", "/Groups", GROUP, (POSIX_GROUP,))
RESOURCE_TYPES: tuple[ResourceType, ...] = (USERS, GROUPS)
SCHEMAS: tuple[Schema, ...] = (USER, ENTERPRISE_USER, POSIX_USER, GROUP, POSIX_GROUP)
