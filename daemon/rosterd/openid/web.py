"""Serves /openid/login, /openid/callback and /openid/auth: the code flow and nginx's auth_request.

The flow is OIDC Core §3.1 with PKCE (RFC 7636), `state` and `nonce`. Both the
flow's secrets and the session live in cookies signed with a key kept in the
state directory, so rosterd keeps no per-browser state and a restart keeps
people signed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from rosterd.accounts import Accounts
from rosterd.config import Config
from rosterd.errors import RosterError
from rosterd.openid.errors import LoginRefused
from rosterd.openid.registrar import Registrar

log = logging.getLogger(__name__)

SESSION_COOKIE = "rosterd_session"
FLOW_COOKIE = "rosterd_login"
SESSION_TTL_S = 8 * 3600
FLOW_TTL_S = 600
USER_HEADER = "X-Roster-User"
KEY_FILE = "openid-session.key"


def load_signing_key(state_dir: Path) -> bytes:
    """The cookie-signing key: made once (0600) in the state directory, then reused."""
    path = state_dir / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


class CookieSigner:
    """HMAC-SHA256 over base64url JSON with an expiry; anything else reads as absent."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, body: bytes) -> str:
        digest = hmac.new(self._key, body, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def dump(self, data: dict[str, Any], ttl_s: int) -> str:
        payload = dict(data, exp=int(time.time()) + ttl_s)
        body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode())
        text = body.rstrip(b"=")
        return f"{text.decode()}.{self._mac(text)}"

    def load(self, value: str | None) -> dict[str, Any] | None:
        if not value or "." not in value:
            return None
        body, mac = value.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac(body.encode())):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        if not isinstance(data, dict) or int(data.get("exp", 0)) < time.time():
            return None
        return data


def _page(title: str, message: str, status: int) -> HTMLResponse:
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p id=reason>{html.escape(message)}</p>"
        "<p>If you think this is wrong, send this page's text to the administrator of this "
        "host.</p></body></html>")
    return HTMLResponse(body, status_code=status)


def _safe_return_path(value: str | None) -> str:
    # Only a path on this host: never "//elsewhere" or a URL (an open redirect).
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


class OpenidWeb:
    """The three endpoints, sharing the registrar with the admin API."""

    def __init__(self, cfg: Config, accounts: Accounts, registrar: Registrar, *,
                 public_url: str) -> None:
        self._cfg = cfg
        self._accounts = accounts
        self._registrar = registrar
        self._redirect_uri = f"{public_url}/openid/callback"
        self._signer = CookieSigner(load_signing_key(cfg.paths.state_dir))
        self._secure = public_url.startswith("https://")

    def routes(self) -> list[Route]:
        return [Route("/openid/login", self.login), Route("/openid/callback", self.callback),
                Route("/openid/auth", self.auth), Route("/openid/logout", self.logout)]

    async def login(self, request: Request) -> Response:
        try:
            discovery = await run_in_threadpool(self._registrar.provider.discovery)
        except RosterError as err:
            log.warning("cannot start a sign-in: %s", err)
            return _page("Sign-in is unavailable", str(err), 503)
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        flow = {"state": secrets.token_urlsafe(24), "nonce": secrets.token_urlsafe(24),
                "verifier": verifier, "rd": _safe_return_path(request.query_params.get("rd"))}
        scopes = ["openid", "profile", "email", *self._cfg.openid.custom_scopes]
        params = {"response_type": "code",
                  "client_id": self._registrar.provider.credentials.client_id,
                  "redirect_uri": self._redirect_uri, "scope": " ".join(dict.fromkeys(scopes)),
                  "state": flow["state"], "nonce": flow["nonce"],
                  "code_challenge": challenge, "code_challenge_method": "S256"}
        response = RedirectResponse(f"{discovery.authorization_endpoint}?{urlencode(params)}",
                                    status_code=302)
        response.set_cookie(FLOW_COOKIE, self._signer.dump(flow, FLOW_TTL_S), max_age=FLOW_TTL_S,
                            path="/openid/", secure=self._secure, httponly=True, samesite="lax")
        return response

    async def callback(self, request: Request) -> Response:
        flow = self._signer.load(request.cookies.get(FLOW_COOKIE))
        query = request.query_params
        if query.get("error"):
            return _page("Sign-in failed", f"the identity provider answered "
                         f"{query.get('error')}: {query.get('error_description', '')}", 403)
        if flow is None:
            return _page("Sign-in expired", "this sign-in was started too long ago or in "
                         "another browser; start again", 400)
        if not hmac.compare_digest(str(query.get("state", "")), str(flow["state"])):
            return _page("Sign-in failed", "the answer does not belong to the sign-in this "
                         "browser started (state differs); start again", 400)
        code = query.get("code")
        if not code:
            return _page("Sign-in failed", "the identity provider sent no code", 400)
        try:
            tokens = await run_in_threadpool(
                self._registrar.provider.exchange_code, code,
                redirect_uri=self._redirect_uri, code_verifier=flow["verifier"])
            report = await run_in_threadpool(
                self._registrar.register, str(tokens.get("id_token", "")),
                access_token=str(tokens.get("access_token", "")), nonce=flow["nonce"],
                entry_point="web")
        except LoginRefused as refusal:
            return _page("You cannot sign in to this host", str(refusal), 403)
        except RosterError as err:
            log.warning("sign-in failed: %s", err)
            return _page("Sign-in is unavailable", str(err), 503)
        assert report.outcome is not None
        user = report.outcome.user
        response = RedirectResponse(flow["rd"], status_code=302)
        response.set_cookie(SESSION_COOKIE, self._signer.dump({"sub": user.id, "name": user.name},
                                                              SESSION_TTL_S),
                            max_age=SESSION_TTL_S, path="/", secure=self._secure, httponly=True,
                            samesite="lax")
        response.delete_cookie(FLOW_COOKIE, path="/openid/")
        return response

    async def auth(self, request: Request) -> Response:
        """nginx auth_request: 200 with the POSIX name for a live session of an active account."""
        session = self._signer.load(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return Response(status_code=401)
        name = await run_in_threadpool(self._active_name, str(session.get("sub", "")))
        if name is None:
            return Response(status_code=401)
        return Response(status_code=200, headers={USER_HEADER: name})

    def _active_name(self, user_id: str) -> str | None:
        with self._accounts.reading() as tx:
            user = tx.user_by_id(user_id)
        return user.name if user is not None and user.active else None

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse("/", status_code=302)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
