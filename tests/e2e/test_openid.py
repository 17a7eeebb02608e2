"""OpenID Connect against a real provider (oidc-provider over HTTPS): register on first login.

Every token here comes from the provider's real code flow, except where a test
needs a token no honest provider issues (expired, forged, unsigned); those are
signed with the provider's own key, or with a stranger's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import httpx
import pytest
from joserfc import jwt
from rosterd._generated import admin_pb2, admin_pb2_grpc

from tests.helpers.daemon import (
    UNPRIVILEGED_GID,
    UNPRIVILEGED_UID,
    Rosterd,
    make_rosterd,
    remove_rosterd,
)
from tests.helpers.hostview import run_in_view
from tests.helpers.oidc import (
    CLIENT_ID,
    OTHER_CLIENT_ID,
    OTHER_CLIENT_SECRET,
    OidcProvider,
    code_flow_tokens,
    new_key,
    oidc_provider,
    sign_in_at_provider,
)
from tests.helpers.tls import trusting


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with oidc_provider() as running:
        yield running


def start_openid_rosterd(provider: OidcProvider, *, http: dict[str, Any] | None = None,
                         **openid: Any) -> Rosterd:
    """An HTTPS rosterd whose [openid] names `provider`, with its client secret file in place."""
    daemon = make_rosterd({"openid": {"issuer": provider.issuer, "ca_file": str(provider.ca_file),
                                      **openid}, "http": http or {}}, https=True)
    secret = daemon.root / "openid-client-secret"
    provider.write_client_secret_file(secret, owner=(UNPRIVILEGED_UID, UNPRIVILEGED_GID))
    config = daemon.config_path.read_text().replace(
        "[openid]\n", f'[openid]\nclient_secret_file = "{secret}"\n', 1)
    daemon.config_path.write_text(config)
    public = (http or {}).get("public_url", daemon.base_url)
    provider.add_redirect_uri(f"{public}/openid/callback")
    daemon.start()
    return daemon


@pytest.fixture(scope="module")
def daemon(provider: OidcProvider) -> Iterator[Rosterd]:
    running = start_openid_rosterd(provider, groups_auto_provision=True)
    try:
        yield running
    finally:
        remove_rosterd(running)


def view(daemon: Rosterd, *argv: str) -> tuple[int, str]:
    result = run_in_view(argv, nss_socket=daemon.nss_socket)
    return result.returncode, result.stdout


def id_token_for(provider: OidcProvider, daemon: Rosterd, login: str, **kwargs: Any) -> str:
    tokens = code_flow_tokens(provider, login, redirect_uri=f"{daemon.base_url}/openid/callback",
                              **kwargs)
    return str(tokens["id_token"])


def register(daemon: Rosterd, token: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    path = daemon.root / f"token-{secrets.token_hex(4)}"
    path.write_text(token)
    result = daemon.ctl("register", "--id-token", str(path), *extra, json=True, check=False)
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, report, result.stderr


def grpc_register(daemon: Rosterd, id_token: str, access_token: str = "") -> Any:
    with grpc.insecure_channel(f"unix:{daemon.admin_socket}") as channel:
        stub = admin_pb2_grpc.RosterAdminStub(channel)
        return stub.RegisterOnFirstLogin(admin_pb2.RegisterOnFirstLoginRequest(
            id_token=id_token, access_token=access_token), timeout=30)


def claims_of(provider: OidcProvider, **claims: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": provider.issuer, "aud": CLIENT_ID, "sub": "forged", "iat": now,
            "exp": now + 300, "preferred_username": "forged", **claims}


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forge(provider: OidcProvider, claims: dict[str, Any], *, key: Any = None) -> str:
    """A token signed with the provider's own key (or `key`), for cases no provider issues."""
    signing = key or provider.keys[0]
    return jwt.encode({"alg": "RS256", "kid": signing.kid}, claims_of(provider, **claims),
                      signing)


