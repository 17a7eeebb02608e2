"""A long-lived private view of the host for PAM tests: /etc overlaid, NSS and PAM reaching rosterd.

One holder process sits in a new mount namespace (`unshare -m`) for the life of
the view; every command then runs in that namespace through `nsenter`, so a
server started there (sshd) sees the same mounts as the commands that follow.
Inside (TESTING.md, "A private view of /etc"):

- /etc is an overlay whose writes land in a temporary directory; nsswitch.conf
  reads `files roster`, and /etc/ld.so.cache is rebuilt to include build/native,
  so setuid programs (su) and sshd's session, which ignore LD_LIBRARY_PATH,
  load the module;
- /run and /var/log are fresh tmpfs (sshd wants /run/sshd; su and sshd write
  wtmp, btmp and lastlog), and /run/rosterd/nss.sock is a symlink to the test
  daemon's socket: the default path, which setuid programs use whatever
  ROSTERD_NSS_SOCKET says (client.c reads it with secure_getenv);
- /mnt is a tmpfs for files sshd insists are in root-only directories;
- /dev is an overlay too (with /dev/pts and /dev/shm moved back on top), so a
  small receiver can bind /dev/log and keep what the modules send to syslog in
  a file the test reads (`syslog()`): this host runs no syslog daemon.

The host's /etc is never written (tests/conftest.py checks).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parents[2]
NATIVE = REPO / "build" / "native"
PAM_MODULE = NATIVE / "pam_roster.so"
READY_TIMEOUT_S = 10.0

_SETUP = r"""
set -e
mount -t overlay overlay \
    -o "lowerdir=/etc,upperdir=$PAMHOST_DIR/upper,workdir=$PAMHOST_DIR/work" /etc
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -m 0755 /run/sshd /run/rosterd
ln -s "$PAMHOST_SOCKET" /run/rosterd/nss.sock
mount -t tmpfs -o mode=0755 tmpfs /var/log
mount -t tmpfs -o mode=0755 tmpfs /mnt
printf 'passwd: files roster\ngroup: files roster\nshadow: files roster\nhosts: files\n' \
    > /etc/nsswitch.conf
printf 'include /etc/ld.so.conf.d/*.conf\n%s\n' "$PAMHOST_NATIVE" > "$PAMHOST_DIR/ld.so.conf"
ldconfig -X -C /etc/ld.so.cache -f "$PAMHOST_DIR/ld.so.conf"
mkdir "$PAMHOST_DIR/dev-upper" "$PAMHOST_DIR/dev-work"
for m in pts shm; do
    mkdir "$PAMHOST_DIR/dev-$m" && mount --bind "/dev/$m" "$PAMHOST_DIR/dev-$m"
done
mount -t overlay overlay \
    -o "lowerdir=/dev,upperdir=$PAMHOST_DIR/dev-upper,workdir=$PAMHOST_DIR/dev-work" /dev
for m in pts shm; do mount --move "$PAMHOST_DIR/dev-$m" "/dev/$m"; done
"$PAMHOST_PYTHON" -c "$PAMHOST_SYSLOG" /dev/log "$PAMHOST_DIR/syslog" &
while [ ! -S /dev/log ]; do sleep 0.01; done
touch "$PAMHOST_DIR/ready"
exec sleep infinity
"""

# Receives syslog datagrams on /dev/log and appends one line each to a file.
_SYSLOG_RECEIVER = r"""
import os, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)  # as syslog daemons do: every process may log
with open(sys.argv[2], "ab", buffering=0) as out:
    while True:
        out.write(sock.recv(65536).rstrip(b"\0\n") + b"\n")
