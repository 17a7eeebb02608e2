"""Tests for rosterd.accounts on a real SQLite store with fake host passwd and group files."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from rosterd.accounts import Accounts, NewUser
from rosterd.config import Config, ProvisioningConfig
from rosterd.errors import (
    Conflict,
    IdTaken,
    InUse,
    InvalidName,
    InvalidValue,
    NameTaken,
    NotFound,
    RosterError,
)
from rosterd.hostfiles import HostFiles
from rosterd.ids import IdAllocator, reserved_reason
from rosterd.model import Change
from rosterd.names import derive_login_name
from rosterd.store import Store, Transaction

HOST_USERS = "root:x:0:0::/root:/bin/sh\nbob:x:1500:1500:Bob:/home/bob:/bin/sh\n"
HOST_GROUPS = "root:x:0:\nbob:x:1500:\nops:x:1600:bob\n"


@dataclasses.dataclass
class World:
    tmp: Path
    store: Store
    config: Config
    host: HostFiles
    changes: list[Change]
    accounts: Accounts

    def restart(self) -> Accounts:
        """A new Accounts on the same database, as after a daemon restart."""
        allocator = IdAllocator.from_store(self.store, self.config, self.host)
        return Accounts(self.store, self.config, self.host, allocator, self.changes.append)


def build(tmp_path: Path, *, start_uid: int = 1000, start_gid: int = 1000,
          max_name_length: int = 32) -> World:
    (tmp_path / "passwd").write_text(HOST_USERS)
    (tmp_path / "group").write_text(HOST_GROUPS)
    host = HostFiles(tmp_path / "passwd", tmp_path / "group")
    cfg = Config(provisioning=ProvisioningConfig(
        start_uid=start_uid, start_gid=start_gid, max_name_length=max_name_length))
    store = Store.open_sqlite(tmp_path / "rosterd.db")
    changes: list[Change] = []
    allocator = IdAllocator.from_store(store, cfg, host)
    return World(tmp_path, store, cfg, host, changes,
                 Accounts(store, cfg, host, allocator, changes.append))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build(tmp_path)
    yield built
    built.store.close()


@pytest.fixture
def accounts(world: World) -> Accounts:
    return world.accounts


def refusal(call: object, *args: object, **kwargs: object) -> RosterError:
    assert callable(call)
    with pytest.raises(RosterError) as caught:
        call(*args, **kwargs)
    return caught.value


# Adding users


def test_a_new_user_gets_the_first_uid_a_private_group_and_the_defaults(
    world: World, accounts: Accounts
) -> None:
    alice = accounts.add_user("alice", full_name="Alice Example")
    assert (alice.uid, alice.gid) == (1000, 1000)
    assert alice.home == "/home/alice" and alice.shell == "/bin/bash"
    assert alice.gecos == "Alice Example" and alice.active
    private = accounts.get_group("alice")
    assert private.gid == 1000 and private.private_for_user_id == alice.id
    assert private.member_names == ()
    assert world.changes == [Change(users_upserted=[alice], groups_upserted=[private])]


def test_a_gecos_with_colon_and_newline_comes_out_sanitised(accounts: Accounts) -> None:
    alice = accounts.add_user("alice", full_name="Alice:x:0:0::/root:/bin/sh\nroot::0:0,,,")
    assert alice.gecos == "Alice x 0 0 /root /bin/sh root 0 0"
    assert accounts.get_user("alice").gecos == alice.gecos


def test_an_upper_case_name_is_refused_with_a_suggestion(accounts: Accounts) -> None:
    err = refusal(accounts.add_user, "Alice")
    assert isinstance(err, InvalidName)
    assert str(err) == "user name 'Alice' is not valid: names must be lower case (try 'alice')"


@pytest.mark.parametrize("name", ["", "1234", "-x", "a b", "root", "systemd-x", "x" * 33, "a."])
def test_every_invalid_name_is_refused_and_nothing_is_written(
    world: World, accounts: Accounts, name: str
) -> None:
    assert isinstance(refusal(accounts.add_user, name), InvalidName)
    assert accounts.list_users() == [] and accounts.list_groups() == []
    assert world.changes == []


def test_the_name_length_limit_comes_from_the_config(tmp_path: Path) -> None:
    world = build(tmp_path, max_name_length=5)
    assert world.accounts.add_user("abcde").name == "abcde"
    assert "at most 5 characters" in str(refusal(world.accounts.add_user, "abcdef"))
    world.store.close()


def test_a_name_in_the_host_passwd_file_is_refused(world: World, accounts: Accounts) -> None:
    err = refusal(accounts.add_user, "bob")
    assert isinstance(err, NameTaken)
    assert str(err) == (f"user name 'bob' is already used by a user in {world.tmp / 'passwd'}; "
                        "choose another name")


def test_a_name_whose_private_group_clashes_with_a_host_group_is_refused(
    accounts: Accounts,
) -> None:
    err = refusal(accounts.add_user, "ops")
    assert isinstance(err, NameTaken) and "/group" in str(err)


def test_a_name_already_in_the_store_is_refused(accounts: Accounts) -> None:
    accounts.add_user("alice")
    err = refusal(accounts.add_user, "alice")
    assert isinstance(err, NameTaken)
    assert "already taken by another rosterd user" in str(err)


def test_a_name_whose_private_group_clashes_with_a_rosterd_group_is_refused(
    accounts: Accounts,
) -> None:
    accounts.add_group("devs")
    assert isinstance(refusal(accounts.add_user, "devs"), NameTaken)


def test_a_uid_in_the_host_passwd_file_is_refused_naming_its_holder(
    world: World, accounts: Accounts
) -> None:
    err = refusal(accounts.add_user, "alice", uid=1500)
    assert isinstance(err, IdTaken)
    assert str(err) == f"UID 1500 is already used by bob in {world.tmp / 'passwd'}"


def test_a_gid_in_the_host_group_file_is_refused_naming_its_holder(
    world: World, accounts: Accounts
) -> None:
    err = refusal(accounts.add_user, "alice", gid=1600)
    assert str(err) == f"GID 1600 is already used by ops in {world.tmp / 'group'}"
    assert accounts.list_users() == []


def test_automatic_ids_skip_those_in_the_host_files(tmp_path: Path) -> None:
    world = build(tmp_path, start_uid=1500, start_gid=1500)
    carol = world.accounts.add_user("carol")
    assert (carol.uid, carol.gid) == (1501, 1501)
    world.store.close()


def test_an_explicit_free_uid_is_honoured(accounts: Accounts) -> None:
    alice = accounts.add_user("alice", uid=2000)
    assert (alice.uid, alice.gid) == (2000, 2000)


def test_id_4294967294_works_for_a_user_and_its_private_group(accounts: Accounts) -> None:
    big = accounts.add_user("big", uid=4294967294)
    assert (big.uid, big.gid) == (4294967294, 4294967294)
    assert accounts.get_user("big").uid == 4294967294
    assert accounts.get_group("big").gid == 4294967294


@pytest.mark.parametrize("uid", [0, 4294967295, 65534, 61184])
def test_an_explicit_uid_that_is_out_of_range_or_reserved_is_refused(
    accounts: Accounts, uid: int
) -> None:
    assert isinstance(refusal(accounts.add_user, "alice", uid=uid), (InvalidValue, IdTaken))


def test_an_explicit_uid_of_another_rosterd_user_is_refused(accounts: Accounts) -> None:
    accounts.add_user("alice")
    err = refusal(accounts.add_user, "carol", uid=1000)
    assert str(err) == "UID 1000 is already used by user alice in rosterd"


def test_an_explicit_gid_of_a_rosterd_group_makes_it_the_primary_group(
    world: World, accounts: Accounts
) -> None:
    accounts.add_group("devs", gid=3000)
    alice = accounts.add_user("alice", gid=3000)
    assert alice.gid == 3000
    with pytest.raises(NotFound):
        accounts.get_group("alice")
    assert world.changes[-1].groups_upserted == []


def test_an_explicit_gid_of_another_users_private_group_is_refused(accounts: Accounts) -> None:
    accounts.add_user("alice")
    err = refusal(accounts.add_user, "carol", gid=1000)
    assert isinstance(err, IdTaken) and "private group of user alice" in str(err)


def test_a_free_explicit_gid_becomes_the_private_groups_gid(accounts: Accounts) -> None:
    alice = accounts.add_user("alice", gid=4000)
    assert (alice.uid, alice.gid, accounts.get_group("alice").gid) == (1000, 4000, 4000)


def test_the_private_group_takes_the_next_free_gid_when_the_uid_is_held_as_a_gid(
    accounts: Accounts,
) -> None:
    accounts.add_group("devs")  # takes GID 1000
    alice = accounts.add_user("alice")
    assert alice.uid == 1000 and alice.gid == 1001


def test_listed_groups_must_exist_and_nothing_is_written_otherwise(
    world: World, accounts: Accounts
) -> None:
    err = refusal(accounts.add_user, "alice", groups=["nope"])
    assert isinstance(err, NotFound) and "'nope' does not exist" in str(err)
    assert accounts.list_users() == []
    assert accounts.add_user("alice").uid == 1000  # nothing was used up


def test_a_user_added_to_groups_upserts_those_groups_with_the_new_member(
    world: World, accounts: Accounts
) -> None:
    accounts.add_group("devs")
    accounts.add_group("ops2")
    world.changes.clear()
    accounts.add_user("alice", groups=["devs", "ops2", "devs"])
    upserted = {g.name: g.member_names for g in world.changes[0].groups_upserted}
    assert upserted == {"alice": (), "devs": ("alice",), "ops2": ("alice",)}
    assert accounts.get_group("devs").member_names == ("alice",)


@pytest.mark.parametrize(("home", "shell"), [("/etc/alice", None), ("/home/../etc", None),
                                              ("relative", None), (None, "bash"),
                                              (None, "/bin/sh;id")])
def test_a_bad_home_or_shell_is_refused(accounts: Accounts, home: str | None,
                                        shell: str | None) -> None:
    assert isinstance(refusal(accounts.add_user, "alice", home=home, shell=shell), InvalidValue)


def test_a_home_under_home_root_and_a_shell_are_kept(accounts: Accounts) -> None:
    alice = accounts.add_user(
        "alice", home="/home/team//alice/", shell="/usr/bin/zsh")
    assert (alice.home, alice.shell) == ("/home/team/alice", "/usr/bin/zsh")


def test_an_external_id_is_kept_and_must_be_unique(accounts: Accounts) -> None:
    alice = accounts.add_user("alice", external_id="00u1abc")
    assert accounts.get_user_by_external_id("00u1abc") == alice
    assert isinstance(refusal(accounts.add_user, "carol", external_id="00u1abc"), Conflict)


# IDs are never reused


def test_a_deleted_users_uid_is_never_handed_out_again(world: World, accounts: Accounts) -> None:
    accounts.add_user("alice")
    accounts.delete_user("alice")
    assert accounts.add_user("carol").uid == 1001
    restarted = world.restart()
    assert restarted.add_user("dave").uid == 1002
    err = refusal(restarted.add_user, "erin", uid=1000)
    assert str(err) == ("UID 1000 was used by a deleted account (alice) and is retired; "
                        "rosterd never reuses IDs")
    assert isinstance(refusal(restarted.add_user, "erin", gid=1000), IdTaken)


def test_a_deleted_groups_gid_is_never_handed_out_again(accounts: Accounts) -> None:
    accounts.add_group("devs", gid=5000)
    accounts.delete_group("devs")
    assert "retired" in str(refusal(accounts.add_group, "devs", gid=5000))
    assert accounts.add_group("devs").gid == 1000


def test_a_failure_inside_the_transaction_leaves_no_user_no_id_and_no_change(
    world: World, accounts: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(self: Transaction, new: object) -> None:
        raise RuntimeError("injected failure after the first inserts")

    monkeypatch.setattr(Transaction, "insert_groups", fail)
    with pytest.raises(RuntimeError, match="injected"):
        accounts.add_user("alice")
    monkeypatch.undo()
    with world.store.read() as tx:
        assert tx.users() == [] and tx.issued_numbers("uid") == []
    assert world.changes == []
    assert accounts.add_user("alice").uid == 1000


# Locking, updating and deleting


def test_locking_and_unlocking_flip_active_and_announce_the_user(
    world: World, accounts: Accounts
) -> None:
    accounts.add_user("alice")
    locked = accounts.lock_user("alice")
    assert locked.locked and not locked.active
    assert world.changes[-1] == Change(users_upserted=[locked])
    count = len(world.changes)
    assert accounts.lock_user("alice").locked  # already locked: no change
    assert len(world.changes) == count
    assert accounts.unlock_user("alice").active


def test_locking_an_unknown_user_is_not_found(accounts: Accounts) -> None:
    err = refusal(accounts.lock_user, "ghost")
    assert isinstance(err, NotFound) and str(err) == "user 'ghost' does not exist"


def test_updating_a_user_sanitises_and_checks_like_adding(accounts: Accounts) -> None:
    accounts.add_user("alice")
    alice = accounts.update_user(
        "alice", full_name="New\nName", shell="/bin/zsh")
    assert (alice.gecos, alice.shell) == ("New Name", "/bin/zsh")
    assert isinstance(refusal(accounts.update_user, "alice", home="/tmp/x"), InvalidValue)


def test_deleting_a_user_removes_it_its_private_group_and_its_memberships(
    world: World, accounts: Accounts
) -> None:
    accounts.add_group("devs")
    alice = accounts.add_user("alice", groups=["devs"])
    private = accounts.get_group("alice")
    world.changes.clear()
    deleted = accounts.delete_user("alice")
    assert deleted == alice
    change = world.changes[0]
    assert change.users_removed == [alice] and change.groups_removed == [private]
    assert [(g.name, g.member_names) for g in change.groups_upserted] == [("devs", ())]
    assert isinstance(refusal(accounts.get_user, "alice"), NotFound)
    assert isinstance(refusal(accounts.get_group, "alice"), NotFound)


# Groups


def test_a_group_gets_the_next_gid_from_start_gid(tmp_path: Path) -> None:
    world = build(tmp_path, start_gid=7000)
    assert world.accounts.add_group("devs").gid == 7000
    world.store.close()


@pytest.mark.parametrize(("name", "error"), [("Devs", InvalidName), ("ops", NameTaken),
                                             ("wheel", InvalidName)])
def test_a_bad_or_taken_group_name_is_refused(accounts: Accounts, name: str,
                                              error: type[RosterError]) -> None:
    assert isinstance(refusal(accounts.add_group, name), error)


def test_a_group_name_already_in_the_store_is_refused(accounts: Accounts) -> None:
    accounts.add_group("devs")
    assert isinstance(refusal(accounts.add_group, "devs"), NameTaken)


def test_an_explicit_group_gid_in_the_host_file_is_refused(accounts: Accounts) -> None:
    assert "GID 1600 is already used by ops" in str(refusal(accounts.add_group, "x", gid=1600))


def test_a_users_private_group_cannot_be_deleted_on_its_own(accounts: Accounts) -> None:
    accounts.add_user("alice")
    err = refusal(accounts.delete_group, "alice")
    assert isinstance(err, InUse) and "private group of user alice" in str(err)


def test_a_group_that_is_some_users_primary_group_cannot_be_deleted(accounts: Accounts) -> None:
    accounts.add_group("devs", gid=3000)
    accounts.add_user("alice", gid=3000)
    err = refusal(accounts.delete_group, "devs")
    assert isinstance(err, InUse)
    assert str(err) == "group 'devs' is the primary group of alice; delete those users first"


def test_deleting_a_group_announces_its_removal(world: World, accounts: Accounts) -> None:
    devs = accounts.add_group("devs")
    assert accounts.delete_group("devs") == devs
    assert world.changes[-1] == Change(groups_removed=[devs])


def test_members_are_added_and_removed_and_each_change_upserts_the_group(
    world: World, accounts: Accounts
) -> None:
    accounts.add_group("devs")
    accounts.add_user("alice")
    accounts.add_user("carol")
    accounts.add_member("devs", "carol")
    devs = accounts.add_member("devs", "alice")
    assert devs.member_names == ("alice", "carol")
    assert world.changes[-1] == Change(groups_upserted=[devs])
    assert accounts.remove_member("devs", "carol").member_names == ("alice",)
    assert [g.name for g in accounts.groups_of("alice")] == ["devs"]


def test_adding_a_member_twice_or_removing_a_non_member_changes_nothing(
    world: World, accounts: Accounts
) -> None:
    accounts.add_group("devs")
    accounts.add_user("alice")
    accounts.add_member("devs", "alice")
    count = len(world.changes)
    assert accounts.add_member("devs", "alice").member_names == ("alice",)
    accounts.remove_member("devs", "alice")
    assert accounts.remove_member("devs", "alice").member_names == ()
    assert len(world.changes) == count + 1


def test_members_of_unknown_groups_or_users_are_not_found(accounts: Accounts) -> None:
    accounts.add_group("devs")
    assert "user 'ghost'" in str(refusal(accounts.add_member, "devs", "ghost"))
    assert "group 'nope'" in str(refusal(accounts.remove_member, "nope", "ghost"))


# Concurrency, bulk and reading


def test_concurrent_adds_of_the_same_name_give_exactly_one_user(accounts: Accounts) -> None:
    results: list[object] = []
    barrier = threading.Barrier(8)

    def add() -> None:
        barrier.wait()
        try:
            results.append(accounts.add_user("alice"))
        except RosterError as err:
            results.append(err)

    threads = [threading.Thread(target=add) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    refused = [r for r in results if isinstance(r, RosterError)]
    assert len(results) - len(refused) == 1
    assert all(isinstance(r, NameTaken) for r in refused)
    assert [u.name for u in accounts.list_users()] == ["alice"]


def test_concurrent_adds_of_different_names_get_distinct_ids(accounts: Accounts) -> None:
    threads = [threading.Thread(target=accounts.add_user, args=(f"user{i}",)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    uids = [u.uid for u in accounts.list_users()]
    assert sorted(uids) == list(range(1000, 1016))


def test_bulk_adding_checks_and_allocates_like_add_user(world: World, accounts: Accounts) -> None:
    accounts.add_group("devs")
    added = accounts.add_users_bulk(
        [NewUser(f"u{i}", groups=("devs",)) for i in range(1200)], batch_size=500)
    # UID 1500 is bob's in the host passwd file; GID 1000 went to devs, so each
    # private group takes the next free GID, skipping the host's 1500 and 1600.
    assert [u.uid for u in added] == [n for n in range(1000, 2201) if n != 1500]
    gids = [u.gid for u in added]
    assert len(set(gids)) == 1200 and not {1000, 1500, 1600} & set(gids)
    assert len(accounts.get_group("devs").member_names) == 1200
    assert len(world.changes) == 1 + 3  # the group, then one change per batch
    users, groups = accounts.snapshot()
    assert len(users) == 1200 and len(groups) == 1201


def test_a_bulk_batch_with_a_refusal_writes_nothing_of_that_batch(accounts: Accounts) -> None:
    err = refusal(accounts.add_users_bulk, [NewUser("a1"), NewUser("a2"), NewUser("a1")])
    assert isinstance(err, NameTaken)
    assert accounts.list_users() == []
    assert accounts.add_user("a1").uid == 1000


@pytest.mark.slow
def test_100000_users_load_with_unique_ids(accounts: Accounts) -> None:
    added = accounts.add_users_bulk(NewUser(f"user{i}") for i in range(100_000))
    uids = {u.uid for u in added}
    assert len(uids) == 100_000
    assert 1500 not in uids
    assert not [uid for uid in uids if reserved_reason(uid) is not None]
    users, groups = accounts.snapshot()
    assert len(users) == 100_000 and len(groups) == 100_000
    # 100,000 UIDs from 1000 skip bob's 1500 and systemd's 60001-60513 and 61184-65519.
    assert max(uids) == 105_851
    assert accounts.add_user("late").uid == 105_852


def test_login_name_taken_feeds_derive_login_name(accounts: Accounts) -> None:
    accounts.add_user("alice")
    derived = derive_login_name("Alice@example.com", rule="local-part", max_length=32,
                                taken=accounts.login_name_taken)
    assert derived == "alice-2"
    assert accounts.add_user(derived).name == "alice-2"
    assert derive_login_name("bob", max_length=32, taken=accounts.login_name_taken) == "bob-2"
