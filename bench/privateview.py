"""A private view of this host for one NSS source: its own mount namespace with /etc overlaid.

The namespace is held open by one idle process; commands and daemons enter it
with nsenter. Files for /etc (nsswitch.conf, passwd copies, daemon configs) go
into the overlay's upper layer before it is mounted, so nothing ever writes
through to the host's /etc (the recipe of /work/shared/TESTING.md). Other
directories can be overlaid too, with extra read-only layers on top of the
host's (a package unpacked but not installed), writes again going to a
temporary upper layer. /run and any other directories named get a fresh tmpfs,
which also keeps glibc away from a host nscd's socket in /run/nscd.
"""

from __future__ import annotations

import os
import select
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

READY_TIMEOUT_S = 10.0
STOP_GRACE_S = 5.0



class PrivateView:
    """One mount namespace: start() it, run or spawn commands in it, stop() it."""

    def __init__(self, root: Path, etc_files: Mapping[str, str], tmpfs: Sequence[str] = ("/run",),
                 etc_modes: Mapping[str, int] | None = None,
                 layers: Mapping[str, Sequence[Path]] | None = None) -> None:
        """`layers` maps a directory to overlay (besides /etc) to read-only layers put above it."""
        self.root = root
        self._etc_files = etc_files
        self._etc_modes = etc_modes or {}
        self._tmpfs = tmpfs
        self._layers: dict[str, Sequence[Path]] = {"/etc": (), **(layers or {})}
        self._holder: subprocess.Popen[bytes] | None = None
        self._spawned: list[subprocess.Popen[bytes]] = []

    def _holder_script(self) -> str:
        """The namespace's first process: mounts, reports, then idles until killed."""
        lines = ["set -e"]
        for index, (target, extra) in enumerate(self._layers.items()):
            upper, work = self.root / f"upper{index}", self.root / f"work{index}"
            upper.mkdir(parents=True, exist_ok=True)
            work.mkdir(parents=True)
            lower = ":".join([*map(str, extra), target])
            options = shlex.quote(f"lowerdir={lower},upperdir={upper},workdir={work}")
            lines.append(f"mount -t overlay overlay -o {options} {shlex.quote(target)}")
        lines += [f"mount -t tmpfs -o mode=0755 tmpfs {shlex.quote(target)}"
                  for target in self._tmpfs]
        lines += ["echo ready", "exec sleep infinity"]
        return "\n".join(lines)

    def start(self) -> None:
        etc_upper = self.root / "upper0"  # /etc is the first layer
        for relative, text in self._etc_files.items():
            path = etc_upper / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            os.chmod(path, self._etc_modes.get(relative, 0o644))
        self._holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--",
             "sh", "-c", self._holder_script()],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        assert self._holder.stdout is not None and self._holder.stderr is not None
        readable, _, _ = select.select([self._holder.stdout], [], [], READY_TIMEOUT_S)
        line = self._holder.stdout.readline() if readable else b""
        if line.strip() != b"ready":
            self._holder.kill()
            _, err = self._holder.communicate()
            raise RuntimeError(f"cannot set up the mount namespace: {err.decode(errors='replace')}")

    @property
    def holder_pid(self) -> int:
        assert self._holder is not None, "start() first"
        return self._holder.pid

    def enter(self, argv: Sequence[str]) -> list[str]:
        """The command line that runs argv inside this namespace."""
        return ["nsenter", f"--target={self.holder_pid}", "--mount", "--", *argv]

    def inside(self, path: str) -> Path:
        """A host path that reaches `path` as this namespace sees it (/proc/PID/root)."""
        return Path(f"/proc/{self.holder_pid}/root") / path.lstrip("/")

    def run(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.enter(argv), env=_environ(env), capture_output=True,
                              text=True, timeout=timeout, check=False)

    def spawn(self, argv: Sequence[str], log: Path,
              env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Starts a daemon in the namespace; nsenter execs it, so the PID is the daemon's."""
        with open(log, "ab") as out:
            process = subprocess.Popen(self.enter(argv), env=_environ(env),
                                       stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        self._spawned.append(process)
        return process

    def daemon_pids(self) -> list[int]:
        """Every process running in the namespace but its idle holder."""
        return _namespace_members(self.holder_pid)[:-1]

    def stop(self) -> None:
        """Ends every process in the namespace, by PID, then the namespace itself."""
        if self._holder is None:
            return
        members = _namespace_members(self.holder_pid)
        _signal_all(members, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and any(_alive(pid) for pid in members):
            for process in self._spawned:
                process.poll()
            time.sleep(0.05)
        _signal_all([pid for pid in members if _alive(pid)], signal.SIGKILL)
        for process in [*self._spawned, self._holder]:
            if process.poll() is None:
                process.kill()
            process.wait()
        for pipe in (self._holder.stdout, self._holder.stderr):
            if pipe is not None:
                pipe.close()
        self._holder = None


def _environ(extra: Mapping[str, str] | None) -> dict[str, str]:
    return {**os.environ, **(extra or {})}


def _namespace_members(holder_pid: int) -> list[int]:
    """Every process in the holder's mount namespace: only ever ones this view started.

    The holder is listed last so daemons get their SIGTERM first.
    """
    try:
        ours = os.readlink(f"/proc/{holder_pid}/ns/mnt")
    except OSError:
        return []
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (holder_pid, os.getpid()):
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/mnt") == ours:
                members.append(int(entry))
        except OSError:
            continue  # exited meanwhile, or a kernel thread
    return [*members, holder_pid]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait() remains


def _signal_all(pids: Sequence[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