"""


class PamHost:
    """A mount namespace prepared for PAM; `run` executes a command inside it."""

    def __init__(self, nss_socket: Path | str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pamhost-", dir="/tmp"))
        (self.dir / "upper").mkdir()
        (self.dir / "work").mkdir()
        env = dict(os.environ, PAMHOST_DIR=str(self.dir), PAMHOST_SOCKET=str(nss_socket),
                   PAMHOST_NATIVE=str(NATIVE), PAMHOST_PYTHON=sys.executable,
                   PAMHOST_SYSLOG=_SYSLOG_RECEIVER)
        self._holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _SETUP],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not (self.dir / "ready").exists():
            if self._holder.poll() is not None or time.monotonic() > deadline:
                err = self._holder.stderr.read().decode() if self._holder.stderr else ""
                self.close()
                raise RuntimeError(f"the PAM test namespace did not come up: {err}")
            time.sleep(0.02)

    @property
    def pid(self) -> int:
        return self._holder.pid

    def _nsenter(self, argv: Sequence[str]) -> list[str]:
        return ["nsenter", f"--mount=/proc/{self.pid}/ns/mnt", "--", *argv]

    def run(self, argv: Sequence[str], *, input: str | None = None, timeout: float = 60,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full_env = dict(os.environ)
        full_env.update(env or {})
        return subprocess.run(self._nsenter(argv), input=input, capture_output=True, text=True,
                              timeout=timeout, env=full_env, check=False)

    def start(self, argv: Sequence[str], *, log: Path) -> subprocess.Popen[bytes]:
        """Starts a long-running process (a server) inside the namespace; the caller stops it."""
        with open(log, "ab") as out:
            return subprocess.Popen(self._nsenter(argv), stdout=out, stderr=out,
                                    stdin=subprocess.DEVNULL)

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        """Writes a file at a path as the namespace sees it (into the overlay for /etc)."""
        result = self.run(["sh", "-c", 'umask 022; mkdir -p "$(dirname "$1")" && cat > "$1" '
                           '&& chmod "$2" "$1"', "sh", path, f"{mode:o}"], input=text)
        assert result.returncode == 0, result.stderr

    def enable_profile(self, profile: Path) -> None:
        """Installs pam_roster as a package would and runs pam-auth-update with its profile.

        /usr/share/pam-configs, /var/lib/pam (pam-auth-update's memory) and the
        PAM module directory get overlays of their own first, so the profile and
        the module land only in this namespace and the stack it writes into the
        overlaid /etc/pam.d/common-* is exactly what a host would get.
        """
        script = r'''
            set -e
            modules=$(dirname "$(find /usr/lib /lib -name pam_unix.so -path '*/security/*' \
                                  -print -quit)")
            for d in /usr/share/pam-configs /var/lib/pam "$modules"; do
                layer="$PAMHOST_DIR/layer$(echo "$d" | tr / _)"
                mkdir -p "$layer/upper" "$layer/work"
                mount -t overlay overlay \
                    -o "lowerdir=$d,upperdir=$layer/upper,workdir=$layer/work" "$d"
            done
            cp "$1" /usr/share/pam-configs/roster
            cp "$2" "$modules/pam_roster.so"
            DEBIAN_FRONTEND=noninteractive pam-auth-update --package --enable roster
        '''
        result = self.run(["sh", "-c", script, "sh", str(profile), str(PAM_MODULE)],
                          env={"PAMHOST_DIR": str(self.dir)})
        assert result.returncode == 0, result.stdout + result.stderr

    def syslog(self) -> str:
        """Everything sent to /dev/log in the namespace so far."""
        path = self.dir / "syslog"
        return path.read_text(errors="replace") if path.exists() else ""

    def logged(self, text: str, *, times: int = 1, timeout: float = 5.0) -> bool:
        """Whether `text` reached syslog `times` times, waiting up to `timeout` for it:
        the receiver writes each datagram a moment after the module sent it."""
        deadline = time.monotonic() + timeout
        while self.syslog().count(text) < times:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self) -> None:
        if self._holder.poll() is None:
            os.killpg(self._holder.pid, signal.SIGKILL)
            self._holder.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PamHost:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def service_file(*, account: str = "", session: str = "") -> str:
    """A pam.d stack whose auth is pam_permit and whose account and session run pam_roster."""
    return (
        "auth     required  pam_permit.so\n"
        f"account  [success=ok ignore=ignore default=bad]  {PAM_MODULE} {account}\n"
        "account  required  pam_permit.so\n"
        f"session  required  {PAM_MODULE} {session}\n"
        "session  required  pam_permit.so\n"
    )
