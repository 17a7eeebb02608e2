"""The accounts every NSS source is loaded with, seeded into a rosterd state dir through its API.

rosterd allocates the IDs, so the same users and groups, read back from its
store, become the passwd and group lines that libnss_files, nscd and SSSD get:
every source answers the same lookups about the same accounts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from rosterd import config
from rosterd.accounts import Accounts, NewUser
from rosterd.hostfiles import HostFiles
from rosterd.ids import IdAllocator
from rosterd.store import Store

START_ID = 20000
# Shared groups get explicit GIDs far above the users' range, so that every
# user's private group gets GID = UID, as on a real rosterd host.
SHARED_GID_BASE = 1_000_000
GROUPS_PER_USER_SHARE = 0.2  # shared groups: 20% as many as users
MEMBERSHIPS_PER_USER = 3
KEY_SEED = 20240611  # fixed, so every run looks up the same keys in the same order
LOOKUP_KINDS = ("getpwnam", "getpwuid", "getgrnam", "initgroups", "miss")


@dataclass(frozen=True)
class Population:
    """The seeded accounts as file lines, plus lookup keys in a fixed shuffled order."""

    users: int
    passwd_lines: list[str]
    group_lines: list[str]
    keys: dict[str, list[str]]

    def write_keys(self, directory: Path, limit: int) -> dict[str, Path]:
        """One key file per lookup kind, each with the first `limit` keys (lookup_bench -f)."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = {}
        for kind, keys in self.keys.items():
            paths[kind] = directory / f"{kind}.keys"
            paths[kind].write_text("\n".join(keys[:limit]) + "\n")
        return paths


def write_config(path: Path, state_dir: Path, runtime_dir: Path, home_root: Path) -> None:
    """A rosterd.toml of the shape tests/helpers/daemon.py writes."""
    path.write_text(
        f'[paths]\nstate_dir = "{state_dir}"\nruntime_dir = "{runtime_dir}"\n\n'
        f"[provisioning]\nstart_uid = {START_ID}\nstart_gid = {START_ID}\n"
        f'home_root = "{home_root}"\n\n'
        # rosterd refuses to serve SCIM over the network as root; the benchmark
        # runs it as root (for the namespaces) and needs only its lookups.
        "[scim]\nenabled = false\n"
    )


def _memberships(user: int, shared_groups: int) -> tuple[str, ...]:
    """A few shared groups per user, spread so every group has about the same members."""
    picks = {(user * stride + offset) % shared_groups
             for stride, offset in ((1, 0), (7, 1), (13, 5))[:MEMBERSHIPS_PER_USER]}
    return tuple(f"bg{index:06d}" for index in sorted(picks))


def seed(config_path: Path, users: int) -> Population:
    """Adds `users` users and their shared groups to the state dir the config names."""
    cfg = config.load_config(config_path)
    cfg.paths.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = Store.open_sqlite(cfg.paths.state_dir / "rosterd.db")
    try:
        accounts = Accounts(store, cfg, HostFiles(), IdAllocator.from_store(store, cfg))
        shared = max(1, int(users * GROUPS_PER_USER_SHARE))
        for index in range(shared):
            accounts.add_group(f"bg{index:06d}", gid=SHARED_GID_BASE + index)
        accounts.add_users_bulk(
            NewUser(f"bu{index:06d}", full_name=f"Bench User {index}",
                    groups=_memberships(index, shared))
            for index in range(users)
        )
        seeded_users, seeded_groups = accounts.snapshot()
    finally:
        store.close()

    passwd_lines = [f"{u.name}:x:{u.uid}:{u.gid}:{u.gecos}:{u.home}:{u.shell}"
                    for u in seeded_users]
    group_lines = [f"{g.name}:x:{g.gid}:{','.join(g.member_names)}" for g in seeded_groups]
    rng = random.Random(KEY_SEED)  # noqa: S311 - a key order, not a secret
    shuffled_users = rng.sample(seeded_users, len(seeded_users))
    shared_groups = [g for g in seeded_groups if not g.user_private]
    keys = {
        "getpwnam": [u.name for u in shuffled_users],
        "getpwuid": [str(u.uid) for u in shuffled_users],
        "getgrnam": [g.name for g in rng.sample(shared_groups, len(shared_groups))],
        "initgroups": [f"{u.name} {u.gid}" for u in shuffled_users],
        "miss": [f"nobody{index:06d}" for index in range(users)],
    }
    return Population(users, passwd_lines, group_lines, keys)
