"""Okta's SCIM 2.0 request sequence (scim-clients.md §1.2) against a real rosterd over HTTPS.

After every step the test asks the real getent and id, through the NSS module in
a private mount namespace, what the host now sees.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.helpers.scim import GROUP, POSIX, USER, ScimSession, scim_session

OKTA = "Okta SCIM Client 1.0.0"


@pytest.fixture(scope="module")
def okta() -> Iterator[ScimSession]:
    with scim_session(user_agent=OKTA) as session:
        yield session


def test_okta_provisions_updates_deactivates_and_pushes_groups(okta: ScimSession) -> None:
    home = okta.daemon.home_root
    # Existence check before create: 200 and an empty list, never 404.
    query = {"filter": 'userName eq "test.user@okta.local"', "startIndex": 1, "count": 100}
    miss = okta.http.get("/Users", params=query)
    assert miss.status_code == 200 and miss.json()["totalResults"] == 0
    assert okta.view("getent", "passwd", "test.user")[0] == 2

    created = okta.http.post("/Users", headers={"Content-Type": "application/json"}, json={
        "schemas": [USER], "userName": "test.user@okta.local",
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": True, "value": "test.user@okta.local", "type": "work"}],
        "displayName": "Test User", "locale": "en-US", "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [], "password": "1mz050nq", "active": True})
    assert created.status_code == 201, created.text
    user = created.json()
    assert created.headers["location"] == f"{okta.daemon.scim_url}/Users/{user['id']}"
    assert user[POSIX]["loginName"] == "test.user"
    assert okta.view("getent", "passwd", "test.user") == (
        0, f"test.user:x:20000:20000:Test User:{home}/test.user:/bin/bash\n")
    assert okta.view("getent", "shadow", "test.user") == (0, "test.user:*:::::::\n")

    # Okta matches in any case (its SPEC test uses an upper-case copy).
    upper = okta.http.get("/Users",
                          params={**query, "filter": 'userName eq "TEST.USER@OKTA.LOCAL"'})
    assert [r["id"] for r in upper.json()["Resources"]] == [user["id"]]
    again = okta.http.post("/Users", json={"schemas": [USER], "userName": "Test.User@okta.local"})
    assert again.status_code == 409 and again.json()["scimType"] == "uniqueness"

    # Profile update: GET, then a full PUT.
    assert okta.http.get(f"/Users/{user['id']}").status_code == 200
    put = okta.http.put(f"/Users/{user['id']}", json={
        "schemas": [USER], "id": user["id"], "userName": "test.user@okta.local",
        "name": {"givenName": "Another", "middleName": "Excited", "familyName": "User"},
        "emails": [{"primary": True, "value": "test.user@okta.local", "type": "work",
                    "display": "test.user@okta.local"}],
        "active": True, "groups": [], "meta": {"resourceType": "User"}})
    assert put.status_code == 200 and put.json()["name"]["middleName"] == "Excited"
    assert okta.view("getent", "passwd", "test.user")[1].split(":")[4] == "Another User"

    # Deactivate and reactivate: PATCH without a path.
    off = okta.patch(f"/Users/{user['id']}", {"op": "replace", "value": {"active": False}})
    assert off.status_code == 200 and off.json()["active"] is False
    assert okta.view("getent", "shadow", "test.user") == (0, "test.user:!*:::::::\n")
    assert okta.view("getent", "passwd", "test.user")[0] == 0  # still resolves
    disabled = okta.http.get("/Users", params=query).json()
    assert disabled["totalResults"] == 1 and disabled["Resources"][0]["active"] is False
    on = okta.patch(f"/Users/{user['id']}", {"op": "replace", "value": {"active": True}})
    assert on.json()["active"] is True
    assert okta.view("getent", "shadow", "test.user") == (0, "test.user:*:::::::\n")

    # A second user, then group push.
    other = okta.http.post("/Users", json={"schemas": [USER], "userName": "ann@okta.local",
                                           "name": {"givenName": "Ann", "familyName": "Oak"}})
    ann = other.json()
    pushed = okta.http.post("/Groups", json={"schemas": [GROUP], "displayName": "Test SCIMv2",
                                             "members": []})
    assert pushed.status_code == 201, pushed.text
    group = pushed.json()
    code, line = okta.view("getent", "group", "test_scimv2")
    assert code == 0 and re.fullmatch(r"test_scimv2:x:\d+:\n", line)
    gid = line.split(":")[2]

    # Okta renames before every membership update, with the id inside value.
    rename = okta.patch(f"/Groups/{group['id']}", {"op": "replace", "value": {
        "id": group["id"], "displayName": "Test SCIMv2"}})
    assert rename.status_code == 204
    add = okta.patch(f"/Groups/{group['id']}", {"op": "add", "path": "members", "value": [
        {"value": user["id"], "display": "test.user@okta.local"},
        {"value": ann["id"], "display": "ann@okta.local"}]})
    assert add.status_code == 204
    assert okta.view("getent", "group", "test_scimv2") == (
        0, f"test_scimv2:x:{gid}:ann,test.user\n")
    code, ids = okta.view("id", "test.user")
    assert code == 0 and f"{gid}(test_scimv2)" in ids

    swap = okta.patch(f"/Groups/{group['id']}",
                      {"op": "remove", "path": f'members[value eq "{ann["id"]}"]'})
    assert swap.status_code == 204
    assert okta.view("getent", "group", "test_scimv2") == (0, f"test_scimv2:x:{gid}:test.user\n")
    assert f"({'test_scimv2'})" not in okta.view("id", "ann")[1]

    replace_all = okta.patch(f"/Groups/{group['id']}", {"op": "replace", "path": "members",
                                                        "value": [{"value": ann["id"]}]})
    assert replace_all.status_code == 204
    assert okta.view("getent", "group", "test_scimv2") == (0, f"test_scimv2:x:{gid}:ann\n")

    read = okta.http.get(f"/Groups/{group['id']}").json()
    assert [m["value"] for m in read["members"]] == [ann["id"]]
    listed = okta.http.get("/Groups", params={"startIndex": 1, "count": 100}).json()
    assert listed["totalResults"] == 1 and isinstance(listed["itemsPerPage"], int)

    # Unlinking the pushed group with "delete the group in the target app".
    assert okta.http.delete(f"/Groups/{group['id']}").status_code == 204
    assert okta.view("getent", "group", "test_scimv2")[0] == 2
    assert okta.view("getent", "passwd", "ann")[0] == 0