def test_first_login_through_grpc_makes_the_account_that_getent_and_id_show(
        provider: OidcProvider, daemon: Rosterd) -> None:
    provider.set_account("ada", {"preferred_username": "ada", "email": "ada@example.com",
                                 "given_name": "Ada", "family_name": "Lovelace",
                                 "groups": ["engineers", "analytics"]}, sub="sub-ada-1")
    tokens = code_flow_tokens(provider, "ada", redirect_uri=f"{daemon.base_url}/openid/callback")
    reply = grpc_register(daemon, tokens["id_token"], tokens["access_token"])
    assert reply.created and reply.user.name == "ada" and reply.user.external_id == "sub-ada-1"
    home = daemon.home_root
    code, line = view(daemon, "getent", "passwd", "ada")
    uid, gid = reply.user.uid, reply.user.gid
    assert code == 0 and line == f"ada:x:{uid}:{gid}:Ada Lovelace:{home}/ada:/bin/bash\n"
    code, ids = view(daemon, "id", "ada")
    assert code == 0 and "(engineers)" in ids and "(analytics)" in ids, ids

    # The same person again: the same account and UID; a changed group list
    # changes the memberships (added and removed).
    provider.set_account("ada", {"preferred_username": "ada-renamed", "email": "ada@example.com",
                                 "given_name": "Ada", "family_name": "King",
                                 "groups": ["engineers", "board"]}, sub="sub-ada-1")
    again = grpc_register(daemon, id_token_for(provider, daemon, "ada"))
    assert not again.created and again.user.uid == reply.user.uid and again.user.name == "ada"
    assert list(again.groups_added) == ["board"] and list(again.groups_removed) == ["analytics"]
    code, ids = view(daemon, "id", "ada")
    assert "(board)" in ids and "(analytics)" not in ids and "(engineers)" in ids
    assert view(daemon, "getent", "passwd", "ada")[1].split(":")[4] == "Ada King"

    # No groups claim: memberships are left alone.
    provider.set_account("ada", {"preferred_username": "ada", "email": "ada@example.com"},
                         sub="sub-ada-1")
    code, report, _ = register(daemon, id_token_for(provider, daemon, "ada"))
    assert code == 0 and report["groups_removed"] == [] and "board" in report["groups"]
    assert any("memberships are left" in note for note in report["notes"])


def test_userinfo_claims_are_merged_when_an_access_token_is_given(
        provider: OidcProvider, daemon: Rosterd) -> None:
    provider.set_account("uma", {"email": "uma@example.com"}, sub="sub-uma",
                         userinfo_only={"preferred_username": "uma.info",
                                        "groups": ["userinfo-group"]})
    tokens = code_flow_tokens(provider, "uma", redirect_uri=f"{daemon.base_url}/openid/callback")
    reply = grpc_register(daemon, tokens["id_token"], tokens["access_token"])
    assert reply.user.name == "uma.info" and list(reply.user.groups) == ["userinfo-group"]


def test_scim_pushed_user_with_the_same_external_id_is_the_same_account(
        provider: OidcProvider, daemon: Rosterd) -> None:
    token = daemon.new_token("scim")
    with httpx.Client(base_url=daemon.scim_url, verify=trusting(daemon.ca_file),
                      headers={"Authorization": f"Bearer {token}"}) as scim:
        pushed = scim.post("/Users", json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "grace@example.com", "externalId": "sub-grace"})
        assert pushed.status_code == 201, pushed.text
    provider.set_account("grace", {"preferred_username": "gracie", "email": "grace@example.com"},
                         sub="sub-grace")
    code, report, err = register(daemon, id_token_for(provider, daemon, "grace"))
    assert code == 0, err
    assert report["account"] == "grace" and not report["created"]
    assert view(daemon, "getent", "passwd", "gracie")[0] == 2


def test_register_explains_which_claim_gave_which_field(
        provider: OidcProvider, daemon: Rosterd) -> None:
    provider.set_account("bob", {"email": "bob@example.com", "given_name": "Bob"}, sub="sub-bob")
    path = daemon.root / "bob-token"
    path.write_text(id_token_for(provider, daemon, "bob"))
    dry = daemon.ctl("register", "--id-token", str(path), "--dry-run")
    assert "would create account bob" in dry.stdout, dry.stdout
    assert "login name (from e-mail's local part) <- email: bob@example.com" in dry.stdout
    assert view(daemon, "getent", "passwd", "bob")[0] == 2
    done = daemon.ctl("register", "--id-token", str(path))
    assert "created account bob" in done.stdout
    assert view(daemon, "getent", "passwd", "bob")[0] == 0


