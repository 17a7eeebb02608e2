"""rosterctl status against a real rosterd: the last SCIM request (last login: test_openid.py)."""

from __future__ import annotations

import json

import httpx

from tests.helpers.daemon import Rosterd
from tests.helpers.tls import trusting

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def test_nothing_since_start_is_said_so(rosterd: Rosterd) -> None:
    status = json.loads(rosterd.ctl("status", json=True).stdout)
    assert status["last_scim_request"] is None and status["last_login"] is None
    text = rosterd.ctl("status").stdout
    assert "last scim request:  never since start" in text
    assert "last login:" in text and text.count("never since start") == 2


def test_status_shows_the_last_scim_request(https_rosterd: Rosterd) -> None:
    token = https_rosterd.new_token("okta provisioning")
    with httpx.Client(base_url=https_rosterd.scim_url, verify=trusting(https_rosterd.ca_file),
                      timeout=30) as scim:
        made = scim.post("/Users", json={"schemas": [USER], "userName": "ann@example.com"},
                         headers={"Authorization": f"Bearer {token}"},
                         params={"attributes": "userName"})
        assert made.status_code == 201, made.text
        last = json.loads(https_rosterd.ctl("status", json=True).stdout)["last_scim_request"]
        assert last["method"] == "POST" and last["path"] == "/scim/v2/Users"  # no query
        assert (last["client"], last["token_label"]) == ("127.0.0.1", "okta provisioning")
        assert last["status"] == 201 and last["time"].endswith("Z")

        refused = scim.get("/Users", headers={"Authorization": "Bearer not-a-token"})
        assert refused.status_code == 401
    last = json.loads(https_rosterd.ctl("status", json=True).stdout)["last_scim_request"]
    assert (last["method"], last["token_label"], last["status"]) == ("GET", "", 401)
    text = https_rosterd.ctl("status").stdout
    line = next(ln for ln in text.splitlines() if ln.startswith("last scim request:"))
    assert line.endswith("GET /scim/v2/Users from 127.0.0.1 (no valid token) -> 401"), line
    assert "last login:" in text and "never since start" in text
