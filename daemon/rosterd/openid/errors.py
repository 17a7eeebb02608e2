"""Names the ways a login is refused: an untrusted token, a rule keeping a person out."""

from __future__ import annotations

from rosterd.errors import RosterError


class LoginRefused(RosterError):
    """The token is genuine, but a rule of the [openid] config keeps this person out.

    `rule` names the config key (or the policy) that refused, for `rosterctl register`.
    """

    def __init__(self, message: str, *, rule: str = "") -> None:
        super().__init__(message)
        self.rule = rule


class TokenRejected(LoginRefused):
    """The token itself cannot be trusted: signature, issuer, audience, times or nonce."""


class ProviderUnavailable(RosterError):
    """The provider's discovery document, keys or endpoints cannot be used right now."""
