"""Encodes and decodes the lookup frames and records of proto/nss-wire.md (the Python side).

nss_shim/wire.h is the C side of the same format; both are checked against the
vectors in tests/wire_vectors/. Nothing else in the daemon packs these bytes.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

VERSION = 1
HEADER = struct.Struct("<HHI")
HEADER_BYTES = HEADER.size
MAX_REQUEST_PAYLOAD_BYTES = 1024
MAX_REPLY_PAYLOAD_BYTES = 16 * 1024 * 1024
MAX_NAME_BYTES = 255
MAX_STRING_BYTES = 0xFFFF
PAGE_MAX_RECORDS = 256
PAGE_SOFT_LIMIT_BYTES = 64 * 1024

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_PASSWD_IDS = struct.Struct("<II")
_SHADOW_DAYS = struct.Struct("<iiiiii")
_PAGE_HEAD = struct.Struct("<IQ")
_ACCOUNT_HEAD = struct.Struct("<BI")


class Kind(enum.IntEnum):
    """Request kinds, named after the libc call each one serves."""

    GETPWNAM = 1
    GETPWUID = 2
    GETGRNAM = 3
    GETGRGID = 4
    INITGROUPS = 5
    GETSPNAM = 6
    GETPWENT = 7
    GETGRENT = 8
    PING = 9
    ACCOUNT = 10  # not a libc call: pam_roster's one question (pam/README.md)


class Status(enum.IntEnum):
    OK = 0
    NOT_FOUND = 1
    BAD_REQUEST = 2
    PERMISSION_DENIED = 3
    UNSUPPORTED_VERSION = 4
    TRY_AGAIN = 5


NAME_KINDS = frozenset(
    {Kind.GETPWNAM, Kind.GETGRNAM, Kind.INITGROUPS, Kind.GETSPNAM, Kind.ACCOUNT}
)
ID_KINDS = frozenset({Kind.GETPWUID, Kind.GETGRGID})
CURSOR_KINDS = frozenset({Kind.GETPWENT, Kind.GETGRENT})


class WireError(ValueError):
    """A frame or record that does not follow proto/nss-wire.md."""


@dataclass(frozen=True, slots=True)
class Request:
    kind: Kind
    name: bytes = b""
    number: int = 0  # a UID, GID or enumeration cursor

    def log_repr(self) -> str:
        if self.kind in NAME_KINDS:
            return f"{self.kind.name} {self.name!r}"
        if self.kind in ID_KINDS or self.kind in CURSOR_KINDS:
            return f"{self.kind.name} {self.number}"
        return self.kind.name


def encode_string(value: bytes) -> bytes:
    if len(value) > MAX_STRING_BYTES:
        raise WireError(f"string of {len(value)} bytes exceeds {MAX_STRING_BYTES}")
    return _U16.pack(len(value)) + value


def encode_passwd(
    *, name: bytes, uid: int, gid: int, gecos: bytes, home: bytes, shell: bytes
) -> bytes:
    return b"".join(
        (
            _PASSWD_IDS.pack(uid, gid),
            encode_string(name),
            encode_string(b"x"),
            encode_string(gecos),
            encode_string(home),
            encode_string(shell),
        )
    )


def encode_group(*, name: bytes, gid: int, members: Sequence[bytes]) -> bytes:
    parts = [_U32.pack(gid), encode_string(name), encode_string(b"x"), _U32.pack(len(members))]
    parts.extend(encode_string(m) for m in members)
    return b"".join(parts)


def encode_shadow(*, name: bytes, locked: bool) -> bytes:
    # Accounts have no password hash: "*" matches no password, and the "!"
    # prefix is shadow(5)'s convention for a locked account.
    password = b"!*" if locked else b"*"
    return encode_string(name) + encode_string(password) + _SHADOW_DAYS.pack(-1, -1, -1, -1, -1, -1)


def encode_account(
    *, active: bool, home_mode: int, home_root: bytes, skel_dir: bytes, passwd_record: bytes
) -> bytes:
    """An ACCOUNT reply payload: what pam_roster needs to decide and to make the home."""
    return b"".join(
        (
            _ACCOUNT_HEAD.pack(1 if active else 0, home_mode),
            encode_string(home_root),
            encode_string(skel_dir),
            passwd_record,
        )
    )


def encode_gid_list(gids: Iterable[int]) -> bytes:
    gid_list = list(gids)
    return _U32.pack(len(gid_list)) + struct.pack(f"<{len(gid_list)}I", *gid_list)


def encode_page(records: Sequence[bytes | memoryview], next_cursor: int) -> bytes:
    return _PAGE_HEAD.pack(len(records), next_cursor) + b"".join(records)


def encode_reply(status: Status, payload: bytes = b"") -> bytes:
    return HEADER.pack(VERSION, status, len(payload)) + payload


def encode_request(kind: Kind, *, name: bytes = b"", number: int = 0) -> bytes:
    if kind in NAME_KINDS:
        payload = name
    elif kind in ID_KINDS:
        payload = _U32.pack(number)
    elif kind in CURSOR_KINDS:
        payload = _U64.pack(number)
    else:
        payload = b""
    return HEADER.pack(VERSION, kind, len(payload)) + payload


def parse_header(header: bytes) -> tuple[int, int, int]:
    """Returns (version, kind or status, payload_bytes) of an 8-byte header."""
    version, code, length = HEADER.unpack(header)
    return version, code, length


def parse_request(kind_code: int, payload: bytes) -> Request:
    """Checks a request payload against its kind; raises WireError if it is malformed."""
    try:
        kind = Kind(kind_code)
    except ValueError:
        raise WireError(f"unknown request kind {kind_code}") from None
    if kind in NAME_KINDS:
        if not 0 < len(payload) <= MAX_NAME_BYTES or b"\0" in payload:
            raise WireError(f"{kind.name}: name must be 1-{MAX_NAME_BYTES} bytes without NUL")
        return Request(kind, name=payload)
    if kind in ID_KINDS:
        if len(payload) != _U32.size:
            raise WireError(f"{kind.name}: payload must be a u32")
        return Request(kind, number=_U32.unpack(payload)[0])
    if kind in CURSOR_KINDS:
        if len(payload) != _U64.size:
            raise WireError(f"{kind.name}: payload must be a u64 cursor")
        return Request(kind, number=_U64.unpack(payload)[0])
    if payload:
        raise WireError(f"{kind.name}: payload must be empty")
    return Request(kind)


# Decoders: used by the tests, the benchmarks and `rosterctl doctor`; the module
# has its own in C (nss_shim/wire.h).


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, size: int) -> bytes:
        if self._pos + size > len(self._data):
            raise WireError("record is truncated")
        chunk = self._data[self._pos : self._pos + size]
        self._pos += size
        return chunk

    def u32(self) -> int:
        value: int = _U32.unpack(self.take(4))[0]
        return value

    def u64(self) -> int:
        value: int = _U64.unpack(self.take(8))[0]
        return value

    def string(self) -> bytes:
        value = self.take(_U16.unpack(self.take(2))[0])
        if b"\0" in value:
            raise WireError("string contains NUL")
        return value

    def done(self) -> bool:
        return self._pos == len(self._data)


@dataclass(frozen=True)
class PasswdRecord:
    name: bytes
    passwd: bytes
    uid: int
    gid: int
    gecos: bytes
    home: bytes
    shell: bytes

    def line(self) -> str:
        fields = (self.name, self.passwd, str(self.uid).encode(), str(self.gid).encode(),
                  self.gecos, self.home, self.shell)
        return b":".join(fields).decode("utf-8", "replace")


@dataclass(frozen=True)
class GroupRecord:
    name: bytes
    passwd: bytes
    gid: int
    members: tuple[bytes, ...]

    def line(self) -> str:
        fields = (self.name, self.passwd, str(self.gid).encode(), b",".join(self.members))
        return b":".join(fields).decode("utf-8", "replace")


def _read_passwd(reader: _Reader) -> PasswdRecord:
    uid, gid = reader.u32(), reader.u32()
    name, passwd, gecos, home, shell = (reader.string() for _ in range(5))
    return PasswdRecord(name, passwd, uid, gid, gecos, home, shell)


def _read_group(reader: _Reader) -> GroupRecord:
    gid = reader.u32()
    name, passwd = reader.string(), reader.string()
    members = tuple(reader.string() for _ in range(reader.u32()))
    return GroupRecord(name, passwd, gid, members)


def decode_passwd(data: bytes) -> PasswdRecord:
    reader = _Reader(data)
    record = _read_passwd(reader)
    if not reader.done():
        raise WireError("trailing bytes after passwd record")
    return record


def decode_group(data: bytes) -> GroupRecord:
    reader = _Reader(data)
    record = _read_group(reader)
    if not reader.done():
        raise WireError("trailing bytes after group record")
    return record


@dataclass(frozen=True)
class AccountRecord:
    active: bool
    home_mode: int
    home_root: bytes
    skel_dir: bytes
    passwd: PasswdRecord

    def text(self) -> str:
        """The form wire_decode prints (tests/wire_vectors/account-*.expected)."""
        head = (f"active {int(self.active)} home_mode {self.home_mode:04o} "
                f"home_root {self.home_root.decode('utf-8', 'replace')} "
                f"skel_dir {self.skel_dir.decode('utf-8', 'replace')}")
        return f"{head}\n{self.passwd.line()}"


def decode_account(data: bytes) -> AccountRecord:
    reader = _Reader(data)
    active_byte = reader.take(1)[0]
    if active_byte > 1:
        raise WireError(f"active must be 0 or 1, not {active_byte}")
    home_mode = reader.u32()
    if home_mode > 0o7777:
        raise WireError(f"home_mode {home_mode:o} is not a permission mode")
    home_root, skel_dir = reader.string(), reader.string()
    record = _read_passwd(reader)
    if not reader.done():
        raise WireError("trailing bytes after account record")
    return AccountRecord(bool(active_byte), home_mode, home_root, skel_dir, record)


def decode_gid_list(data: bytes) -> list[int]:
    reader = _Reader(data)
    gids = [reader.u32() for _ in range(reader.u32())]
    if not reader.done():
        raise WireError("trailing bytes after gid list")
    return gids


def decode_passwd_page(data: bytes) -> tuple[list[PasswdRecord], int]:
    reader = _Reader(data)
    count, cursor = reader.u32(), reader.u64()
    records = [_read_passwd(reader) for _ in range(count)]
    if not reader.done():
        raise WireError("trailing bytes after passwd page")
    return records, cursor


def decode_group_page(data: bytes) -> tuple[list[GroupRecord], int]:
    reader = _Reader(data)
    count, cursor = reader.u32(), reader.u64()
    records = [_read_group(reader) for _ in range(count)]
    if not reader.done():
        raise WireError("trailing bytes after group page")
    return records, cursor
