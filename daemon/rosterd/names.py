"""Validates user and group names, homes and shells, and sanitises free text for passwd lines."""

from __future__ import annotations

import logging
import posixpath
import re
import unicodedata
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Literal

from rosterd.errors import InvalidName, InvalidValue

log = logging.getLogger(__name__)

DEFAULT_MAX_TEXT_BYTES = 255
MAX_PATH_BYTES = 4095  # PATH_MAX (4096) less the terminating NUL
MAX_SUFFIX_TRIES = 10_000

# The portable subset of what shadow-utils' useradd accepts (useradd(8), "CAVEATS"):
# POSIX's portable filename characters, lower case only, never a leading '-' or '.'.
_NAME = re.compile(r"[a-z_][a-z0-9_.-]*")
_NAME_CHARS = re.compile(r"[a-z0-9_.-]")
_SHELL = re.compile(r"/[A-Za-z0-9_./+-]*")

# Names of system accounts and groups on Debian, Ubuntu, Fedora and Arch (base-passwd's
# README, Fedora's setup package uidgid file, systemd's sysusers.d), plus names that
# read as privileged. A person named so would either clash with the host or look like
# it; either way they get another name.
RESERVED_NAMES: frozenset[str] = frozenset("""
    root daemon bin sys sync games man lp mail news uucp proxy www-data backup list irc
    gnats nobody nogroup sshd messagebus adm wheel sudo sudoers staff users admin
    administrator operator shadow utmp tty disk kmem dialout fax voice cdrom floppy tape
    audio dip video plugdev netdev src sasl scanner lpadmin input kvm render sgx crontab
    ssh _apt systemd-journal systemd-network systemd-resolve systemd-timesync
    systemd-coredump polkitd avahi colord dnsmasq ftp halt shutdown postfix postdrop
    ntp chrony uuidd tss rtkit pulse geoclue lightdm gdm saned usbmux landscape pollinate
    syslog lxd docker libvirt libvirt-qemu qemu tcpdump mysql postgres redis nginx
    apache httpd named bind dbus polkit rpc rpcuser nfsnobody mlocate locate
    ssl-cert nixbld rosterd
""".split())
RESERVED_PREFIXES: tuple[str, ...] = ("systemd-",)

