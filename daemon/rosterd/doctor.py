"""Checks a host's whole rosterd set-up, one check per step of the guides, each with its fix.

Every path is taken from a `Host` (a root directory, by default /), so tests point
the checks at a fake /etc tree and never at the machine running them.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import ssl
import stat
import sysconfig
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from rosterd import config, http, nss_wire
from rosterd.hostfiles import HostFiles

PASSED: Literal["pass"] = "pass"
FAILED: Literal["fail"] = "fail"
SKIPPED: Literal["skip"] = "skip"
Outcome = Literal["pass", "fail", "skip"]

PING_TIMEOUT_S = 3.0
DISCOVERY_TIMEOUT_S = 5.0
CERT_MIN_VALIDITY = timedelta(days=14)
MODULE_NAMES = ("roster", "pwb")
NSS_DATABASES = ("passwd", "group", "shadow")
# nsswitch.conf(5): a source that answers before ours and may end the lookup.
LOCAL_SOURCES = ("files", "compat", "systemd")
# Services whose PAM stacks let people in; checked when their files exist.
LOGIN_SERVICES = ("sshd", "login", "su")


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Outcome
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Report:
    checks: list[CheckResult]

    @property
    def failed(self) -> bool:
        return any(c.status == FAILED for c in self.checks)

    def plain_text(self) -> str:
        lines = []
        for check in self.checks:
            lines.append(f"[{check.status.upper()}] {check.name}: {check.detail}")
            if check.status == FAILED and check.fix:
                lines.extend(f"       fix: {line}" for line in check.fix.splitlines())
        failures = sum(c.status == FAILED for c in self.checks)
        lines.append(f"{failures} of {len(self.checks)} checks failed" if failures
                     else f"all {len(self.checks)} checks passed or were skipped")
        return "\n".join(lines)


def _multiarch() -> str:
    return str(sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu")


def default_module_dirs() -> tuple[str, ...]:
    """Where glibc finds NSS modules: the multiarch directory (Debian), lib64 (RPM hosts)."""
    return (f"usr/lib/{_multiarch()}", f"lib/{_multiarch()}", "usr/lib64", "lib64", "usr/lib")


@dataclass
class Host:
    """Where the checks look: `root` prefixes the host's own files (/etc, /proc, the library
    directories); paths named in rosterd's config are its own and taken as written."""

    cfg: config.Config
    root: Path = Path("/")
    module_dirs: tuple[str, ...] = field(default_factory=lambda: default_module_dirs())
    admin_status: Callable[[], str] | None = None  # GetStatus over admin.sock; None: not asked

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")


def run_checks(host: Host) -> Report:
    checks = [daemon_answers, nsswitch, module_loads, nscd, pam_account, pam_homes,
              openid_secret, tls_certificate, issuer_discovery, database, collisions]
    return Report([check(host) for check in checks])


# -- the daemon ---------------------------------------------------------------------------------

