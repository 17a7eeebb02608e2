"""The NSS sources under comparison, each started in its own PrivateView and stopped after.

Each is a context manager yielding a RunningSource: the view to run
lookup_bench in and the environment it needs. Leaving the block stops every
process in the view, even on error.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from population import Population
from privateview import PrivateView

REPO = Path(__file__).resolve().parent.parent
NATIVE_DIR = REPO / "build" / "native"
VENV_BIN = Path(sys.executable).parent
DAEMON_READY_TIMEOUT_S = 180.0  # rosterd loads 100,000 users into its index before it listens
SSSD_PROBE_INTERVAL_S = 0.25

NSSWITCH = "passwd: files {extra}\ngroup: files {extra}\nshadow: files\nhosts: files\n"



def _nscd_conf(shared: bool) -> str:
    """Debian's nscd.conf, except as below.

    No persistent cache file (each run starts cold and warms it on purpose),
    TTLs longer than the run so no entry expires while it is measured, room
    for every key the benchmark warms. `shared` is Debian's default: clients
    read hits straight from nscd's memory map; without it each lookup is a
    request over nscd's socket.
    """
    return "".join(
        f"enable-cache {db} yes\npositive-time-to-live {db} 3600\n"
        f"negative-time-to-live {db} 3600\nsuggested-size {db} 10007\ncheck-files {db} yes\n"
        f"persistent {db} no\nshared {db} {'yes' if shared else 'no'}\n"
        f"max-db-size {db} 268435456\nauto-propagate {db} yes\n"
        for db in ("passwd", "group")
    ) + "enable-cache hosts no\nenable-cache services no\nenable-cache netgroup no\n"


def _sssd_conf(memcache: bool) -> str:
    """SSSD's files provider over the population's own passwd and group files.

    Negative entries are kept as long as nscd's here. memcache_timeout = 0
    turns off SSSD's memory-mapped cache (sssd.conf(5)), leaving its socket path.
    """
    memcache_line = "" if memcache else "memcache_timeout = 0\n"
    return (
        "[sssd]\nservices = nss\ndomains = bench\n\n"
        f"[nss]\nentry_negative_timeout = 3600\n{memcache_line}\n"
        "[domain/bench]\nid_provider = files\n"
        "passwd_files = /etc/bench-passwd\ngroup_files = /etc/bench-group\n"
    )


@dataclass
class RunningSource:
    """An NSS source ready to answer lookups inside `view`."""

    name: str
    view: PrivateView
    env: dict[str, str] = field(default_factory=dict)


def _wait_until(ready: Callable[[], bool], daemon: subprocess.Popen[bytes], what: str,
                log: Path, timeout_s: float = DAEMON_READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if daemon.poll() is not None:
            raise RuntimeError(f"{what} exited with {daemon.returncode}; {_last_line(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready within {timeout_s:.0f} s; "
                               f"{_last_line(log)}")
        time.sleep(0.05)


def _last_line(log: Path) -> str:
    """The daemon's last words (the whole log is printed to stderr as well)."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    sys.stderr.write("".join(f"  {log.name}: {line}\n" for line in lines[-30:]))
    return f"its log ends: {lines[-1]}" if lines else "its log is empty"


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _files_etc(population: Population) -> dict[str, str]:
    """nsswitch.conf plus the host's own passwd and group with the population appended."""
    host_passwd = Path("/etc/passwd").read_text()
    host_group = Path("/etc/group").read_text()
    return {
        "nsswitch.conf": NSSWITCH.format(extra=""),
        "passwd": host_passwd + "\n".join(population.passwd_lines) + "\n",
        "group": host_group + "\n".join(population.group_lines) + "\n",
    }


@contextmanager
def rosterd(work: Path, config_path: Path, nss_socket: Path) -> Iterator[RunningSource]:
    """rosterd on an already seeded state dir, behind `passwd: files roster`."""
    view = PrivateView(work / "view", {"nsswitch.conf": NSSWITCH.format(extra="roster")})
    log = work / "rosterd.log"
    try:
        view.start()
        daemon = view.spawn([str(VENV_BIN / "rosterd"), "--config", str(config_path)], log)
        # The index is loaded before nss.sock is bound, so a connect means ready.
        _wait_until(lambda: _accepts(nss_socket), daemon, "rosterd", log)
        env = {"LD_LIBRARY_PATH": str(NATIVE_DIR), "ROSTERD_NSS_SOCKET": str(nss_socket)}
        yield RunningSource("rosterd", view, env)
    finally:
        view.stop()


@contextmanager
def files(work: Path, population: Population) -> Iterator[RunningSource]:
    """glibc's libnss_files reading passwd and group with the population appended."""
    view = PrivateView(work / "view", _files_etc(population))
    try:
        view.start()
        yield RunningSource("files", view)
    finally:
        view.stop()


@contextmanager
def nscd(work: Path, population: Population, *, shared: bool) -> Iterator[RunningSource]:
    """nscd caching libnss_files; glibc asks it before any module in nsswitch.conf."""
    etc = _files_etc(population) | {"nscd.conf": _nscd_conf(shared)}
    view = PrivateView(work / "view", etc, tmpfs=("/run", "/var/cache/nscd"))
    log = work / "nscd.log"
    try:
        view.start()
        view.run(["mkdir", "-p", "/run/nscd"])
        daemon = view.spawn(["/usr/sbin/nscd", "--foreground"], log)
        socket_path = view.inside("/run/nscd/socket")
        _wait_until(lambda: _accepts(socket_path), daemon, "nscd", log)
        yield RunningSource("nscd" if shared else "nscd-socket", view)
    finally:
        view.stop()


@dataclass(frozen=True)
class SssdPackage:
    """Where SSSD's files are: `root` as unpacked by debs.unpacked, or None when installed."""

    root: Path | None


@contextmanager
def sssd(work: Path, population: Population, package: SssdPackage, *,
         memcache: bool) -> Iterator[RunningSource]:
    """SSSD (`passwd: files sss`) with the population only in its files provider's own files."""
    package_root = package.root
    etc = {
        "nsswitch.conf": NSSWITCH.format(extra="sss"),
        "bench-passwd": "\n".join(population.passwd_lines) + "\n",
        "bench-group": "\n".join(population.group_lines) + "\n",
        "sssd/sssd.conf": _sssd_conf(memcache),
    }
    layers = {"/var/lib": [package_root / "var/lib"] if package_root else []}
    if package_root:
        layers["/usr"] = [package_root / "usr"]
    view = PrivateView(work / "view", etc, tmpfs=("/run", "/var/log"),
                       etc_modes={"sssd/sssd.conf": 0o600}, layers=layers)
    log = work / "sssd.log"
    # The files provider answers only once it has imported both files, and it
    # caches the "not found" it gives before then, for entry_negative_timeout.
    # So each probe asks for another user private group: groups getgrnam is
    # never timed on (those are the shared groups).
    probes = iter([line.split(":", 1)[0] for line in reversed(population.passwd_lines)])

    def imported() -> bool:
        time.sleep(SSSD_PROBE_INTERVAL_S)
        return view.run(["getent", "group", next(probes)]).returncode == 0

    try:
        view.start()
        view.run(["mkdir", "-p", "/var/log/sssd", "/var/lib/sss/db", "/var/lib/sss/mc",
                  "/var/lib/sss/pipes/private"])
        daemon = view.spawn(["/usr/sbin/sssd", "--interactive", "--logger=stderr"], log)
        _wait_until(imported, daemon, "sssd", log)
        yield RunningSource("sssd" if memcache else "sssd-socket", view)
    finally:
        view.stop()
