"""Entra ID's SCIM request sequence (scim-clients.md §2) against a real rosterd over HTTPS.

Both columns of §2.5 are replayed: the default (capitalised ops, "False" strings,
member removal by value array) and ?aadOptscim062020 (no-path replace with dotted
and URN keys, member removal by filter). getent and id are asked after each step.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.helpers.scim import ENTERPRISE, GROUP, POSIX, USER, ScimSession, scim_session

MS_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


@pytest.fixture(scope="module")
def entra() -> Iterator[ScimSession]:
    with scim_session({"scim": {"login_name_rule": "whole"}}) as session:
        yield session


def test_entra_provisions_updates_disables_and_deletes(entra: ScimSession) -> None:
    home = entra.daemon.home_root
    # Test Connection: a random GUID that matches nothing.
    probe = entra.http.get("/Users", params={"filter": f'userName eq "{uuid.uuid4()}"'})
    assert probe.status_code == 200 and probe.json()["Resources"] == []
    assert probe.headers["content-type"] == "application/scim+json"

    user_name = "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee"
    created = entra.http.post("/Users", json={
        "schemas": [USER, ENTERPRISE,
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef", "userName": user_name,
        "active": True, "addresses": None, "title": None, "department": None,
        "emails": [{"primary": True, "type": "work",
                    "value": "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName",
                 "givenName": "givenName"},
        "roles": []})
    assert created.status_code == 201, created.text
    user = created.json()
    login = user[POSIX]["loginName"]
    # The whole userName, lower-cased, cut to 32 characters.
    assert login == "test_user_00aa00aa-bb11-cc22-dd3"
    assert entra.view("getent", "passwd", login) == (
        0, f"{login}:x:20000:20000:givenName familyName:{home}/{login}:/bin/bash\n")

    by_external = entra.http.get("/Users", params={
        "filter": 'externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"'}).json()
    assert [r["id"] for r in by_external["Resources"]] == [user["id"]]

    # Default PATCH: one capitalised op per path, filtered e-mail path, enterprise URN path.
    updated = entra.patch(f"/Users/{user['id']}",
                          {"op": "Replace", "path": 'emails[type eq "work"].value',
                           "value": "updatedEmail@microsoft.com"},
                          {"op": "Replace", "path": "name.familyName", "value": "Updated"},
                          {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Retail"})
    assert updated.status_code == 200, updated.text
    doc = updated.json()
    assert doc["emails"][0]["value"] == "updatedEmail@microsoft.com"
    assert doc[ENTERPRISE] == {"department": "Retail"}
    by_mail = entra.http.get("/Users", params={
        "filter": 'emails[type eq "work"].value eq "UPDATEDemail@microsoft.com"'}).json()
    assert by_mail["totalResults"] == 1

    # With the flag: one no-path replace with dotted and URN keys.
    flagged = entra.patch(f"/Users/{user['id']}", {"op": "replace", "value": {
        "displayName": "Bjfe Unua", "name.givenName": "Kkom", "name.familyName": "Unua",
        f"{ENTERPRISE}:employeeNumber": "Aklq"}})
    assert flagged.status_code == 200
    assert flagged.json()[ENTERPRISE] == {"department": "Retail", "employeeNumber": "Aklq"}
    assert entra.view("getent", "passwd", login)[1].split(":")[4] == "Bjfe Unua"

    # Disable without the flag: the string "False".
    disabled = entra.patch(f"/Users/{user['id']}",
                           {"op": "Replace", "path": "active", "value": "False"})
    assert disabled.json()["active"] is False
    assert entra.view("getent", "shadow", login) == (0, f"{login}:!*:::::::\n")
    assert entra.http.get(f"/Users/{user['id']}").json()["active"] is False
    enabled = entra.patch(f"/Users/{user['id']}",
                          {"op": "replace", "path": "active", "value": True})
    assert enabled.json()["active"] is True
    assert entra.view("getent", "shadow", login) == (0, f"{login}:*:::::::\n")

    # A userName rename keeps the login name: files on disk keep their owner.
    renamed = entra.patch(f"/Users/{user['id']}", {"op": "Replace", "path": "userName",
                                                   "value": "5b50642d@testuser.com"})
    assert renamed.json()["userName"] == "5b50642d@testuser.com"
    assert renamed.json()[POSIX]["loginName"] == login

    # Groups: create with Microsoft's own schema URI, members added afterwards.
    second = entra.http.post("/Users", json={"schemas": [USER], "userName": "dale@contoso.com",
                                             "active": "True"}).json()
    assert second["active"] is True
    dale = second[POSIX]["loginName"]
    assert dale == "dale_contoso.com"  # the whole userName, '@' replaced
    made = entra.http.post("/Groups", json={
        "schemas": [GROUP, MS_GROUP], "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": "Sales Team EU", "meta": {"resourceType": "Group"}})
    assert made.status_code == 201, made.text
    group = made.json()
    assert group["members"] == []
    code, line = entra.view("getent", "group", "sales_team_eu")
    assert code == 0 and line.endswith(":\n")
    gid = line.split(":")[2]

    slim = entra.http.get(f"/Groups/{group['id']}", params={"excludedAttributes": "members"})
    assert slim.status_code == 200 and "members" not in slim.json()
    found = entra.http.get("/Groups", params={"excludedAttributes": "members",
                                              "filter": 'displayName eq "Sales Team EU"'}).json()
    assert [g["id"] for g in found["Resources"]] == [group["id"]]

    added = entra.patch(f"/Groups/{group['id']}", {"op": "Add", "path": "members", "value": [
        {"$ref": None, "value": user["id"]}, {"$ref": None, "value": second["id"]}]})
    assert added.status_code == 204
    assert entra.view("getent", "group", "sales_team_eu") == (
        0, f"sales_team_eu:x:{gid}:{dale},{login}\n")
    code, ids = entra.view("id", dale)
    assert code == 0 and f"{gid}(sales_team_eu)" in ids

    # Legacy removal (no flag): only the listed member goes.
    legacy = entra.patch(f"/Groups/{group['id']}", {"op": "Remove", "path": "members",
                                                    "value": [{"value": second["id"]}]})
    assert legacy.status_code == 204
    assert entra.view("getent", "group", "sales_team_eu") == (
        0, f"sales_team_eu:x:{gid}:{login}\n")
    assert "sales_team_eu" not in entra.view("id", dale)[1]
    # Removal with the flag: a filter path.
    flagged_remove = entra.patch(f"/Groups/{group['id']}", {
        "op": "remove", "path": f'members[value eq "{user["id"]}"]'})
    assert flagged_remove.status_code == 204
    assert entra.view("getent", "group", "sales_team_eu") == (0, f"sales_team_eu:x:{gid}:\n")

    rename = entra.patch(f"/Groups/{group['id']}", {"op": "Replace", "path": "displayName",
                                                    "value": "Sales Team EU updated"})
    assert rename.status_code == 204
    assert entra.http.get(f"/Groups/{group['id']}").json()["displayName"] == \
        "Sales Team EU updated"
    assert entra.view("getent", "group", "sales_team_eu")[0] == 0  # the POSIX name stays

    # Hard delete, 30 days after the soft delete.
    assert entra.http.delete(f"/Groups/{group['id']}").status_code == 204
    assert entra.view("getent", "group", gid)[0] == 2
    assert entra.http.delete(f"/Users/{user['id']}").status_code == 204
    assert entra.http.get(f"/Users/{user['id']}").status_code == 404
    assert entra.view("getent", "passwd", login)[0] == 2
    assert entra.view("getent", "passwd", "20000")[0] == 2
    # The UID is retired: the next person gets a new one, never 20000.
    later = entra.http.post("/Users", json={"schemas": [USER], "userName": user_name}).json()
    assert later[POSIX]["uidNumber"] not in (20000, second[POSIX]["uidNumber"])
    code, line = entra.view("getent", "passwd", later[POSIX]["loginName"])
    assert code == 0 and line.split(":")[2] == str(later[POSIX]["uidNumber"])
