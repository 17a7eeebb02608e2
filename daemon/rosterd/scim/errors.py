"""SCIM error responses (RFC 7644 §3.12) and the mapping of rosterd's refusals onto them."""

from __future__ import annotations

import logging

from rosterd.accounts import StaleVersion
from rosterd.errors import (
    Conflict,
    IdTaken,
    InUse,
    InvalidName,
    InvalidValue,
    NameTaken,
    NotFound,
    RosterError,
)

log = logging.getLogger(__name__)

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimError(Exception):
    """A request SCIM refuses: the HTTP status, the RFC 7644 Table 9 scimType and a detail."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type

    def body(self) -> dict[str, object]:
        # RFC 7644 §3.12: status is a string; Okta asserts that detail is present.
        body: dict[str, object] = {"schemas": [ERROR_SCHEMA], "status": str(self.status),
                                   "detail": self.detail}
        if self.scim_type is not None:
            body["scimType"] = self.scim_type
        return body


def invalid_value(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidValue")


def from_roster_error(err: RosterError) -> ScimError:
    """The SCIM answer to a refusal from Accounts; the text is safe to show by design."""
    if isinstance(err, NotFound):
        return ScimError(404, err.message)
    if isinstance(err, StaleVersion):
        return ScimError(412, err.message)
    if isinstance(err, NameTaken | Conflict | IdTaken):
        # A userName, externalId, UID or GID another account holds (RFC 7644 §3.3).
        return ScimError(409, err.message, "uniqueness")
    if isinstance(err, InUse):
        return ScimError(409, err.message)
    if isinstance(err, InvalidName | InvalidValue):
        return invalid_value(err.message)
    log.warning("unmapped refusal %s: %s", type(err).__name__, err)
    return ScimError(400, err.message)
