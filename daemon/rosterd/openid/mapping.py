"""Turns verified claims into a FederatedLogin by the [openid] claim options, or refuses with why.

The options and their behaviour follow the OpenID Connect guides in the
project's seeds (Posit Connect's Azure AD and Google pages): username claim
with an e-mail local-part fallback, the unique ID claim, names and e-mail
refreshed at each login, groups as a list or a separated string, and the
allowed_domains / allowed_emails rule.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from rosterd.accounts import FederatedLogin
from rosterd.config import Config
from rosterd.names import sanitize_text, shown
from rosterd.openid.errors import LoginRefused

log = logging.getLogger(__name__)

# Claims of the token itself rather than of the person: left out of "which claims
# arrived" so the list a person reads is about them.
PROTOCOL_CLAIMS = frozenset({"iss", "aud", "exp", "iat", "nbf", "nonce", "azp", "at_hash",
                             "c_hash", "auth_time", "acr", "amr", "sid", "jti", "s_hash"})


@dataclass(frozen=True)
class ClaimUse:
    """One line of `rosterctl register`'s explanation: which claim gave which field."""

    field: str
    claim: str
    value: str


@dataclass
class Mapping:
    """The mapping's result: the login, how each field was found, and notes for the admin."""

    login: FederatedLogin
    uses: list[ClaimUse] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def claim_names(claims: dict[str, Any]) -> list[str]:
    return sorted(name for name in claims if name not in PROTOCOL_CLAIMS)


def _text(claims: dict[str, Any], name: str) -> str | None:
    """A claim's value as text when it is a non-blank string (blank counts as absent)."""
    if not name:
        return None
    value = claims.get(name)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _groups(claims: dict[str, Any], cfg: Config, mapping: Mapping) -> tuple[str, ...] | None:
    name = cfg.openid.groups_claim
    if not name:
        return None
    # Entra ID's "groups overage": over its limit it sends no groups claim but
    # `_claim_names: {"groups": "src1"}` pointing at Graph (OIDC Core §5.6.2,
    # aggregated and distributed claims). Memberships are left alone, not wiped.
    names = claims.get("_claim_names")
    if name not in claims and isinstance(names, dict) and name in names:
        note = (f"the provider sent too many groups to fit the token (Entra ID's 'groups "
                f"overage': '{name}' is listed in _claim_names); memberships are left as they "
                "are. Fix: in the app registration's token configuration emit only 'Groups "
                "assigned to the application', or assign fewer groups")
        log.warning("%s", note)
        mapping.notes.append(note)
        return None
    value = claims.get(name)
    if value is None or value == "" or value == []:
        mapping.notes.append(f"no '{name}' claim (openid.groups_claim): memberships are left "
                             "as they are")
        return None
    items: list[str]
    if isinstance(value, list):
        items = [str(item).strip() for item in value if isinstance(item, (str, int))]
    elif isinstance(value, str):
        separator = cfg.openid.groups_separator
        items = [part.strip() for part in value.split(separator)] if separator else [value]
    else:
        mapping.notes.append(f"the '{name}' claim is neither a list nor a string: memberships "
                             "are left as they are")
        return None
    groups = tuple(dict.fromkeys(item for item in items if item))
    mapping.uses.append(ClaimUse("groups", name, ", ".join(groups)))
    return groups


def check_allowed(email: str | None, cfg: Config) -> None:
    """The Google guide's rule: listed addresses plus addresses in listed domains; else anyone."""
    domains, emails = cfg.openid.allowed_domains, cfg.openid.allowed_emails
    if not domains and not emails:
        return
    if email is None:
        raise LoginRefused(
            f"this host admits only listed e-mail addresses or domains, and the sign-in carried "
            f"no '{cfg.openid.email_claim}' claim (openid.email_claim): ask your admin to have "
            "the provider send your e-mail address", rule="openid.allowed_domains")
    address = email.lower()
    domain = address.rpartition("@")[2]
    if address in emails or domain in domains:
        return
    which = ("openid.allowed_domains" if domains and not emails else
             "openid.allowed_emails" if emails and not domains else
             "openid.allowed_domains and openid.allowed_emails")
    raise LoginRefused(
        f"{shown(email)} may not sign in to this host: its domain {shown(domain)} is not "
        f"allowed ({which}); ask your admin to add your domain or address",
        rule=which)


def map_claims(claims: dict[str, Any], cfg: Config) -> Mapping:
    """Reads the person out of verified claims; raises LoginRefused naming the rule."""
    oid = cfg.openid
    unique_id_value = claims.get(oid.unique_id_claim)
    if isinstance(unique_id_value, int) and not isinstance(unique_id_value, bool):
        unique_id_value = str(unique_id_value)
    if not isinstance(unique_id_value, str) or not unique_id_value.strip():
        raise LoginRefused(
            f"the sign-in carried no '{oid.unique_id_claim}' claim (openid.unique_id_claim), "
            f"so the person cannot be identified for good; claims that arrived: "
            f"{', '.join(claim_names(claims)) or 'none'}", rule="openid.unique_id_claim")
    unique_id = unique_id_value.strip()
    email = _text(claims, oid.email_claim)
    if email is not None and claims.get("email_verified") is False and (
            oid.allowed_domains or oid.allowed_emails):
        raise LoginRefused(f"the provider says the e-mail address {shown(email)} is not "
                           "verified, and this host admits people by address: verify it at "
                           "the provider, then sign in again", rule="email_verified")
    check_allowed(email, cfg)

    uses = [ClaimUse("external ID", oid.unique_id_claim, unique_id)]
    username = _text(claims, oid.username_claim)
    rule: Literal["whole", "local-part"]
    if username is not None:
        login_value, rule = username, cfg.scim.login_name_rule
        uses.append(ClaimUse("login name (from)", oid.username_claim, username))
    elif oid.require_username_claim:
        raise LoginRefused(
            f"the sign-in carried no '{oid.username_claim}' claim (openid.username_claim), and "
            f"openid.require_username_claim is true; claims that arrived: "
            f"{', '.join(claim_names(claims)) or 'none'}. Fix: set openid.username_claim to "
            f"one of them, or have the provider send '{oid.username_claim}'",
            rule="openid.require_username_claim")
    elif email is not None:
        login_value, rule = email, "local-part"
        uses.append(ClaimUse("login name (from e-mail's local part)", oid.email_claim, email))
    else:
        raise LoginRefused(
            f"no login name can be made: the sign-in carried neither '{oid.username_claim}' "
            f"(openid.username_claim) nor '{oid.email_claim}' (openid.email_claim); claims that "
            f"arrived: {', '.join(claim_names(claims)) or 'none'}",
            rule="openid.username_claim")

    first = _text(claims, oid.first_name_claim)
    last = _text(claims, oid.last_name_claim)
    full_name = " ".join(part for part in (first, last) if part) or None
    for label, claim, value in (("first name", oid.first_name_claim, first),
                                ("last name", oid.last_name_claim, last),
                                ("e-mail", oid.email_claim, email)):
        if value is not None:
            uses.append(ClaimUse(label, claim, sanitize_text(value)))
    mapping = Mapping(FederatedLogin(unique_id=unique_id, login_value=login_value,
                                     login_rule=rule), uses)
    groups = _groups(claims, cfg, mapping)
    mapping.login = FederatedLogin(
        unique_id=unique_id, login_value=login_value, login_rule=rule, full_name=full_name,
        first_name=first, last_name=last, email=email, groups=groups,
        groups_by_unique_id=oid.groups_by_unique_id,
        groups_auto_provision=oid.groups_auto_provision and not oid.groups_by_unique_id)
    return mapping
