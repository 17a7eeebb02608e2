"""100,000 users through the real glibc: lookups stay right and enumeration returns every one."""

from __future__ import annotations

import re

import pytest
from rosterd import config
from rosterd.accounts import Accounts, NewUser
from rosterd.hostfiles import HostFiles
from rosterd.ids import IdAllocator
from rosterd.store import Store

from tests.helpers.daemon import make_rosterd, remove_rosterd
from tests.helpers.hostview import run_in_view

USERS = 100_000
OUR_NAME = re.compile(r"user\d+")  # not the host's own "users" group


@pytest.mark.slow
def test_100000_users_resolve_and_enumerate_through_glibc() -> None:
    daemon = make_rosterd()
    try:
        # Seeded through the daemon's own write path (Accounts, one transaction
        # per batch) before it starts: 100,000 admin calls would take minutes.
        cfg = config.load_config(daemon.config_path)
        daemon.state_dir.mkdir(parents=True)
        store = Store.open_sqlite(daemon.state_dir / "rosterd.db")
        accounts = Accounts(store, cfg, HostFiles(), IdAllocator.from_store(store, cfg),
                            on_change=lambda change: None)
        accounts.add_users_bulk(NewUser(name=f"user{n}") for n in range(USERS))
        store.close()
        daemon.start()

        def view(*argv: str) -> str:
            result = run_in_view(argv, nss_socket=daemon.nss_socket, timeout=120)
            assert result.returncode == 0, result.stderr
            return result.stdout

        last = view("getent", "passwd", f"user{USERS - 1}").split(":")
        last_uid = int(last[2])
        # 100,000 UIDs from 20000 cross systemd's reserved ranges, which are skipped.
        assert last[3] == last[2] and last_uid > 20000 + USERS - 1
        assert view("id", "-u", "user40000") == "60000\n"
        assert view("id", "-u", "user40001") == "60514\n"  # past systemd-homed's 60001-60513
        assert view("getent", "passwd", str(last_uid)).startswith(f"user{USERS - 1}:x:")
        assert view("getent", "passwd", "20000").startswith("user0:x:20000:")
        assert view("getent", "group", f"user{USERS - 1}") == f"user{USERS - 1}:x:{last_uid}:\n"
        entries = [line.split(":") for line in view("getent", "passwd").splitlines()]
        ours = [fields for fields in entries if OUR_NAME.fullmatch(fields[0])]
        rosterd_names = [fields[0] for fields in ours]
        assert len(rosterd_names) == USERS and len(set(rosterd_names)) == USERS
        uids = {int(fields[2]) for fields in ours}
        reserved = set(range(60001, 60514)) | set(range(61184, 65520)) | {65534, 65535}
        assert not uids & reserved
        assert rosterd_names[0] == "user0" and rosterd_names[-1] == f"user{USERS - 1}"
        groups = view("getent", "group").splitlines()
        assert sum(1 for line in groups if OUR_NAME.fullmatch(line.split(":")[0])) == USERS
    finally:
        remove_rosterd(daemon)
