"""The NSS sources under comparison, each started in its own PrivateView and stopped after.

Each is a context manager yielding a RunningSource: the view to run
lookup_bench in, the environment it needs, and the daemon's PID (for its
memory). Leaving the block stops every process in the view, even on error.
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

NSSWITCH = "passwd: files {extra}\ngroup: files {extra}\nshadow: files\nhosts: files\n"

# Debian's nscd.conf, except: no persistent cache file (each run starts cold
# and warms it on purpose), TTLs longer than the run so no entry expires while
# it is measured, and room for every key the benchmark warms.
NSCD_CONF = "".join(
    f"enable-cache {db} yes\npositive-time-to-live {db} 3600\nnegative-time-to-live {db} 3600\n"
    f"suggested-size {db} 10007\ncheck-files {db} yes\npersistent {db} no\nshared {db} yes\n"
    f"max-db-size {db} 268435456\nauto-propagate {db} yes\n"
    for db in ("passwd", "group")
) + "enable-cache hosts no\nenable-cache services no\nenable-cache netgroup no\n"


@dataclass
class RunningSource:
    """An NSS source ready to answer lookups inside `view`."""

    name: str
    view: PrivateView
    env: dict[str, str] = field(default_factory=dict)
    daemon_pid: int | None = None


def _wait_until(ready: Callable[[], bool], daemon: subprocess.Popen[bytes], what: str,
                log: Path, timeout_s: float = DAEMON_READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if daemon.poll() is not None:
            raise RuntimeError(f"{what} exited with {daemon.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready within {timeout_s:.0f} s:\n{_tail(log)}")
        time.sleep(0.05)


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else ""


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _files_etc(population: Population, extra: str = "") -> dict[str, str]:
    """nsswitch.conf plus the host's own passwd and group with the population appended."""
    host_passwd = Path("/etc/passwd").read_text()
    host_group = Path("/etc/group").read_text()
    return {
        "nsswitch.conf": NSSWITCH.format(extra=extra),
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
        yield RunningSource("rosterd", view, env, daemon.pid)
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
def nscd(work: Path, population: Population) -> Iterator[RunningSource]:
    """nscd caching libnss_files; glibc asks it first, through its shared memory map."""
    etc = _files_etc(population) | {"nscd.conf": NSCD_CONF}
    view = PrivateView(work / "view", etc, tmpfs=("/run", "/var/cache/nscd"))
    log = work / "nscd.log"
    try:
        view.start()
        view.run(["mkdir", "-p", "/run/nscd"])
        daemon = view.spawn(["/usr/sbin/nscd", "--foreground"], log)
        socket_path = view.inside("/run/nscd/socket")
        _wait_until(lambda: _accepts(socket_path), daemon, "nscd", log)
        yield RunningSource("nscd", view, daemon_pid=daemon.pid)
    finally:
        view.stop()
