"""Tests for rosterd.ids: which UIDs and GIDs are handed out, and which never are."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from rosterd.errors import IdTaken, InvalidValue
from rosterd.hostfiles import HostFiles
from rosterd.ids import IdAllocator, reserved_reason


@pytest.fixture
def host(tmp_path: Path) -> HostFiles:
    (tmp_path / "passwd").write_text("root:x:0:0::/root:/bin/sh\nbob:x:1002:1002::/h:/bin/sh\n")
    (tmp_path / "group").write_text("root:x:0:\nbob:x:1002:\nstaff:x:1003:\n")
    return HostFiles(tmp_path / "passwd", tmp_path / "group")


def allocator(host: HostFiles, *, start: int = 1000, uids: tuple[int, ...] = (),
              gids: tuple[int, ...] = ()) -> IdAllocator:
    return IdAllocator(start_uid=start, start_gid=start, issued_uids=uids, issued_gids=gids,
                       host=host)


def test_uids_start_at_start_uid_and_skip_issued_and_host_ids(host: HostFiles) -> None:
    ids = allocator(host, uids=(1001,))
    assert [ids.next_uid() for _ in range(3)] == [1000, 1003, 1004]


def test_a_private_group_takes_the_uid_as_gid_when_free(host: HostFiles) -> None:
    ids = allocator(host)
    assert ids.private_gid_for(1000) == 1000


def test_a_private_group_takes_the_next_free_gid_when_its_uid_is_held(host: HostFiles) -> None:
    ids = allocator(host, gids=(1000, 1001))
    assert ids.private_gid_for(1000) == 1004  # 1002 and 1003 are the host's


def test_pending_ids_are_not_handed_out_twice(host: HostFiles) -> None:
    ids = allocator(host)
    first = ids.next_uid()
    with pytest.raises(IdTaken, match="already being given"):
        ids.claim_uid(first)
    assert ids.next_uid() != first


def test_rollback_forgets_pending_ids_and_rewinds_the_cursor(host: HostFiles) -> None:
    ids = allocator(host)
    assert ids.next_uid() == 1000
    ids.rollback()
    assert ids.next_uid() == 1000
    ids.commit()
    assert ids.next_uid() == 1001


def test_committed_ids_are_never_free_again(host: HostFiles) -> None:
    ids = allocator(host)
    uid = ids.next_uid()
    ids.commit()
    assert not ids.is_free("uid", uid)
    with pytest.raises(IdTaken, match="retired; rosterd never reuses IDs"):
        ids.claim_uid(uid)


@pytest.mark.parametrize("number", [0, 60001, 60513, 61184, 65000, 65519, 65534, 65535])
def test_reserved_ids_are_refused_with_the_reason(host: HostFiles, number: int) -> None:
    ids = allocator(host)
    assert reserved_reason(number) is not None
    with pytest.raises((IdTaken, InvalidValue)):
        ids.claim_uid(number)


def test_automatic_allocation_jumps_over_the_systemd_ranges(host: HostFiles) -> None:
    ids = allocator(host, start=60000)
    assert ids.next_uid() == 60000
    assert ids.next_uid() == 60514
    late = allocator(host, start=61184)
    assert late.next_uid() == 65520
    assert late.next_uid() == 65521
    assert allocator(host, start=65534).next_uid() == 65536


def test_an_explicit_id_held_by_the_host_names_its_holder(host: HostFiles, tmp_path: Path) -> None:
    ids = allocator(host)
    with pytest.raises(IdTaken) as caught:
        ids.claim_uid(1002)
    assert str(caught.value) == f"UID 1002 is already used by bob in {tmp_path / 'passwd'}"
    with pytest.raises(IdTaken, match="GID 1003 is already used by staff in"):
        ids.claim_gid(1003)


def test_an_explicit_free_id_is_honoured_even_below_start(host: HostFiles) -> None:
    ids = allocator(host)
    assert ids.claim_uid(500) == 500
    assert ids.claim_uid(4294967294) == 4294967294


@pytest.mark.parametrize("number", [4294967295, 2**32, -1])
def test_an_explicit_id_out_of_range_is_refused(host: HostFiles, number: int) -> None:
    with pytest.raises(InvalidValue, match="from 1 to 4294967294"):
        allocator(host).claim_uid(number)


def test_the_last_id_is_4294967294_and_then_the_space_is_exhausted(host: HostFiles) -> None:
    ids = allocator(host, start=4294967293)
    assert ids.next_uid() == 4294967293
    assert ids.next_uid() == 4294967294
    with pytest.raises(IdTaken, match="no free UID is left"):
        ids.next_uid()


def test_a_host_id_added_after_start_is_respected(host: HostFiles, tmp_path: Path) -> None:
    ids = allocator(host)
    with (tmp_path / "passwd").open("a") as passwd:
        passwd.write("late:x:1000:1000::/h:/bin/sh\n")
    assert ids.next_uid() == 1001


def test_allocation_stays_fast_with_100000_issued_ids(host: HostFiles) -> None:
    ids = allocator(host, uids=tuple(range(1000, 101_000)))
    started = time.perf_counter()
    first = ids.next_uid()
    for _ in range(10_000):
        ids.next_uid()
    ids.commit()
    elapsed = time.perf_counter() - started
    assert first == 101_000
    assert elapsed < 1.0, f"10,000 allocations took {elapsed:.2f} s"