def test_status_shows_the_last_login_and_where_it_came_in(
        provider: OidcProvider, daemon: Rosterd) -> None:
    provider.set_account("lena", {"preferred_username": "lena"}, sub="sub-lena")
    code, _, err = register(daemon, id_token_for(provider, daemon, "lena"))
    assert code == 0, err
    last = json.loads(daemon.ctl("status", json=True).stdout)["last_login"]
    assert (last["user"], last["entry_point"]) == ("lena", "rosterctl")
    assert last["time"].endswith("Z")
    grpc_register(daemon, id_token_for(provider, daemon, "lena"))
    # A dry run and a refusal are not logins.
    provider.set_account("max", {"preferred_username": "max"}, sub="sub-max")
    code, _, _ = register(daemon, id_token_for(provider, daemon, "max"), "--dry-run")
    assert code == 0
    expired = {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}
    assert register(daemon, forge(provider, expired))[0] == 1
    text = daemon.ctl("status").stdout
    line = next(ln for ln in text.splitlines() if ln.startswith("last login:"))
    assert line.endswith(" lena via grpc"), line


def test_email_fallback_is_made_unique(provider: OidcProvider, daemon: Rosterd) -> None:
    provider.set_account("bob2", {"email": "bob@other.example"}, sub="sub-bob-other")
    code, report, err = register(daemon, id_token_for(provider, daemon, "bob2"))
    assert code == 0, err
    assert report["account"] == "bob-2"


def test_hostile_username_comes_out_clean(provider: OidcProvider, daemon: Rosterd) -> None:
    provider.set_account("evil", {"preferred_username": "root:x:0:0::/root:/bin/sh\nmallory",
                                  "given_name": "Eve\nroot::0:0", "family_name": "X:Y"},
                         sub="sub-evil")
    code, report, err = register(daemon, id_token_for(provider, daemon, "evil"))
    assert code == 0, err
    name = report["account"]
    assert ":" not in name and "\n" not in name and name != "root"
    code, line = view(daemon, "getent", "passwd", name)
    assert code == 0 and line.count(":") == 6 and line.count("\n") == 1, line


def test_underivable_username_is_refused_with_the_claim_named(
        provider: OidcProvider, daemon: Rosterd) -> None:
    provider.set_account("glyphs", {"preferred_username": "☃☃☃"}, sub="sub-glyphs")
    code, report, err = register(daemon, id_token_for(provider, daemon, "glyphs"))
    assert code == 1 and "no valid login name" in err and "preferred_username" in err
    assert report["refused_by"] == "openid.username_claim"


@pytest.mark.parametrize(("case", "message"), [
    ("expired", "expired"),
    ("wrong issuer", "not by"),
    ("bad signature", "signature does not match"),
    ("alg none", "not signed (alg 'none')"),
    ("HMAC with the public key", "shared-secret algorithm"),
    ("stranger's key", "does not publish"),
], ids=lambda value: str(value))
def test_untrustworthy_tokens_are_refused(provider: OidcProvider, daemon: Rosterd,
                                          case: str, message: str) -> None:
    if case == "expired":
        token = forge(provider, {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200})
    elif case == "wrong issuer":
        token = forge(provider, {"iss": "https://evil.example"})
    elif case == "bad signature":
        head, body, sig = forge(provider, {}).split(".")
        token = f"{head}.{body}.{sig[:-6]}AAAAAA"
    elif case == "alg none":
        token = f"{b64({'alg': 'none'})}.{b64(claims_of(provider))}."
    elif case == "HMAC with the public key":
        # The classic confusion attack: HS256 keyed with the provider's public key.
        public = provider.keys[0].as_pem(private=False)
        signing_input = f"{b64({'alg': 'HS256', 'kid': provider.keys[0].kid})}." \
                        f"{b64(claims_of(provider))}"
        mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    else:
        token = forge(provider, {}, key=new_key("stranger"))
    code, _, err = register(daemon, token)
    assert code == 1 and message in err, err
    assert view(daemon, "getent", "passwd", "forged")[0] == 2


def test_a_token_for_another_application_is_refused(
        provider: OidcProvider, daemon: Rosterd) -> None:
    provider.set_account("carol", {"preferred_username": "carol"}, sub="sub-carol")
    tokens = code_flow_tokens(provider, "carol", redirect_uri="https://127.0.0.1/other-callback",
                              client_id=OTHER_CLIENT_ID, client_secret=OTHER_CLIENT_SECRET)
    code, _, err = register(daemon, tokens["id_token"])
    assert code == 1 and f"not for rosterd's client '{CLIENT_ID}'" in err, err


def test_an_unknown_key_after_rotation_is_fetched_once_and_accepted(
        provider: OidcProvider, daemon: Rosterd) -> None:
    provider.set_account("dave", {"preferred_username": "dave"}, sub="sub-dave")
    provider.rotate_key(f"k-{secrets.token_hex(3)}")
    time.sleep(1.1)  # rosterd refetches keys at most once a second
    code, report, err = register(daemon, id_token_for(provider, daemon, "dave"))
    assert code == 0 and report["account"] == "dave", err
    assert "fetching the provider's keys again" in daemon.log()


