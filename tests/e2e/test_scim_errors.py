"""Bad SCIM input against a real rosterd: each gets the right SCIM error and changes nothing.

"Nothing" is checked the way the host sees it (getent enumeration through the
NSS module) and the way the client sees it (the full user and group lists).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers.scim import PATCH_OP, POSIX, USER, ScimSession, scim_session
from tests.helpers.tls import trusting


@pytest.fixture(scope="module")
def session() -> Iterator[ScimSession]:
    with scim_session() as opened:
        first = opened.http.post("/Users", json={"schemas": [USER],
                                                 "userName": "Alice@Example.com"})
        assert first.status_code == 201
        yield opened


def _state(session: ScimSession) -> tuple[Any, ...]:
    users = session.http.get("/Users").json()["Resources"]
    groups = session.http.get("/Groups").json()["Resources"]
    return (users, groups, session.view("getent", "passwd"), session.view("getent", "group"),
            session.view("getent", "shadow"))


def _alice(session: ScimSession) -> str:
    found = session.http.get("/Users", params={"filter": 'userName eq "alice@example.com"'})
    user_id: str = found.json()["Resources"][0]["id"]
    return user_id


BAD_CREATES = [
    pytest.param({"userName": "ALICE@example.COM"}, 409, "uniqueness",
                 id="a duplicate userName in another case is 409 uniqueness"),
    pytest.param({"userName": "bob@example.com", "shoeSize": 44}, 400, "invalidValue",
                 id="an unknown attribute is 400 invalidValue"),
    pytest.param({"userName": "bob@example.com", "active": "perhaps"}, 400, "invalidValue",
                 id="a string that is not a boolean is 400 invalidValue"),
    pytest.param({"userName": "bob@example.com", "emails": {"value": "b@x"}}, 400,
                 "invalidValue", id="a single object for a multi-valued attribute is refused"),
    pytest.param({"userName": 42}, 400, "invalidValue", id="a number as userName is refused"),
    pytest.param({"userName": "+++@example.com"}, 400, "invalidValue",
                 id="a userName with no letters or digits cannot give a login name"),
    pytest.param({"displayName": "no userName"}, 400, "invalidValue",
                 id="a missing userName is 400 invalidValue"),
    pytest.param({"userName": "carol@example.com", POSIX: {"uidNumber": 4294967295}}, 400,
                 "invalidValue", id="a uidNumber out of range is refused"),
    pytest.param({"userName": "carol@example.com", POSIX: {"uidNumber": 0}}, 400,
                 "invalidValue", id="uidNumber 0 (root) is refused"),
    pytest.param({"userName": "carol@example.com", POSIX: {"uidNumber": 20000}}, 409,
                 "uniqueness", id="a uidNumber another account holds is 409 uniqueness"),
    pytest.param([{"userName": "x"}], 400, "invalidSyntax",
                 id="a JSON array instead of an object is 400 invalidSyntax"),
]


@pytest.mark.parametrize(("body", "status", "scim_type"), BAD_CREATES)
def test_a_bad_create_is_refused_and_changes_nothing(session: ScimSession, body: Any,
                                                     status: int, scim_type: str) -> None:
    before = _state(session)
    answer = session.http.post("/Users", json=body)
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["scimType"] == scim_type and error["status"] == str(status) and error["detail"]
    assert answer.headers["content-type"] == "application/scim+json"
    assert _state(session) == before


def test_malformed_json_is_invalid_syntax(session: ScimSession) -> None:
    before = _state(session)
    answer = session.http.post("/Users", content=b'{"userName": "x@y",',
                               headers={"Content-Type": "application/scim+json"})
    assert answer.status_code == 400 and answer.json()["scimType"] == "invalidSyntax"
    assert _state(session) == before


def test_an_oversized_body_is_413(session: ScimSession) -> None:
    before = _state(session)
    padding = "x" * (1024 * 1024)
    answer = session.http.post("/Users", json={"userName": "big@y", "title": padding})
    assert answer.status_code == 413 and answer.json()["status"] == "413"
    assert _state(session) == before


def test_a_bad_filter_is_invalid_filter(session: ScimSession) -> None:
    for text in ('userName eq', 'userName xx "a"', 'active lt true', 'emails[type eq "w"'):
        answer = session.http.get("/Users", params={"filter": text})
        assert answer.status_code == 400, text
        assert answer.json()["scimType"] == "invalidFilter"


def test_bad_patches_are_refused_atomically(session: ScimSession) -> None:
    alice = _alice(session)
    before = _state(session)
    for ops, scim_type in (
        ([{"op": "replace", "path": "displayName", "value": "Half done"},
          {"op": "replace", "path": "emails", "value": "not-a-list-item"}], "invalidValue"),
        ([{"op": "remove"}], "noTarget"),
        ([{"op": "replace", "path": "nickName[", "value": "x"}], "invalidPath"),
        ([{"op": "replace", "path": f"{POSIX}:uidNumber", "value": 31337}], "mutability"),
    ):
        answer = session.http.patch(f"/Users/{alice}",
                                    json={"schemas": [PATCH_OP], "Operations": ops})
        assert answer.status_code == 400, ops
        assert answer.json()["scimType"] == scim_type, ops
    assert _state(session) == before


def test_a_wrong_or_revoked_token_is_401_and_changes_nothing(session: ScimSession) -> None:
    before = _state(session)
    base = session.daemon.scim_url
    ca = trusting(session.daemon.ca_file)
    wrong = httpx.post(f"{base}/Users", json={"userName": "eve@x"}, verify=ca,
                       headers={"Authorization": "Bearer not-a-token"})
    assert wrong.status_code == 401 and wrong.json()["detail"] and wrong.json()["status"] == "401"
    missing = httpx.get(f"{base}/Users", verify=ca)
    assert missing.status_code == 401
    token = session.daemon.new_token("short-lived")
    with httpx.Client(base_url=base, verify=ca,
                      headers={"Authorization": f"Bearer {token}"}) as other:
        assert other.get("/Users").status_code == 200
        session.daemon.ctl("token", "revoke", "short-lived")
        revoked = other.post("/Users", json={"userName": "eve@x"})
        assert revoked.status_code == 401 and revoked.json()["schemas"][0].endswith(":Error")
    assert _state(session) == before


def test_concurrent_creates_of_one_user_give_one_201_and_409s(session: ScimSession) -> None:
    results: list[int] = []
    start = threading.Barrier(8)
    lock = threading.Lock()
    base, ca, token = session.daemon.scim_url, trusting(session.daemon.ca_file), session.token

    def create(i: int) -> None:
        with httpx.Client(base_url=base, verify=ca,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            client.get("/ServiceProviderConfig")  # connect and handshake before the race
            start.wait()
            # The same person in different case: userName is unique ignoring case.
            name = "Racer@Example.com" if i % 2 else "racer@example.com"
            status = client.post("/Users", json={"userName": name}).status_code
        with lock:
            results.append(status)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [201] + [409] * 7
    found = session.http.get("/Users", params={"filter": 'userName eq "RACER@example.com"'})
    assert found.json()["totalResults"] == 1
    code, passwd = session.view("getent", "passwd")
    racers = [line for line in passwd.splitlines() if line.startswith("racer")]
    assert code == 0 and len(racers) == 1
