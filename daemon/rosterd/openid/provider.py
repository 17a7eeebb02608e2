"""Talks to the OpenID provider: credentials, discovery, cached keys, token and UserInfo calls."""

from __future__ import annotations

import logging
import os
import ssl
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from joserfc.jwk import Key, import_key

from rosterd.config import OpenidConfig
from rosterd.errors import RosterError
from rosterd.openid.errors import ProviderUnavailable, TokenRejected

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 10.0
# A token naming an unknown key makes rosterd fetch the provider's keys again
# (a rotation), but never more than once a second, and once a minute per key
# name: a flood of made-up `kid`s cannot turn rosterd against the provider.
MIN_REFETCH_INTERVAL_S = 1.0
SAME_KID_REFETCH_INTERVAL_S = 60.0
# Key types whose keys are public: an HMAC ("oct") key in a JWKS would be a
# shared secret published to the world, and is never used (RFC 8725 §3.1).
PUBLIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str

    def __repr__(self) -> str:  # never log the secret
        return f"ClientCredentials(client_id={self.client_id!r})"


def read_client_credentials(path: Path) -> ClientCredentials:
    """Reads `client-id=...` and `client-secret=...` from a file only its owner may read."""
    key = "openid.client_secret_file"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise RosterError(f"{key} {path} does not exist: create it with the lines "
                          "client-id=... and client-secret=... from your provider") from None
    except PermissionError:
        raise RosterError(f"{key} {path} cannot be read by rosterd (UID {os.geteuid()}): "
                          f"chown it to the user rosterd runs as, mode 600") from None
    if st.st_mode & 0o077:
        raise RosterError(
            f"{key} {path} is readable by its group or others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}); it holds a secret: run chmod 600 {path}")
    values: dict[str, str] = {}
    try:
        text = path.read_text()
    except PermissionError:
        raise RosterError(f"{key} {path} cannot be read by rosterd (UID {os.geteuid()}): "
                          f"chown it to the user rosterd runs as, mode 600") from None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or name.strip() not in ("client-id", "client-secret"):
            raise RosterError(f"{key} {path} line {number}: expected client-id=... or "
                              "client-secret=...")
        values[name.strip()] = value.strip()
    if not values.get("client-id"):
        raise RosterError(f"{key} {path} has no client-id=... line")
    return ClientCredentials(values["client-id"], values.get("client-secret", ""))