def ping(socket_path: Path, timeout: float = PING_TIMEOUT_S) -> str:
    """Asks nss.sock for PING; returns the daemon's version, raises OSError or WireError."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(socket_path))
        sock.sendall(nss_wire.encode_request(nss_wire.Kind.PING))
        data = b""
        while len(data) < nss_wire.HEADER_BYTES:
            chunk = sock.recv(4096)
            if not chunk:
                raise nss_wire.WireError("connection closed before the reply")
            data += chunk
        _, status, length = nss_wire.parse_header(data[:nss_wire.HEADER_BYTES])
        while len(data) < nss_wire.HEADER_BYTES + length:
            chunk = sock.recv(4096)
            if not chunk:
                raise nss_wire.WireError("reply cut short")
            data += chunk
    if status != nss_wire.Status.OK:
        raise nss_wire.WireError(f"PING answered status {status}")
    payload = data[nss_wire.HEADER_BYTES:]
    return payload[2:].decode(errors="replace")  # a u16 length, then the version


def daemon_answers(host: Host) -> CheckResult:
    name = "daemon"
    sock = host.cfg.paths.runtime_dir / "nss.sock"
    fix = "systemctl start rosterd   (then: systemctl status rosterd; journalctl -u rosterd)"
    try:
        version = ping(sock)
    except (OSError, nss_wire.WireError) as err:
        return CheckResult(name, FAILED, f"no answer to PING on {sock}: {err}", fix)
    detail = f"rosterd {version} answers lookups on {sock}"
    if host.admin_status is not None:
        try:
            detail += f"; admin API: {host.admin_status()}"
        except Exception as err:  # any refusal: the admin half is down
            return CheckResult(name, FAILED, f"{detail}, but the admin API does not: {err}", fix)
    return CheckResult(name, PASSED, detail)


# -- nsswitch.conf ------------------------------------------------------------------------------

def _nsswitch_lines(text: str) -> dict[str, list[str]]:
    lines: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        database, colon, rest = line.partition(":")
        if colon and database.strip() in NSS_DATABASES:
            lines[database.strip()] = rest.split()
        # nsswitch.conf(5): later lines for the same database are ignored by glibc
    return lines


def _position_problem(words: list[str]) -> str | None:
    """Why a database's sources do not reach rosterd's module, or None when they do."""
    sources = [w for w in words if not w.startswith("[")]
    ours = [s for s in sources if s in MODULE_NAMES]
    if not ours:
        return "does not name roster"
    index = words.index(ours[0])
    before = words[:index]
    # An action like [NOTFOUND=return] after an earlier source ends the lookup there.
    if any(w.startswith("[") and "=return" in w.lower() and "success=return" not in w.lower()
           for w in before):
        return "names roster after an action that ends the lookup ([...=return])"
    if not any(s in LOCAL_SOURCES for s in before if not s.startswith("[")):
        return "names roster before files (local accounts must come first)"
    return None


def nsswitch(host: Host) -> CheckResult:
    name = "nsswitch.conf"
    path = host.path("/etc/nsswitch.conf")
    try:
        lines = _nsswitch_lines(path.read_text())
    except OSError as err:
        return CheckResult(name, FAILED, f"cannot read {path}: {err}",
                           "create /etc/nsswitch.conf with: passwd: files systemd roster")
    problems = []
    for database in NSS_DATABASES:
        words = lines.get(database)
        problem = "is missing" if words is None else _position_problem(words)
        if problem:
            problems.append(f"{database}: {problem}")
    if problems:
        fix = (f"edit {path}: put roster after files (and systemd) on the passwd, group and "
               "shadow lines, e.g.\n  passwd: files systemd roster\n  group:  files systemd "
               "roster\n  shadow: files roster\n(the Debian package does this on install)")
        return CheckResult(name, FAILED, f"{path}: " + "; ".join(problems), fix)
    return CheckResult(name, PASSED, f"{path} names roster on passwd, group and shadow after files")


# -- the module ---------------------------------------------------------------------------------

def module_loads(host: Host) -> CheckResult:
    name = "nss module"
    tried = []
    for directory in host.module_dirs:
        for module in MODULE_NAMES:
            path = host.path(f"/{directory}/libnss_{module}.so.2")
            tried.append(str(path))
            if not path.exists():
                continue
            try:
                lib = ctypes.CDLL(str(path))
                getattr(lib, f"_nss_{module}_getpwnam_r")
            except (OSError, AttributeError) as err:
                return CheckResult(name, FAILED, f"{path} does not load: {err}",
                                   "reinstall it: apt-get install --reinstall rosterd "
                                   "(or dnf reinstall rosterd)")
            return CheckResult(name, PASSED, f"{path} loads and exports _nss_{module}_getpwnam_r")
    return CheckResult(name, FAILED, "libnss_roster.so.2 is in none of " + ", ".join(tried),
                       "apt-get install rosterd (or dnf install rosterd), which installs "
                       f"/usr/lib/{_multiarch()}/libnss_roster.so.2")


# -- nscd ---------------------------------------------------------------------------------------

def _nscd_running(host: Host) -> bool:
    proc = host.path("/proc")
    try:
        entries = list(proc.iterdir())
    except OSError:
        return False
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "nscd":
                return True
        except OSError:
            continue
    return False


def _nscd_caching(text: str) -> list[str]:
    # nscd.conf(5): enable-cache defaults to yes for every service.
    enabled = {"passwd": True, "group": True}
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if len(words) == 3 and words[0] == "enable-cache" and words[1] in enabled:
            enabled[words[1]] = words[2].lower() == "yes"
    return [db for db, on in enabled.items() if on]


def nscd(host: Host) -> CheckResult:
    name = "nscd"
    if not _nscd_running(host):
        return CheckResult(name, PASSED, "nscd is not running, so nothing caches passwd or group")
    conf = host.path("/etc/nscd.conf")
    try:
        caching = _nscd_caching(conf.read_text())
    except FileNotFoundError:
        caching = ["passwd", "group"]
    if caching:
        edits = "\n".join(f"  enable-cache {db} no" for db in caching)
        return CheckResult(
            name, FAILED,
            f"nscd is running and caches {' and '.join(caching)}: rosterd's changes show late",
            f"edit {conf}:\n{edits}\nthen: systemctl restart nscd "
            "(or stop it: systemctl disable --now nscd)")
    return CheckResult(name, PASSED, "nscd is running but caches neither passwd nor group")


# -- PAM ----------------------------------------------------------------------------------------

def _pam_lines(host: Host, service: str, depth: int = 0) -> Iterator[tuple[str, str]]:
    """(type, module) pairs of a pam.d file, following @include, include and substack."""
    path = host.path(f"/etc/pam.d/{service}")
    if depth > 8:
        return
    try:
        text = path.read_text()
    except OSError:
        return
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "@include" and len(words) > 1:
            yield from _pam_lines(host, words[1], depth + 1)
            continue
        kind = words[0].lstrip("-")
        if len(words) < 3:
            continue
        if words[1] in ("include", "substack"):
            yield from ((k, m) for k, m in _pam_lines(host, words[2], depth + 1) if k == kind)
            continue
        control_end = 1
        if words[1].startswith("["):
            while control_end < len(words) and not words[control_end].endswith("]"):
                control_end += 1
        if control_end + 1 < len(words):
            yield kind, os.path.basename(words[control_end + 1])


def _pam_services(host: Host) -> list[str]:
    present = [s for s in LOGIN_SERVICES if host.path(f"/etc/pam.d/{s}").exists()]
    if present:
        return present
    return [s for s in ("common-account", "common-session", "system-auth")
            if host.path(f"/etc/pam.d/{s}").exists()]


def _pam_fix(host: Host, line: str) -> str:
    if host.path("/usr/share/pam-configs/roster").exists() or host.path(
            "/etc/pam.d/common-account").exists():
        return "pam-auth-update --enable roster"
    return (f"add to the stacks (authselect hosts: a custom profile, see "
            f"/usr/share/doc/rosterd/authselect.md):\n  {line}")


def _pam_check(host: Host, name: str, kind: str, modules: tuple[str, ...], fix_line: str,
               does: str) -> CheckResult:
    services = _pam_services(host)
    if not services:
        return CheckResult(name, FAILED, f"no PAM stacks found under {host.path('/etc/pam.d')}",
                           _pam_fix(host, fix_line))
    missing = [s for s in services
               if not any(k == kind and m in modules for k, m in _pam_lines(host, s))]
    if missing:
        return CheckResult(name, FAILED, f"the {kind} stack of {', '.join(missing)} does not "
                           f"{does} ({' or '.join(modules)})", _pam_fix(host, fix_line))
    return CheckResult(name, PASSED, f"the {kind} stacks of {', '.join(services)} {does}")


def pam_account(host: Host) -> CheckResult:
    return _pam_check(
        host, "pam account", "account", ("pam_roster.so",),
        "account [success=ok ignore=ignore perm_denied=bad acct_expired=bad "
        "authinfo_unavail=bad default=bad] pam_roster.so",
        "run pam_roster's account check")


def pam_homes(host: Host) -> CheckResult:
    return _pam_check(host, "pam homes", "session", ("pam_roster.so", "pam_mkhomedir.so"),
                      "session optional pam_roster.so", "create home directories")


# -- OpenID and TLS -----------------------------------------------------------------------------

def openid_secret(host: Host) -> CheckResult:
    name = "openid secret"
    if not host.cfg.openid.issuer:
        return CheckResult(name, SKIPPED, "openid.issuer is not set")
    path = host.cfg.openid.client_secret_file
    fix_perms = f"chown root:rosterd {path} && chmod 0640 {path}"
    try:
        st = path.stat()
        text = path.read_text()
    except OSError as err:
        return CheckResult(name, FAILED, f"cannot read {path}: {err}",
                           f"write client-id=... and client-secret=... lines to {path}, "
                           f"then: {fix_perms}")
    if st.st_mode & (stat.S_IRWXO | stat.S_IWGRP):
        return CheckResult(name, FAILED, f"{path} has mode {stat.S_IMODE(st.st_mode):04o}: other "
                           "users can read or change the client secret", fix_perms)
    keys = {line.split("=", 1)[0].strip() for line in text.splitlines() if "=" in line}
    if not {"client-id", "client-secret"} <= keys:
        return CheckResult(name, FAILED, f"{path} lacks a client-id= or client-secret= line",
                           f"write client-id=... and client-secret=... lines to {path}")
    return CheckResult(name, PASSED,
                       f"{path} holds the client id and secret, mode "
                       f"{stat.S_IMODE(st.st_mode):04o}")


def tls_certificate(host: Host, now: datetime | None = None) -> CheckResult:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    name = "tls certificate"
    cfg = host.cfg
    if not http.listener_needed(cfg):
        return CheckResult(name, SKIPPED, "the HTTPS listener is off (no SCIM, no OpenID)")
    if cfg.http.allow_plain_http:
        return CheckResult(name, SKIPPED, "http.allow_plain_http: TLS ends before rosterd")
    cert_path, key_path = cfg.http.tls_cert, cfg.http.tls_key
    renew = (f"install a current certificate and its key as {cert_path} and {key_path}, e.g.\n"
             f"  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 "
             f"-subj /CN=$(hostname -f) -keyout {key_path} -out {cert_path}\n"
             f"  chown root:rosterd {key_path} && chmod 0640 {key_path} && "
             "systemctl restart rosterd")
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as err:
        return CheckResult(name, FAILED, f"cannot load {cert_path} and {key_path}: {err}", renew)
    now = now or datetime.now(UTC)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if cert.public_key().public_bytes(encoding, public) != key.public_key().public_bytes(
            encoding, public):
        return CheckResult(name, FAILED, f"{key_path} is not the key of {cert_path}", renew)
    not_after = cert.not_valid_after_utc
    if now < cert.not_valid_before_utc:
        return CheckResult(name, FAILED, f"{cert_path} is not valid before "
                           f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC", renew)
    if now >= not_after:
        return CheckResult(name, FAILED, f"{cert_path} expired on {not_after:%Y-%m-%d} UTC", renew)
    if not_after - now < CERT_MIN_VALIDITY:
        return CheckResult(name, FAILED, f"{cert_path} expires on {not_after:%Y-%m-%d} UTC, "
                           f"in less than {CERT_MIN_VALIDITY.days} days", renew)
    return CheckResult(name, PASSED, f"{cert_path} matches its key and is valid until "
                       f"{not_after:%Y-%m-%d} UTC")


def issuer_discovery(host: Host) -> CheckResult:
    name = "openid discovery"
    issuer = host.cfg.openid.issuer
    if not issuer:
        return CheckResult(name, SKIPPED, "openid.issuer is not set")
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    ca = host.cfg.openid.ca_file
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    fix = (f"check that this host reaches {url} (DNS, proxy, firewall: curl -v {url}); for a "
           "private CA set openid.ca_file")
    try:
        with urllib.request.urlopen(url, timeout=DISCOVERY_TIMEOUT_S,  # noqa: S310 - https only
                                    context=context) as reply:
            document = json.loads(reply.read(1024 * 1024))
    except (OSError, ValueError) as err:
        return CheckResult(name, FAILED, f"cannot fetch {url}: {err}", fix)
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        got = document.get("issuer") if isinstance(document, dict) else None
        return CheckResult(name, FAILED, f"{url} names issuer {got!r}, not {issuer!r}",
                           "set openid.issuer to exactly the issuer the document names")
    return CheckResult(name, PASSED, f"{url} answers for {issuer}")


# -- the store ----------------------------------------------------------------------------------

def _db_path(host: Host) -> Path:
    return host.cfg.paths.state_dir / "rosterd.db"


def database(host: Host) -> CheckResult:
    from rosterd.store import integrity_problems

    name = "database"
    path = _db_path(host)
    if not path.exists():
        return CheckResult(name, FAILED, f"{path} does not exist",
                           "start rosterd once (systemctl start rosterd); it creates the database")
    try:
        problems = integrity_problems(path)
    except Exception as err:  # sqlite3 and SQLAlchemy errors alike
        problems = [str(err)]
    if problems:
        return CheckResult(name, FAILED, f"{path} fails PRAGMA integrity_check: "
                           + "; ".join(problems[:5]),
                           f"systemctl stop rosterd; sqlite3 {path} '.recover' | sqlite3 "
                           f"{path}.recovered; restore from backup or move the recovered copy "
                           "into place")
    return CheckResult(name, PASSED, f"{path} passes PRAGMA integrity_check")


def collisions(host: Host) -> CheckResult:
    from rosterd.store import read_names

    name = "collisions"
    path = _db_path(host)
    if not path.exists():
        return CheckResult(name, SKIPPED, f"{path} does not exist yet")
    passwd, group = host.path("/etc/passwd"), host.path("/etc/group")
    files = HostFiles(passwd, group)
    users, groups = read_names(path)
    found = []
    for user_name, uid in users:
        for holder in (files.user_name_holder(user_name), files.uid_holder(uid)):
            if holder:
                found.append(f"user {user_name} (UID {uid}) collides with {holder}")
    for group_name, gid in groups:
        for holder in (files.group_name_holder(group_name), files.gid_holder(gid)):
            if holder:
                found.append(f"group {group_name} (GID {gid}) collides with {holder}")
    if found:
        return CheckResult(name, FAILED, "; ".join(found[:10]),
                           "remove the local account (userdel NAME / groupdel NAME) or the "
                           "rosterd one (rosterctl user delete NAME); the files win lookups "
                           "because they come first in nsswitch.conf")
    return CheckResult(name, PASSED, f"no rosterd user or group shares a name or ID with "
                       f"{passwd} or {group}")
