"""The SCIM endpoints in process: Okta's and Entra ID's request shapes, errors, paging, ETags."""

from __future__ import annotations

from typing import Any

from tests.unit.scim.conftest import Scim

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
POSIX = "urn:rosterd:params:scim:schemas:extension:posix:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BASE = "/scim/v2"

OKTA_USER: dict[str, Any] = {
    "schemas": [USER], "userName": "test.user@okta.local",
    "name": {"givenName": "Test", "familyName": "User"},
    "emails": [{"primary": True, "value": "test.user@okta.local", "type": "work"}],
    "displayName": "Test User", "locale": "en-US", "externalId": "00ujl29u0le5T6Aj10h7",
    "groups": [], "password": "1mz050nq", "active": True,
}


def _create(scim: Scim, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = scim.client.post(f"{BASE}/Users", json=body or OKTA_USER)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def _patch(scim: Scim, path: str, *ops: dict[str, Any]) -> Any:
    return scim.client.patch(f"{BASE}/{path}", json={"schemas": [PATCH], "Operations": list(ops)})


def test_an_okta_create_returns_the_user_with_a_derived_login_name(scim: Scim) -> None:
    response = scim.client.post(f"{BASE}/Users", json=OKTA_USER,
                                headers={"Content-Type": "application/json"})
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/scim+json"
    user = response.json()
    assert response.headers["location"] == f"https://testserver/scim/v2/Users/{user['id']}"
    assert user["meta"]["location"] == response.headers["location"]
    assert response.headers["etag"] == user["meta"]["version"] == 'W/"1"'
    assert user["userName"] == "test.user@okta.local"
    assert user["name"] == {"givenName": "Test", "familyName": "User"}
    assert user["emails"] == OKTA_USER["emails"]
    assert "password" not in user and "groups" not in user
    assert user[POSIX] == {"loginName": "test.user", "uidNumber": 5000, "gidNumber": 5000,
                           "homeDirectory": "/home/test.user", "loginShell": "/bin/bash"}
    stored = scim.accounts.get_user("test.user")
    assert stored.gecos == "Test User" and stored.active


def test_filter_lookups_ignore_case_and_a_miss_is_an_empty_list(scim: Scim) -> None:
    created = _create(scim)
    found = scim.client.get(f"{BASE}/Users",
                            params={"filter": 'userName eq "TEST.USER@OKTA.LOCAL"',
                                    "startIndex": "1", "count": "100"}).json()
    assert found["totalResults"] == 1 and found["Resources"][0]["id"] == created["id"]
    assert found["startIndex"] == 1 and found["itemsPerPage"] == 1
    miss = scim.client.get(f"{BASE}/Users", params={
        "filter": 'userName eq "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee"'})
    assert miss.status_code == 200
    assert miss.json()["totalResults"] == 0 and miss.json()["Resources"] == []
    by_external = scim.client.get(f"{BASE}/Users",
                                  params={"filter": 'externalId eq "00ujl29u0le5T6Aj10h7"'})
    assert by_external.json()["totalResults"] == 1
    by_case = scim.client.get(f"{BASE}/Users",
                              params={"filter": 'externalId eq "00UJL29U0LE5T6AJ10H7"'})
    assert by_case.json()["totalResults"] == 0  # externalId is caseExact (RFC 7643 §3.1)
    entra = scim.client.get(f"{BASE}/Users", params={
        "filter": 'emails[type eq "work"].value eq "Test.User@okta.local"'})
    assert entra.json()["totalResults"] == 1


def test_the_whole_filter_grammar_is_evaluated(scim: Scim) -> None:
    _create(scim)
    _create(scim, {"userName": "zed@example.com", "active": False, "title": "Boss",
                   ENTERPRISE: {"department": "Retail"}})
    cases = {
        'userName sw "test" or title eq "boss"': 2,
        'not (userName sw "test")': 1,
        'active eq "False"': 1,
        'active eq true and (emails co "okta" or title pr)': 1,
        f'{ENTERPRISE}:department eq "retail"': 1,
        f'{POSIX}:uidNumber ge 5001': 1,
        'meta.lastModified gt "2000-01-01T00:00:00Z"': 2,
        'title pr': 1,
        'nosuch eq "x"': 0,
        'userName ne "zed@example.com"': 1,
        'emails[type eq "work" and value ew ".local"]': 1,
    }
    for text, expected in cases.items():
        answer = scim.client.get(f"{BASE}/Users", params={"filter": text})
        assert answer.status_code == 200, (text, answer.text)
        assert answer.json()["totalResults"] == expected, text


def test_bad_filters_are_invalid_filter(scim: Scim) -> None:
    for text in ('userName eq', 'userName regex "x"', 'active gt true', '((userName pr)'):
        answer = scim.client.get(f"{BASE}/Users", params={"filter": text})
        assert answer.status_code == 400, text
        assert answer.json()["scimType"] == "invalidFilter"


def test_paging_is_stable_and_counts_are_integers(scim: Scim) -> None:
    ids = [_create(scim, {"userName": f"user{i}@example.com"})["id"] for i in range(5)]
    pages = [scim.client.get(f"{BASE}/Users", params={"startIndex": s, "count": 2}).json()
             for s in (1, 3, 5)]
    assert [r["id"] for p in pages for r in p["Resources"]] == ids
    assert all(p["totalResults"] == 5 for p in pages)
    assert [p["itemsPerPage"] for p in pages] == [2, 2, 1]
    only_count = scim.client.get(f"{BASE}/Users", params={"count": 0}).json()
    assert only_count["totalResults"] == 5 and only_count["Resources"] == []


def test_put_replaces_and_patch_deactivates_with_string_booleans(scim: Scim) -> None:
    user = _create(scim)
    body = {"schemas": [USER], "id": user["id"], "userName": "test.user@okta.local",
            "name": {"givenName": "Another", "middleName": "Excited", "familyName": "User"},
            "emails": [{"primary": True, "value": "test.user@okta.local", "type": "work",
                        "display": "test.user@okta.local"}],
            "active": True, "groups": [], "meta": {"resourceType": "User"}}
    replaced = scim.client.put(f"{BASE}/Users/{user['id']}", json=body).json()
    assert replaced["name"]["middleName"] == "Excited" and "displayName" not in replaced
    assert scim.accounts.get_user("test.user").gecos == "Another User"
    off = _patch(scim, f"Users/{user['id']}", {"op": "Replace", "path": "active",
                                               "value": "False"})
    assert off.status_code == 200 and off.json()["active"] is False
    assert scim.accounts.get_user("test.user").locked
    on = _patch(scim, f"Users/{user['id']}", {"op": "replace", "value": {"active": True}})
    assert on.json()["active"] is True and not scim.accounts.get_user("test.user").locked
    assert on.json()["meta"]["version"] == 'W/"4"'


def test_entra_patch_shapes(scim: Scim) -> None:
    user = _create(scim, {"userName": "Test_User_1@contoso.com", "externalId": "e1",
                          "emails": [{"type": "work", "value": "a@contoso.com"}]})
    answer = _patch(
        scim, f"Users/{user['id']}",
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "b@contoso.com"},
        {"op": "Replace", "path": "name.familyName", "value": "Fam"},
        {"op": "Add", "path": 'emails[type eq "home"].value', "value": "h@home.example"},
        {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Retail"},
        {"op": "replace", "value": {"displayName": "Bjfe", "name.givenName": "Kkom",
                                    f"{ENTERPRISE}:employeeNumber": "Aklq",
                                    "externalId": "e2"}})
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["emails"] == [{"type": "work", "value": "b@contoso.com"},
                             {"type": "home", "value": "h@home.example"}]
    assert doc["name"] == {"familyName": "Fam", "givenName": "Kkom"}
    assert doc[ENTERPRISE] == {"department": "Retail", "employeeNumber": "Aklq"}
    assert doc["externalId"] == "e2" and doc["displayName"] == "Bjfe"
    cleared = _patch(scim, f"Users/{user['id']}",
                     {"op": "replace", "path": "displayName", "value": ""},
                     {"op": "remove", "path": 'emails[type eq "home"]'})
    assert "displayName" not in cleared.json() and len(cleared.json()["emails"]) == 1


def test_a_failing_operation_leaves_the_user_unchanged(scim: Scim) -> None:
    user = _create(scim)
    answer = _patch(scim, f"Users/{user['id']}",
                    {"op": "replace", "path": "displayName", "value": "Changed"},
                    {"op": "replace", "path": "active", "value": 7})
    assert answer.status_code == 400 and answer.json()["scimType"] == "invalidValue"
    after = scim.client.get(f"{BASE}/Users/{user['id']}").json()
    assert after["displayName"] == "Test User" and after["meta"]["version"] == 'W/"1"'
    for op, scim_type in (({"op": "remove"}, "noTarget"),
                          ({"op": "jump", "path": "active"}, "invalidSyntax"),
                          ({"op": "add", "path": "bogus", "value": 1}, "invalidPath"),
                          ({"op": "replace", "path": f"{POSIX}:loginName", "value": "x"},
                           "mutability"),
                          ({"op": "replace", "path": f"{POSIX}:uidNumber", "value": 9999},
                           "mutability"),
                          ({"op": "remove", "path": "userName"}, "mutability")):
        answer = _patch(scim, f"Users/{user['id']}", op)
        assert answer.status_code == 400, op
        assert answer.json()["scimType"] == scim_type, op


def test_groups_okta_and_entra_membership(scim: Scim) -> None:
    alice = _create(scim, {"userName": "alice@example.com"})
    bob = _create(scim, {"userName": "bob@example.com"})
    made = scim.client.post(f"{BASE}/Groups", json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group",
                    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "externalId": "8aa1", "displayName": "Test SCIMv2", "meta": {"resourceType": "Group"}})
    assert made.status_code == 201, made.text
    group = made.json()
    assert group["members"] == []
    assert scim.accounts.get_group("test_scimv2").gid == 7000
    rename = _patch(scim, f"Groups/{group['id']}", {"op": "replace", "value": {
        "id": group["id"], "displayName": "Test SCIMv2 renamed"}})
    assert rename.status_code == 204
    add = _patch(scim, f"Groups/{group['id']}", {"op": "Add", "path": "members", "value": [
        {"$ref": None, "value": alice["id"]}, {"value": bob["id"], "display": "bob"}]})
    assert add.status_code == 204
    assert scim.accounts.get_group("test_scimv2").member_names == ("alice", "bob")
    legacy = _patch(scim, f"Groups/{group['id']}", {"op": "Remove", "path": "members",
                                                    "value": [{"value": alice["id"]}]})
    assert legacy.status_code == 204
    assert scim.accounts.get_group("test_scimv2").member_names == ("bob",)
    okta = _patch(scim, f"Groups/{group['id']}",
                  {"op": "remove", "path": f'members[value eq "{bob["id"]}"]'},
                  {"op": "add", "path": "members", "value": [{"value": alice["id"]}]})
    assert okta.status_code == 204
    assert scim.accounts.get_group("test_scimv2").member_names == ("alice",)
    read = scim.client.get(f"{BASE}/Groups/{group['id']}").json()
    assert read["displayName"] == "Test SCIMv2 renamed"
    assert [m["value"] for m in read["members"]] == [alice["id"]]
    assert read["members"][0]["display"] == "alice@example.com"
    slim = scim.client.get(f"{BASE}/Groups", params={
        "excludedAttributes": "members", "filter": 'displayName eq "test scimv2 RENAMED"'}).json()
    assert slim["totalResults"] == 1 and "members" not in slim["Resources"][0]
    user_view = scim.client.get(f"{BASE}/Users/{alice['id']}").json()
    assert user_view["groups"][0]["value"] == group["id"]
    assert scim.client.get(f"{BASE}/Groups", params={
        "filter": f'members eq "{alice["id"]}"'}).json()["totalResults"] == 1
    unknown = _patch(scim, f"Groups/{group['id']}", {"op": "add", "path": "members",
                                                     "value": [{"value": "no-such-user"}]})
    assert unknown.status_code == 400 and unknown.json()["scimType"] == "invalidValue"
    assert scim.client.delete(f"{BASE}/Groups/{group['id']}").status_code == 204
    assert scim.client.get(f"{BASE}/Groups/{group['id']}").status_code == 404