def test_the_web_flow_signs_in_registers_and_answers_auth_request(
        provider: OidcProvider, daemon: Rosterd) -> None:
    provider.set_account("erin", {"preferred_username": "erin", "groups": ["web-users"]},
                         sub="sub-erin")
    with httpx.Client(base_url=daemon.base_url, verify=trusting(daemon.ca_file),
                      follow_redirects=False) as browser:
        assert browser.get("/openid/auth").status_code == 401
        start = browser.get("/openid/login", params={"rd": "/app/"})
        assert start.status_code == 302
        query = dict(part.split("=", 1) for part in urlsplit(start.headers["location"])
                     .query.split("&"))
        assert query["code_challenge_method"] == "S256" and query["state"] and query["nonce"]
        cookie = start.headers["set-cookie"].lower()
        assert "httponly" in cookie and "secure" in cookie and "samesite=lax" in cookie
        with provider.client() as at_provider:
            at_provider.follow_redirects = False
            back = sign_in_at_provider(at_provider, start.headers["location"],
                                       "sub-erin")
        assert back.startswith(f"{daemon.base_url}/openid/callback")
        done = browser.get(back)
        assert done.status_code == 302 and done.headers["location"] == "/app/", done.text
        session = done.headers["set-cookie"].lower()
        assert "rosterd_session=" in session and "httponly" in session and "secure" in session
        auth = browser.get("/openid/auth")
        assert auth.status_code == 200 and auth.headers["x-roster-user"] == "erin"
        # A tampered cookie is no session.
        value = browser.cookies["rosterd_session"]
        browser.cookies.clear()
        browser.cookies.set("rosterd_session", value[:-2] + "xx")
        assert browser.get("/openid/auth").status_code == 401
    code, ids = view(daemon, "id", "erin")
    assert code == 0 and "(web-users)" in ids
    last = json.loads(daemon.ctl("status", json=True).stdout)["last_login"]
    assert (last["user"], last["entry_point"]) == ("erin", "web")


def test_refusals_by_policy(provider: OidcProvider, tmp_path: Path) -> None:
    strict = start_openid_rosterd(provider, require_username_claim=True,
                                  allowed_domains=["example.com"])
    try:
        provider.set_account("nouser", {"email": "nouser@example.com", "given_name": "N"},
                             sub="sub-nouser")
        code, _, err = register(strict, id_token_for(provider, strict, "nouser"))
        assert code == 1 and "no 'preferred_username' claim" in err, err
        assert "require_username_claim" in err and "email" in err and "given_name" in err
        assert "nouser@example.com" not in err  # names of claims, never their values
        provider.set_account("outsider", {"preferred_username": "outsider",
                                          "email": "out@elsewhere.org"}, sub="sub-out")
        code, _, err = register(strict, id_token_for(provider, strict, "outsider"))
        assert code == 1 and "domain 'elsewhere.org' is not allowed" in err, err
    finally:
        remove_rosterd(strict)
    closed = start_openid_rosterd(provider)
    try:
        config = closed.config_path.read_text()
        closed.stop()
        closed.config_path.write_text(config.replace(
            "[provisioning]\n", "[provisioning]\nregister_on_first_login = false\n", 1))
        closed.start()
        provider.set_account("newbie", {"preferred_username": "newbie"}, sub="sub-newbie")
        code, _, err = register(closed, id_token_for(provider, closed, "newbie"))
        assert code == 1 and "register_on_first_login = false" in err, err
    finally:
        remove_rosterd(closed)


def test_a_client_secret_file_others_can_read_is_refused_with_the_fix(
        provider: OidcProvider) -> None:
    daemon = make_rosterd({"openid": {"issuer": provider.issuer}}, https=True)
    try:
        secret = daemon.root / "secret"
        provider.write_client_secret_file(secret, mode=0o644,
                                          owner=(UNPRIVILEGED_UID, UNPRIVILEGED_GID))
        daemon.config_path.write_text(daemon.config_path.read_text().replace(
            "[openid]\n", f'[openid]\nclient_secret_file = "{secret}"\n', 1))
        with pytest.raises(RuntimeError):
            daemon.start()
        assert f"run chmod 600 {secret}" in daemon.log()
    finally:
        remove_rosterd(daemon)
