"""Registers a person from an ID token: verify, merge UserInfo, map claims, write the account."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rosterd.accounts import Accounts, FederatedOutcome
from rosterd.activity import Activity
from rosterd.config import Config
from rosterd.errors import InvalidName
from rosterd.names import shown
from rosterd.openid.errors import LoginRefused, TokenRejected
from rosterd.openid.mapping import PROTOCOL_CLAIMS, ClaimUse, claim_names, map_claims
from rosterd.openid.provider import Provider, read_client_credentials
from rosterd.openid.verify import TokenVerifier

log = logging.getLogger(__name__)


@dataclass
class LoginReport:
    """What a sign-in did (or would do): the account, how each field was found, or the refusal."""

    outcome: FederatedOutcome | None = None
    uses: list[ClaimUse] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    claims_present: list[str] = field(default_factory=list)
    refusal: str = ""
    refused_by: str = ""
    elapsed_ms: float = 0.0


class Registrar:
    """The one path from a token to an account, shared by gRPC, rosterctl and the web flow."""

    def __init__(self, cfg: Config, accounts: Accounts, provider: Provider, activity: Activity,
                 verifier: TokenVerifier | None = None) -> None:
        self._cfg = cfg
        self._accounts = accounts
        self._activity = activity
        self.provider = provider
        self.verifier = verifier or TokenVerifier(provider)

    @classmethod
    def from_config(cls, cfg: Config, accounts: Accounts, activity: Activity) -> Registrar:
        credentials = read_client_credentials(Path(cfg.openid.client_secret_file))
        return cls(cfg, accounts, Provider(cfg.openid, credentials), activity)

    def register(self, id_token: str, *, entry_point: str, access_token: str = "",
                 nonce: str | None = None, dry_run: bool = False) -> LoginReport:
        """Verifies and registers; raises LoginRefused, except in a dry run (report.refusal).

        A sign-in that went through (not a dry run) is remembered as the last login,
        with `entry_point` (activity.ENTRY_POINTS) saying which way it came in.
        """
        started = time.perf_counter()
        report = LoginReport()
        try:
            self._register(report, id_token, access_token, nonce, dry_run)
        except LoginRefused as refusal:
            log.info("OpenID sign-in refused (%s): %s", refusal.rule or "policy", refusal)
            if not dry_run:
                raise
            report.refusal, report.refused_by = str(refusal), refusal.rule
        if report.outcome is not None and not dry_run:
            self._activity.login(report.outcome.user.name, entry_point)
        report.elapsed_ms = (time.perf_counter() - started) * 1000
        return report

    def _claims(self, id_token: str, access_token: str, nonce: str | None) -> dict[str, Any]:
        claims = self.verifier.verify(id_token, nonce=nonce)
        if access_token:
            extra = self.provider.userinfo(access_token)
            if extra is not None:
                # OIDC Core §5.3.4: UserInfo's sub must be the ID token's, or it is ignored.
                if extra.get("sub") != claims.get("sub"):
                    raise TokenRejected("the UserInfo answer is about another person than the "
                                        "ID token (sub differs); sign in again",
                                        rule="userinfo")
                claims.update({key: value for key, value in extra.items()
                               if key not in PROTOCOL_CLAIMS})
        return claims

    def _register(self, report: LoginReport, id_token: str, access_token: str,
                  nonce: str | None, dry_run: bool) -> None:
        claims = self._claims(id_token, access_token, nonce)
        report.claims_present = claim_names(claims)
        mapping = map_claims(claims, self._cfg)
        report.uses, report.notes = mapping.uses, mapping.notes
        login = mapping.login
        existing = self._accounts.get_user_by_external_id(login.unique_id)
        if existing is None and not self._cfg.provisioning.register_on_first_login:
            raise LoginRefused(
                "you have no account on this host yet, and accounts are not created at first "
                "sign-in here (provisioning.register_on_first_login = false): ask your admin to "
                f"create your account with the external ID {shown(login.unique_id)}",
                rule="provisioning.register_on_first_login")
        if existing is not None and not existing.active:
            raise LoginRefused(f"your account {existing.name} on this host is deactivated: ask "
                               "your admin to reactivate it", rule="account locked")
        try:
            report.outcome = self._accounts.sign_in_federated(login, create=True,
                                                              dry_run=dry_run)
        except InvalidName as err:
            raise LoginRefused(f"no valid login name can be made for you: {err}. Ask your "
                               f"admin to check openid.username_claim "
                               f"({self._cfg.openid.username_claim!r})",
                               rule="openid.username_claim") from None
        unknown = report.outcome.groups_unknown
        if unknown:
            report.notes.append(
                f"groups not on this host, skipped: {', '.join(shown(g) for g in unknown)} "
                "(create them, or set openid.groups_auto_provision = true)")