def test_delete_retires_the_uid(scim: Scim) -> None:
    user = _create(scim)
    assert scim.client.delete(f"{BASE}/Users/{user['id']}").status_code == 204
    assert scim.client.get(f"{BASE}/Users/{user['id']}").status_code == 404
    again = _create(scim)
    assert again[POSIX]["uidNumber"] == 5001


def test_errors_are_scim_bodies(scim: Scim) -> None:
    missing = scim.client.get(f"{BASE}/Users/00919288221112222")
    assert missing.status_code == 404 and missing.json()["status"] == "404"
    assert missing.json()["detail"]
    _create(scim)
    duplicate = scim.client.post(f"{BASE}/Users", json={**OKTA_USER, "externalId": None,
                                                       "userName": "TEST.User@okta.local"})
    assert duplicate.status_code == 409 and duplicate.json()["scimType"] == "uniqueness"
    for body, scim_type in (({"userName": "x@y", "favouriteColour": "blue"}, "invalidValue"),
                            ({"userName": "x@y", "active": "maybe"}, "invalidValue"),
                            ({"userName": "x@y", "emails": "x@y"}, "invalidValue"),
                            ({"userName": "@@@"}, "invalidValue"),
                            ({"userName": ""}, "invalidValue"),
                            ([1, 2], "invalidSyntax"),
                            ({"userName": "big@y", POSIX: {"uidNumber": 0}}, "invalidValue")):
        answer = scim.client.post(f"{BASE}/Users", json=body)
        assert answer.status_code == 400, body
        assert answer.json()["scimType"] == scim_type, body
    taken = scim.client.post(f"{BASE}/Users", json={"userName": "u@y", POSIX: {"uidNumber": 1500}})
    assert taken.status_code == 409, taken.text
    garbage = scim.client.post(f"{BASE}/Users", content=b"{not json",
                               headers={"Content-Type": "application/scim+json"})
    assert garbage.status_code == 400 and garbage.json()["scimType"] == "invalidSyntax"
    huge = scim.client.post(f"{BASE}/Users", content=b" " * (1024 * 1024 + 1),
                            headers={"Content-Type": "application/json"})
    assert huge.status_code == 413 and huge.json()["status"] == "413"
    assert scim.client.get(f"{BASE}/Nope").status_code == 404
    assert scim.client.delete(f"{BASE}/Schemas").status_code == 405
    assert scim.client.post(f"{BASE}/Bulk", json={}).status_code == 501
    assert len(scim.accounts.list_users()) == 1


