"""Verifies an ID token (OIDC Core §3.1.3.7) with joserfc against the provider's published keys."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwt import JWTClaimsRegistry

from rosterd.openid.errors import TokenRejected
from rosterd.openid.provider import Provider

log = logging.getLogger(__name__)

CLOCK_SKEW_S = 60
MAX_TOKEN_BYTES = 64 * 1024
# Asymmetric algorithms only (RFC 8725 §3.1, §3.2): never "none", and never an
# HMAC algorithm, which a forger could key with the provider's public key.
ALLOWED_ALGORITHMS: frozenset[str] = frozenset({
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512", "EdDSA", "Ed25519",
})


def _b64_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims WITHOUT checking anything: for diagnostics only."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        jwe = " (an encrypted JWE, which rosterd does not accept)" if len(parts) == 5 else ""
        raise TokenRejected(f"this is not an ID token: a signed JWT has 3 dot-separated parts, "
                            f"this has {len(parts)}{jwe}", rule="token format")
    try:
        header, claims = _b64_json(parts[0]), _b64_json(parts[1])
    except (ValueError, UnicodeError):
        raise TokenRejected("this is not an ID token: its header or claims are not "
                            "base64url-encoded JSON", rule="token format") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenRejected("this is not an ID token: its header and claims must be JSON "
                            "objects", rule="token format")
    return header, claims


class TokenVerifier:
    """Checks signature, issuer, audience, times and nonce; returns the token's claims."""

    def __init__(self, provider: Provider, *, clock: Callable[[], float] = time.time,
                 skew_s: int = CLOCK_SKEW_S) -> None:
        self._provider = provider
        self._clock = clock
        self._skew_s = skew_s

    def verify(self, token: str, *, nonce: str | None = None) -> dict[str, Any]:
        token = token.strip()
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenRejected(f"the ID token is larger than {MAX_TOKEN_BYTES} bytes",
                                rule="token format")
        header, _ = unverified_parts(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise TokenRejected("the ID token is not signed (alg 'none'); rosterd accepts only "
                                "tokens signed by the provider", rule="algorithm allow-list")
        if alg.startswith("HS"):
            raise TokenRejected(
                f"the ID token is signed with {alg}, a shared-secret algorithm; rosterd accepts "
                "only the provider's public-key signatures: set the client's ID token signing "
                "algorithm to RS256 at the provider", rule="algorithm allow-list")
        if alg not in ALLOWED_ALGORITHMS:
            raise TokenRejected(f"the ID token's algorithm {alg!r} is not accepted (accepted: "
                                f"{', '.join(sorted(ALLOWED_ALGORITHMS))})",
                                rule="algorithm allow-list")
        kid = header.get("kid")
        key = self._provider.key_for(kid if isinstance(kid, str) else None)
        if key is None:
            raise TokenRejected(
                f"the ID token is signed with key {kid!r}, which the provider "
                f"{self._provider.issuer} does not publish, even after fetching its keys again: "
                "it was not issued by this provider", rule="signature")
        try:
            decoded = jwt.decode(token, key, algorithms=[alg])
        except BadSignatureError:
            raise TokenRejected("the ID token's signature does not match the provider's key: it "
                                "was altered or forged", rule="signature") from None
        except JoseError as err:
            raise TokenRejected(f"the ID token cannot be verified: {err}",
                                rule="signature") from None
        claims: dict[str, Any] = dict(decoded.claims)
        self._check_claims(claims, nonce)
        return claims

    def _check_claims(self, claims: dict[str, Any], nonce: str | None) -> None:
        issuer = self._provider.issuer
        client_id = self._provider.credentials.client_id
        iss = claims.get("iss")
        if not isinstance(iss, str) or iss.rstrip("/") != issuer:
            raise TokenRejected(f"the ID token was issued by {iss!r}, not by {issuer!r} "
                                "(openid.issuer)", rule="openid.issuer")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if client_id not in audiences:
            raise TokenRejected(
                f"the ID token is meant for {', '.join(map(str, audiences)) or 'nobody'}, not "
                f"for rosterd's client {client_id!r}: it was issued to another application",
                rule="audience")
        # OIDC Core §3.1.3.7 (4, 5): with several audiences, azp must name us.
        if len(audiences) > 1 and claims.get("azp") != client_id:
            raise TokenRejected(f"the ID token has several audiences and its azp is "
                                f"{claims.get('azp')!r}, not {client_id!r}", rule="audience")
        registry = JWTClaimsRegistry(
            now=lambda: int(self._clock()), leeway=self._skew_s,
            exp={"essential": True}, iat={"essential": True}, sub={"essential": True})
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            ago = int(self._clock()) - int(claims.get("exp", 0))
            raise TokenRejected(f"the ID token expired {ago} s ago: sign in again (if this "
                                "keeps happening, check this host's clock)",
                                rule="expiry") from None
        except MissingClaimError as err:
            raise TokenRejected(f"the ID token lacks a required claim: {err}",
                                rule="required claims") from None
        except InvalidClaimError as err:
            raise TokenRejected(f"the ID token's times are not valid now ({err}); check this "
                                "host's clock", rule="token times") from None
        if nonce is not None and claims.get("nonce") != nonce:
            raise TokenRejected("the ID token's nonce does not match this login: it belongs to "
                                "another sign-in; start again", rule="nonce")
