"""Runs a real OpenID provider (oidc-provider on Node) over HTTPS and walks its code flow.

The provider is tests/oidc_provider/provider.mjs, installed by `npm ci` (make test
does it). Its signing keys are generated here, so a test can also rotate them;
people and their claims live in a JSON file read at every login.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
from joserfc.jwk import KeySet, RSAKey

from tests.helpers import processes
from tests.helpers.daemon import free_port
from tests.helpers.tls import trusting

PROVIDER_DIR = Path(__file__).resolve().parents[1] / "oidc_provider"
START_TIMEOUT_S = 20.0
CLIENT_ID = "rosterd"
CLIENT_SECRET = "s3cret-for-tests-only"  # noqa: S105 - a test provider's client secret
OTHER_CLIENT_ID = "other-app"
OTHER_CLIENT_SECRET = "other-secret"  # noqa: S105 - a test provider's second client


def new_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"},
                               private=True)


@dataclass
class OidcProvider:
    """A running oidc-provider; `accounts` maps a login to {"sub", "claims", "userinfo_only"}."""

    root: Path
    port: int
    ca: Any
    keys: list[RSAKey]
    redirect_uris: list[str] = field(default_factory=list)
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.root / "provider-ca.pem"

    @property
    def config_path(self) -> Path:
        return self.root / "provider.json"

    def _write(self) -> None:
        clients = [
            {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
             "redirect_uris": self.redirect_uris or ["https://127.0.0.1/unused"],
             "response_types": ["code"], "grant_types": ["authorization_code"]},
            {"client_id": OTHER_CLIENT_ID, "client_secret": OTHER_CLIENT_SECRET,
             "redirect_uris": ["https://127.0.0.1/other-callback"],
             "response_types": ["code"], "grant_types": ["authorization_code"]},
        ]
        (self.root / "jwks.json").write_text(json.dumps(KeySet(self.keys).as_dict(private=True)))
        self.write_accounts()
        self.config_path.write_text(json.dumps({
            "issuer": self.issuer, "port": self.port, "clients": clients,
            "tls_cert": str(self.root / "cert.pem"), "tls_key": str(self.root / "key.pem"),
            "jwks_file": str(self.root / "jwks.json"),
            "accounts_file": str(self.root / "accounts.json"),
        }))

    def write_accounts(self) -> None:
        (self.root / "accounts.json").write_text(json.dumps(self.accounts))

    def set_account(self, login: str, claims: dict[str, Any], *, sub: str | None = None,
                    userinfo_only: dict[str, Any] | None = None) -> None:
        self.accounts[login] = {"sub": sub or login, "claims": claims,
                                "userinfo_only": userinfo_only or {}}
        self.write_accounts()

    def start(self) -> None:
        self._write()
        log = open(self.root / "provider.log", "ab")
        self.process = subprocess.Popen(
            ["node", str(PROVIDER_DIR / "provider.mjs"), str(self.config_path)],
            stdout=subprocess.PIPE, stderr=log, cwd=PROVIDER_DIR)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if b"listening" not in line:
            raise RuntimeError(f"oidc-provider did not start: {line!r}\n"
                               f"{(self.root / 'provider.log').read_text(errors='replace')}")

    def reload(self, *, wait_for_kid: str | None = None) -> None:
        """Re-reads clients and keys (SIGHUP), then waits until the provider serves them."""
        self._write()
        assert self.process is not None and self.process.stdout is not None
        self.process.send_signal(signal.SIGHUP)
        assert b"keys reloaded" in self.process.stdout.readline()
        if wait_for_kid:
            deadline = time.monotonic() + START_TIMEOUT_S
            with self.client() as http:
                while time.monotonic() < deadline:
                    discovery = http.get("/.well-known/openid-configuration").json()
                    kids = [k["kid"] for k in http.get(discovery["jwks_uri"]).json()["keys"]]
                    if wait_for_kid in kids:
                        return
                    time.sleep(0.05)
            raise RuntimeError(f"the provider never served key {wait_for_kid}")

    def add_redirect_uri(self, uri: str) -> None:
        if uri not in self.redirect_uris:
            self.redirect_uris.append(uri)
            self.reload()

    def rotate_key(self, kid: str) -> RSAKey:
        """Signs with a new key from now on; the old one stays published (a rotation)."""
        key = new_key(kid)
        self.keys.insert(0, key)
        self.reload(wait_for_kid=kid)
        return key

    def stop(self) -> None:
        processes.stop(self.process)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.issuer, verify=trusting(self.ca_file), timeout=30)

    def write_client_secret_file(self, path: Path, *, mode: int = 0o600,
                                 owner: tuple[int, int] | None = None) -> Path:
        path.write_text(f"client-id={CLIENT_ID}\nclient-secret={CLIENT_SECRET}\n")
        path.chmod(mode)
        if owner is not None:
            os.chown(path, *owner)
        return path


@contextmanager
def oidc_provider() -> Iterator[OidcProvider]:
    import shutil

    import trustme

    root = Path(tempfile.mkdtemp(prefix="oidc-", dir="/tmp"))
    root.chmod(0o755)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(root / "provider-ca.pem"))
    (root / "provider-ca.pem").chmod(0o644)
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(root / "key.pem"))
    for index, pem in enumerate(cert.cert_chain_pems):
        pem.write_to_path(str(root / "cert.pem"), append=index > 0)
    provider = OidcProvider(root=root, port=free_port(), ca=ca, keys=[new_key("k1")])
    try:
        provider.start()
        yield provider
    finally:
        provider.stop()
        shutil.rmtree(root, ignore_errors=True)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def sign_in_at_provider(http: httpx.Client, authorize_url: str, login: str) -> str:
    """Follows an authorization URL through the provider's login and consent pages.

    `login` is the provider's account ID (the `sub` of OidcProvider.set_account). Returns
    the URL the provider finally redirects the browser to (the client's redirect URI
    with `code` and `state`). `http` must not follow redirects.
    """
    url = authorize_url
    for _ in range(10):
        response = http.get(url)
        if response.status_code not in (302, 303):
            raise AssertionError(f"{url} answered {response.status_code}: {response.text[:300]}")
        target = urljoin(url, response.headers["location"])
        if not target.startswith(str(http.base_url).rstrip("/")):
            return target
        if "/interaction/" in target:
            page = http.get(target)
            prompt = "login" if 'name="login"' in page.text else "consent"
            form = {"prompt": prompt}
            if prompt == "login":
                form.update(login=login, password="any")  # noqa: S106 - devInteractions
            posted = http.post(target, data=form)
            url = urljoin(target, posted.headers["location"])
        else:
            url = target
    raise AssertionError("the provider kept redirecting")


def code_flow_tokens(provider: OidcProvider, login: str, *, redirect_uri: str,
                     client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET,
                     nonce: str | None = None,
                     scope: str = "openid profile email") -> dict[str, Any]:
    """The whole authorization code flow with PKCE, as a front end does it: the token response."""
    login = provider.accounts.get(login, {}).get("sub", login)  # the provider's account ID
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    with provider.client() as http:
        discovery = http.get("/.well-known/openid-configuration").json()
        params = {"client_id": client_id, "response_type": "code", "scope": scope,
                  "redirect_uri": redirect_uri, "state": state,
                  "nonce": nonce or secrets.token_urlsafe(16),
                  "code_challenge": challenge, "code_challenge_method": "S256",
                  "prompt": "login consent"}
        authorize = str(httpx.URL(discovery["authorization_endpoint"], params=params))
        back = urlsplit(sign_in_at_provider(http, authorize, login))
        query = parse_qs(back.query)
        assert query.get("state") == [state], query
        token = http.post(discovery["token_endpoint"], auth=(client_id, client_secret), data={
            "grant_type": "authorization_code", "code": query["code"][0],
            "redirect_uri": redirect_uri, "code_verifier": verifier})
        assert token.status_code == 200, token.text
        tokens: dict[str, Any] = token.json()
        return tokens