# Characters that must never reach a passwd or group line, or that make text lie
# about itself on a terminal: ':' and ',' separate fields and GECOS subfields
# (passwd(5)); line and paragraph separators; the bidirectional overrides of
# Unicode TR #9 (the "Trojan Source" trick); the byte-order mark.
_FORBIDDEN_IN_TEXT = frozenset(":,\u2028\u2029\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                               "\u2066\u2067\u2068\u2069\ufeff")


def shown(value: str, limit: int = 40) -> str:
    """A repr of a user-supplied value, short enough for one message line."""
    if len(value) > limit:
        return repr(value[:limit]) + "..."
    return repr(value)


def check_name(value: str, *, max_length: int, what: str = "name") -> str:
    """Returns `value` if it is a valid user or group name; raises InvalidName saying why."""
    start = f"{what} {shown(value)} is not valid: "
    rule = "names use a-z, 0-9, '_', '.' and '-', and start with a letter or '_'"
    if value == "":
        raise InvalidName(f"{what} is empty: {rule}")
    if len(value) > max_length:
        raise InvalidName(
            f"{start}names are at most {max_length} characters (this one has {len(value)}; "
            "provisioning.max_name_length sets the limit)")
    if value in (".", ".."):
        raise InvalidName(f"{start}'.' and '..' name directories; {rule}")
    if value.isdigit():
        raise InvalidName(
            f"{start}a name of digits only would be read as a UID or GID by chown and ls; "
            "add a letter")
    lowered = value.lower()
    if lowered != value and _NAME.fullmatch(lowered):
        raise InvalidName(f"{start}names must be lower case (try {lowered!r})")
    if not _NAME.fullmatch(value):
        bad = next((c for c in value[1:] if not _NAME_CHARS.fullmatch(c)), None)
        if bad is not None:
            raise InvalidName(f"{start}{bad!r} is not allowed; {rule}")
        raise InvalidName(f"{start}it may not start with {value[0]!r}; {rule}")
    if value.endswith("."):
        raise InvalidName(f"{start}names may not end with '.'")
    if value in RESERVED_NAMES:
        raise InvalidName(
            f"{start}{value!r} is reserved for the system; choose another name")
    for prefix in RESERVED_PREFIXES:
        if value.startswith(prefix):
            raise InvalidName(
                f"{start}names starting with {prefix!r} are reserved for system accounts; "
                "choose another name")
    return value


def is_valid_name(value: str, *, max_length: int) -> bool:
    try:
        check_name(value, max_length=max_length)
    except InvalidName:
        return False
    return True


def _truncate_utf8(text: str, max_bytes: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    # Cut on a character boundary, then drop combining marks left without their base.
    cut = encoded[:max_bytes].decode("utf-8", errors="ignore")
    return cut.rstrip()


def sanitize_text(value: str | bytes, *, max_bytes: int = DEFAULT_MAX_TEXT_BYTES) -> str:
    """Makes free text from a person or an identity provider safe for a passwd or group line.

    Control characters (C0, DEL, C1), line and paragraph separators, ':' and ','
    and bidirectional overrides become spaces; invalid UTF-8 and lone surrogates
    are dropped; runs of whitespace collapse to one space; the result is cut to
    `max_bytes` of UTF-8 on a character boundary. Never raises.
    """
    if isinstance(value, bytes):
        text = value.decode("utf-8", errors="ignore")
    else:
        text = value.encode("utf-8", errors="ignore").decode("utf-8")  # drops lone surrogates
    text = unicodedata.normalize("NFC", text)
    cleaned = []
    for char in text:
        category = unicodedata.category(char)
        if char in _FORBIDDEN_IN_TEXT or category in ("Cc", "Zl", "Zp", "Cs") or char.isspace():
            cleaned.append(" ")
        else:
            cleaned.append(char)
    collapsed = " ".join("".join(cleaned).split())
    return _truncate_utf8(collapsed, max_bytes)


def sanitize_gecos(full_name: str | bytes) -> str:
    """The GECOS field for a full name (passwd(5): commas would split it into subfields)."""
    return sanitize_text(full_name)


def check_home(value: str, *, home_root: PurePosixPath | str) -> str:
    """Returns the normalised home directory; it must be absolute and lie under home_root."""
    start = f"home directory {shown(value)} is not valid: "
    if not value.startswith("/"):
        raise InvalidValue(f"{start}it must be an absolute path such as /home/alice")
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") or c.isspace() for c in value):
        raise InvalidValue(f"{start}it may not contain spaces or control characters")
    if ":" in value or "," in value:
        raise InvalidValue(f"{start}it may not contain ':' or ',' (they separate passwd fields)")
    if ".." in value.split("/"):
        raise InvalidValue(f"{start}it may not contain '..'")
    if len(value.encode("utf-8", errors="replace")) > MAX_PATH_BYTES:
        raise InvalidValue(f"{start}it is longer than {MAX_PATH_BYTES} bytes")
    normal = posixpath.normpath(value)
    if normal.startswith("//"):
        normal = "/" + normal.lstrip("/")
    root = PurePosixPath(posixpath.normpath(str(home_root)))
    path = PurePosixPath(normal)
    if path == root or root not in path.parents:
        raise InvalidValue(
            f"{start}it must lie under {root} (provisioning.home_root), such as {root}/alice")
    return normal


def check_shell(value: str) -> str:
    """Returns `value` if it is an absolute path of safe characters; raises InvalidValue."""
    start = f"shell {shown(value)} is not valid: "
    if not value.startswith("/"):
        raise InvalidValue(f"{start}it must be an absolute path such as /bin/bash")
    if not _SHELL.fullmatch(value) or ".." in value.split("/"):
        raise InvalidValue(
            f"{start}it may hold only letters, digits and _ . / + - (no '..' component)")
    if value.endswith("/"):
        raise InvalidValue(f"{start}it names a directory, not a program")
    if len(value) > MAX_PATH_BYTES:
        raise InvalidValue(f"{start}it is longer than {MAX_PATH_BYTES} bytes")
    return value


def check_id(value: int, *, what: str) -> int:
    """Returns an explicit UID or GID if it lies in 1..4294967294; raises InvalidValue."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(f"{what} must be a whole number, not {value!r}")
    if not 1 <= value <= 4294967294:
        raise InvalidValue(
            f"{what} {value} is out of range: {what}s run from 1 to 4294967294 "
            "(0 is root; 4294967295 means 'no ID' to the kernel)")
    return value


def _fold(value: str) -> str:
    """Lower case ASCII where possible: 'Zoë Ångström' becomes 'zoe angstrom'."""
    decomposed = unicodedata.normalize("NFKD", value.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def derive_login_name(
    value: str,
    *,
    rule: Literal["whole", "local-part"] = "whole",
    max_length: int,
    taken: Callable[[str], bool],
    digit_prefix: str = "u",
) -> str:
    """Derives a valid, free POSIX name from an identity provider's value, deterministically.

    Steps: with rule "local-part", keep what precedes the last '@' (if any); case-fold and
    fold accents to ASCII (NFKD, combining marks dropped); every character outside
    a-z 0-9 _ . - becomes '_'; a run of '_', '.', '-' shrinks to its first
    character; separators at either end are dropped; a name starting with a digit
    gets `digit_prefix` ('u' for users, as '_' would read as a system account);
    the name is cut to `max_length`. A name that is reserved, or for which
    `taken(name)` is true, gets the first free suffix -2, -3, ... (cutting the
    stem so the whole stays within `max_length`): a new person never merges into
    an existing account. Raises InvalidName when nothing valid can be derived.
    """
    source = value.strip()
    if rule not in ("whole", "local-part"):
        raise InvalidValue(f"login name rule {rule!r} is unknown; use 'whole' or 'local-part'")
    if rule == "local-part" and "@" in source:
        source = source.rpartition("@")[0]
    folded = _fold(source)
    replaced = "".join(c if _NAME_CHARS.fullmatch(c) else "_" for c in folded)
    collapsed = re.sub(r"([_.-])[_.-]+", r"\1", replaced).strip("_.-")
    if not any(c.isalnum() for c in collapsed):
        raise InvalidName(
            f"no valid name can be derived from {shown(value)}: it has no letters or digits "
            "that fit a POSIX name (a-z, 0-9)")
    if collapsed[0].isdigit():
        collapsed = digit_prefix + collapsed
    stem = collapsed[:max_length].rstrip("_.-")
    for attempt in range(1, MAX_SUFFIX_TRIES + 1):
        if attempt == 1:
            candidate = stem
        else:
            suffix = f"-{attempt}"
            if len(suffix) >= max_length:
                break
            candidate = stem[: max_length - len(suffix)].rstrip("_.-") + suffix
        if is_valid_name(candidate, max_length=max_length) and not taken(candidate):
            if candidate != stem:
                log.info("derived name %r was taken; using %r", stem, candidate)
            return candidate
    raise InvalidName(
        f"no free name can be derived from {shown(value)}: {stem!r} and its numbered "
        f"variants are taken or reserved")