def test_tokens_are_checked_on_every_request(scim: Scim) -> None:
    bad = scim.client.get(f"{BASE}/Users", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json()["detail"] and bad.json()["status"] == "401"
    assert bad.headers["www-authenticate"].startswith("Bearer")
    scim.tokens.slow_down = 2.5
    slowed = scim.client.get(f"{BASE}/Users")
    assert slowed.status_code == 429 and slowed.headers["retry-after"] == "3"


def test_every_answer_is_remembered_as_the_last_request(scim: Scim) -> None:
    assert scim.activity.last_scim_request is None
    scim.client.get(f"{BASE}/Users", params={"filter": 'userName eq "secret@example.com"'})
    seen = scim.activity.last_scim_request
    assert seen is not None and (seen.method, seen.path, seen.token_label, seen.status) == (
        "GET", "/scim/v2/Users", "test", 200)
    scim.client.delete(f"{BASE}/Users/x", headers={"Authorization": "Bearer nope"})
    seen = scim.activity.last_scim_request
    assert seen is not None and (seen.method, seen.token_label, seen.status) == (
        "DELETE", "", 401)


def test_if_match_guards_writes(scim: Scim) -> None:
    user = _create(scim)
    stale = scim.client.put(f"{BASE}/Users/{user['id']}", headers={"If-Match": 'W/"7"'},
                            json={"userName": "test.user@okta.local"})
    assert stale.status_code == 412
    fresh = scim.client.put(f"{BASE}/Users/{user['id']}", headers={"If-Match": 'W/"1"'},
                            json={"userName": "test.user@okta.local"})
    assert fresh.status_code == 200
    unchanged = scim.client.get(f"{BASE}/Users/{user['id']}",
                                headers={"If-None-Match": fresh.headers["etag"]})
    assert unchanged.status_code == 304


def test_projection(scim: Scim) -> None:
    user = _create(scim)
    slim = scim.client.get(f"{BASE}/Users/{user['id']}",
                           params={"attributes": f"userName,name.givenName,{POSIX}:loginName"})
    assert slim.json() == {"schemas": user["schemas"], "id": user["id"],
                           "userName": "test.user@okta.local", "name": {"givenName": "Test"},
                           POSIX: {"loginName": "test.user"}}
    without = scim.client.get(f"{BASE}/Users/{user['id']}",
                              params={"excludedAttributes": "emails,meta"}).json()
    assert "emails" not in without and "meta" not in without and "name" in without


def test_discovery_documents(scim: Scim) -> None:
    spc = scim.client.get(f"{BASE}/ServiceProviderConfig").json()
    assert spc["patch"]["supported"] and not spc["bulk"]["supported"]
    types = scim.client.get(f"{BASE}/ResourceTypes").json()
    assert [r["name"] for r in types["Resources"]] == ["User", "Group"]
    schemas = scim.client.get(f"{BASE}/Schemas").json()
    assert POSIX in [s["id"] for s in schemas["Resources"]]
    one = scim.client.get(f"{BASE}/Schemas/{POSIX}").json()
    login = next(a for a in one["attributes"] if a["name"] == "loginName")
    assert login["mutability"] == "readOnly"
    assert scim.client.get(f"{BASE}/Schemas/urn:nope").status_code == 404