@dataclass(frozen=True)
class Discovery:
    """The parts of the discovery document rosterd uses (OIDC Discovery §3)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    signing_algs: tuple[str, ...]


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The system's trust store, plus `openid.ca_file` for a private PKI; always verifying."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


class Provider:
    """One OpenID provider: its discovery document and keys, fetched lazily and cached."""

    def __init__(self, cfg: OpenidConfig, credentials: ClientCredentials, *,
                 clock: Callable[[], float] = time.monotonic,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not cfg.issuer.startswith("https://"):
            raise RosterError(f"openid.issuer must be an https:// URL, not {cfg.issuer!r}")
        self.issuer = cfg.issuer.rstrip("/")
        self.credentials = credentials
        self._clock = clock
        self._http = httpx.Client(verify=tls_context(cfg.ca_file), timeout=HTTP_TIMEOUT_S,
                                  transport=transport, follow_redirects=False)
        self._lock = threading.Lock()
        self._discovery: Discovery | None = None
        self._keys: dict[str, Key] = {}
        self._unnamed_keys: list[Key] = []
        self._last_fetch = float("-inf")
        self._refetched_for: dict[str, float] = {}
        self.key_fetches = 0

    def close(self) -> None:
        self._http.close()

    def warm_up(self) -> None:
        """Fetches discovery and keys at start; a provider down now is retried at first login."""
        try:
            with self._lock:
                self._fetch_keys()
        except ProviderUnavailable as err:
            log.warning("%s; rosterd will try again at the first sign-in", err)

    def _get_json(self, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.get(url, **kwargs)
        except httpx.HTTPError as err:
            raise ProviderUnavailable(
                f"cannot fetch the provider's {what} from {url}: {err} (is openid.issuer right, "
                "and does openid.ca_file hold the CA of a private PKI?)") from None
        if response.status_code != 200:
            raise ProviderUnavailable(f"the provider's {what} at {url} answered HTTP "
                                      f"{response.status_code}")
        try:
            document = response.json()
        except ValueError:
            raise ProviderUnavailable(f"the provider's {what} at {url} is not JSON") from None
        if not isinstance(document, dict):
            raise ProviderUnavailable(f"the provider's {what} at {url} is not a JSON object")
        return document

    def discovery(self) -> Discovery:
        with self._lock:
            if self._discovery is None:
                self._discovery = self._fetch_discovery()
            return self._discovery

    def _fetch_discovery(self) -> Discovery:
        url = f"{self.issuer}/.well-known/openid-configuration"
        doc = self._get_json(url, "discovery document")
        # OIDC Discovery §4.3: the issuer in the document must be the one configured.
        if doc.get("issuer", "").rstrip("/") != self.issuer:
            raise ProviderUnavailable(
                f"the discovery document at {url} names the issuer {doc.get('issuer')!r}, not "
                f"{self.issuer!r}: set openid.issuer to exactly the provider's issuer")
        endpoints = {}
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = doc.get(name)
            if not isinstance(value, str) or not value.startswith("https://"):
                raise ProviderUnavailable(f"the discovery document at {url} has no https "
                                          f"{name}")
            endpoints[name] = value
        userinfo = doc.get("userinfo_endpoint")
        algs = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
        return Discovery(issuer=self.issuer, userinfo_endpoint=userinfo if isinstance(
            userinfo, str) and userinfo.startswith("https://") else None,
            signing_algs=tuple(str(a) for a in algs), **endpoints)

    def _fetch_keys(self) -> None:
        discovery = self._discovery or self._fetch_discovery()
        self._discovery = discovery
        document = self._get_json(discovery.jwks_uri, "signing keys (JWKS)")
        keys: dict[str, Key] = {}
        unnamed: list[Key] = []
        for entry in document.get("keys", []):
            if not isinstance(entry, dict) or entry.get("kty") not in PUBLIC_KEY_TYPES:
                continue
            if entry.get("use", "sig") != "sig":
                continue
            public = {k: v for k, v in entry.items() if k not in ("d", "p", "q", "dp", "dq",
                                                                  "qi", "k")}
            try:
                key = import_key(public)
            except Exception as err:  # a key joserfc cannot read is skipped, not fatal
                log.warning("skipping a key of the provider's JWKS: %s", err)
                continue
            if isinstance(entry.get("kid"), str):
                keys[entry["kid"]] = key
            else:
                unnamed.append(key)
        self._keys, self._unnamed_keys = keys, unnamed
        self._last_fetch = self._clock()
        self.key_fetches += 1
        log.info("fetched %d signing keys from %s", len(keys) + len(unnamed), discovery.jwks_uri)

    def key_for(self, kid: str | None) -> Key | None:
        """The provider's public key named `kid`; an unknown name triggers one refetch."""
        with self._lock:
            if self._last_fetch == float("-inf"):
                self._fetch_keys()
            found = self._lookup(kid)
            if found is not None:
                return found
            now = self._clock()
            tag = kid or ""
            if (now - self._last_fetch >= MIN_REFETCH_INTERVAL_S
                    and now - self._refetched_for.get(tag, float("-inf"))
                    >= SAME_KID_REFETCH_INTERVAL_S):
                log.info("token names unknown key %r: fetching the provider's keys again", kid)
                self._refetched_for[tag] = now
                self._fetch_keys()
                return self._lookup(kid)
            return None

    def _lookup(self, kid: str | None) -> Key | None:
        if kid is not None:
            return self._keys.get(kid)
        candidates = self._unnamed_keys + list(self._keys.values())
        return candidates[0] if len(candidates) == 1 else None

    def exchange_code(self, code: str, *, redirect_uri: str, code_verifier: str) -> dict[str, Any]:
        """The token request of the code flow (OIDC Core §3.1.3.1), with client_secret_basic."""
        discovery = self.discovery()
        try:
            response = self._http.post(discovery.token_endpoint, data={
                "grant_type": "authorization_code", "code": code,
                "redirect_uri": redirect_uri, "code_verifier": code_verifier,
            }, auth=(self.credentials.client_id, self.credentials.client_secret))
        except httpx.HTTPError as err:
            raise ProviderUnavailable(f"cannot reach the provider's token endpoint: {err}") \
                from None
        if response.status_code != 200:
            detail = ""
            try:
                detail = str(response.json().get("error_description") or
                             response.json().get("error") or "")
            except ValueError:
                pass
            raise TokenRejected(f"the provider refused the login code (HTTP "
                                f"{response.status_code}{': ' + detail if detail else ''}); "
                                "sign in again", rule="token endpoint")
        tokens: dict[str, Any] = response.json()
        return tokens

    def userinfo(self, access_token: str) -> dict[str, Any] | None:
        """Claims from the UserInfo endpoint (OIDC Core §5.3), or None without one."""
        endpoint = self.discovery().userinfo_endpoint
        if endpoint is None:
            return None
        return self._get_json(endpoint, "UserInfo claims",
                              headers={"Authorization": f"Bearer {access_token}"})
