"""Reads the host's own /etc/passwd and /etc/group as files, so rosterd never collides with them.

The daemon must never ask NSS (pwd, grp, getpwnam) about names: with `roster` in
nsswitch.conf, the lookup would come back into rosterd's own socket and could
deadlock (authd #154 and #253, kanidm #2632). So this module parses the files.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_PASSWD = Path("/etc/passwd")
DEFAULT_GROUP = Path("/etc/group")


@dataclass(frozen=True, slots=True)
class HostEntry:
    """One line of /etc/passwd (number = UID) or /etc/group (number = GID)."""

    name: str
    number: int


@dataclass(frozen=True)
class _Table:
    by_name: dict[str, HostEntry]
    by_number: dict[int, HostEntry]
    numbers: frozenset[int]


_EMPTY = _Table({}, {}, frozenset())


class _CachedFile:
    """One colon-separated file, parsed again only when its (mtime, size, inode) changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int, int] | None = None
        self._table = _EMPTY
        self._lock = threading.Lock()

    def table(self) -> _Table:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._stamp != (0, 0, 0, 0):
                log.warning("%s does not exist; assuming it holds no entries", self.path)
            self._stamp, self._table = (0, 0, 0, 0), _EMPTY
            return _EMPTY
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)
        if stamp == self._stamp:
            return self._table
        with self._lock:
            if stamp != self._stamp:
                self._table = self._parse(self.path.read_bytes())
                self._stamp = stamp
            return self._table

    def _parse(self, raw: bytes) -> _Table:
        by_name: dict[str, HostEntry] = {}
        by_number: dict[int, HostEntry] = {}
        for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
            # '+' and '-' lines are NIS compat entries (nsswitch.conf(5), "compat").
            if not line or line.startswith(("#", "+", "-")):
                continue
            fields = line.split(":")
            if len(fields) < 3 or not fields[2].isdigit():
                log.debug("%s line %d is malformed; ignored", self.path, number)
                continue
            entry = HostEntry(fields[0], int(fields[2]))
            by_name.setdefault(entry.name, entry)
            by_number.setdefault(entry.number, entry)
        log.debug("read %d entries from %s", len(by_name), self.path)
        return _Table(by_name, by_number, frozenset(by_number))


class HostFiles:
    """The host's users and groups, from the files themselves; cheap to ask repeatedly."""

    def __init__(self, passwd: Path = DEFAULT_PASSWD, group: Path = DEFAULT_GROUP) -> None:
        self.passwd_path = passwd
        self.group_path = group
        self._passwd = _CachedFile(passwd)
        self._group = _CachedFile(group)

    def user(self, name: str) -> HostEntry | None:
        return self._passwd.table().by_name.get(name)

    def user_by_uid(self, uid: int) -> HostEntry | None:
        return self._passwd.table().by_number.get(uid)

    def group(self, name: str) -> HostEntry | None:
        return self._group.table().by_name.get(name)

    def group_by_gid(self, gid: int) -> HostEntry | None:
        return self._group.table().by_number.get(gid)

    def group_id(self, name: str) -> int | None:
        entry = self.group(name)
        return None if entry is None else entry.number

    def uids(self) -> frozenset[int]:
        return self._passwd.table().numbers

    def gids(self) -> frozenset[int]:
        return self._group.table().numbers

    def user_names(self) -> frozenset[str]:
        return frozenset(self._passwd.table().by_name)

    def group_names(self) -> frozenset[str]:
        return frozenset(self._group.table().by_name)

    def user_name_holder(self, name: str) -> str | None:
        """'a user in /etc/passwd' if the host has a user of that name, else None."""
        return f"a user in {self.passwd_path}" if self.user(name) else None

    def group_name_holder(self, name: str) -> str | None:
        return f"a group in {self.group_path}" if self.group(name) else None

    def uid_holder(self, uid: int) -> str | None:
        """'bob in /etc/passwd' if the host's passwd file uses this UID, else None."""
        entry = self.user_by_uid(uid)
        return None if entry is None else f"{entry.name} in {self.passwd_path}"

    def gid_holder(self, gid: int) -> str | None:
        entry = self.group_by_gid(gid)
        return None if entry is None else f"{entry.name} in {self.group_path}"
