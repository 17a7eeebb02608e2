"""The in-memory recorder of the last SCIM request and the last login."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from rosterd.activity import Activity, LoginSeen, ScimRequestSeen

MOMENT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_nothing_is_remembered_before_anything_happens() -> None:
    activity = Activity()
    assert activity.last_scim_request is None and activity.last_login is None


def test_the_latest_of_each_is_kept_with_the_clock_s_time() -> None:
    activity = Activity(clock=lambda: MOMENT)
    activity.scim_request("GET", "/scim/v2/Users", "10.0.0.1", "okta", 200)
    activity.scim_request("DELETE", "/scim/v2/Users/1", "::1", "", 401)
    activity.login("ada", "web")
    activity.login("bob", "rosterctl")
    assert activity.last_scim_request == ScimRequestSeen(MOMENT, "DELETE", "/scim/v2/Users/1",
                                                         "::1", "", 401)
    assert activity.last_login == LoginSeen(MOMENT, "bob", "rosterctl")


def test_what_a_client_sent_is_made_safe_to_print() -> None:
    activity = Activity()
    activity.scim_request("GET", "/scim/v2/Users/\x1b[2J\u202e" + "x" * 1000, "10.0.0.1",
                          "label\n", 404)
    seen = activity.last_scim_request
    assert seen is not None and seen.path.startswith("/scim/v2/Users/?[2J?x")
    assert (len(seen.path), seen.token_label) == (256, "label?")


def test_an_unknown_entry_point_is_a_bug() -> None:
    with pytest.raises(ValueError, match="entry point"):
        Activity().login("ada", "telnet")


def test_threads_recording_at_once_leave_one_whole_record() -> None:
    activity = Activity()

    def record(n: int) -> None:
        for i in range(200):
            activity.scim_request("GET", f"/scim/v2/Users/{n}", f"client-{n}", f"t{n}", 200 + i)
            activity.login(f"user{n}", "grpc")

    threads = [threading.Thread(target=record, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seen = activity.last_scim_request
    assert seen is not None and seen.status == 399
    n = seen.client.removeprefix("client-")
    assert seen.path == f"/scim/v2/Users/{n}" and seen.token_label == f"t{n}"
    login = activity.last_login
    assert login is not None and login.user.startswith("user")
