"""Real login consumers of pam_roster: OpenSSH's sshd and su, with the stack pam-auth-update writes.

Each test installs packaging/pam-configs/roster with pam-auth-update in a
private namespace (tests/helpers/pamhost.py), so the host's own sshd, su and
su-l files run unchanged, through common-account and common-session, exactly as
on a Debian or Ubuntu host with the package installed.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import processes
from tests.helpers.daemon import Rosterd, free_port
from tests.helpers.pamhost import NATIVE, PamHost, service_file
from tests.helpers.scim import POSIX, USER, scim_session

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "packaging" / "pam-configs" / "roster"
SSHD = "/usr/sbin/sshd"  # sshd insists on an absolute path (it re-executes itself)
DEACTIVATED = "Your account has been deactivated by your organisation; ask your administrator."
START_TIMEOUT_S = 10.0


@pytest.fixture(scope="module", autouse=True)
def _built() -> None:
    subprocess.run(["make", "-s", "-C", str(REPO / "pam"), f"OUT={NATIVE}"],
                   check=True, capture_output=True, timeout=300)


@pytest.fixture
def daemon(rosterd: Rosterd) -> Rosterd:
    # The daemon's temporary root is 0700; a person must reach their home in it.
    rosterd.root.chmod(0o755)
    return rosterd


@pytest.fixture
def host(daemon: Rosterd) -> Iterator[PamHost]:
    with PamHost(daemon.nss_socket) as view:
        view.enable_profile(PROFILE)
        yield view


def test_the_profile_adds_one_account_and_one_session_line_after_the_primary_block(
    host: PamHost,
) -> None:
    account = host.run(["cat", "/etc/pam.d/common-account"]).stdout
    session = host.run(["cat", "/etc/pam.d/common-session"]).stdout
    account_lines = [line for line in account.splitlines() if line.startswith("account")]
    assert account_lines[-1].split() == [
        "account", "[success=ok", "ignore=ignore", "perm_denied=bad", "acct_expired=bad",
        "authinfo_unavail=bad", "default=bad]", "pam_roster.so"]
    assert account_lines[-2].split() == ["account", "required", "pam_permit.so"]
    assert "optional\tpam_roster.so" in session


def test_su_makes_the_home_and_refuses_a_deactivated_user(daemon: Rosterd,
                                                         host: PamHost) -> None:
    daemon.ctl("user", "add", "alice")
    home = daemon.home_root / "alice"

    login = host.run(["su", "-", "alice", "-c", "id; pwd"])  # PAM service su-l

    assert login.returncode == 0, login.stderr
    assert login.stdout.splitlines() == ["uid=20000(alice) gid=20000(alice) groups=20000(alice)",
                                         str(home)]
    assert home.stat().st_uid == 20000 and (home / ".bashrc").is_file()  # from /etc/skel
    plain = host.run(["su", "alice", "-c", "pwd"])  # PAM service su
    assert plain.returncode == 0, plain.stderr

    daemon.ctl("user", "lock", "alice")
    for argv in (["su", "-", "alice", "-c", "id"], ["su", "alice", "-c", "id"]):
        refused = host.run(argv)
        assert refused.returncode != 0
        assert refused.stdout == ""
        assert DEACTIVATED in refused.stderr
    assert host.logged("refused alice: the account is deactivated", times=2)


# --- sshd --------------------------------------------------------------------------------


class Sshd:
    def __init__(self, host: PamHost, workdir: Path) -> None:
        self.port = free_port()
        self.key = workdir / "id_ed25519"
        host_key = workdir / "host_ed25519"
        for path in (self.key, host_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                           check=True, capture_output=True)
        config = workdir / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
            "UsePAM yes\nPidFile none\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            # The home does not exist before the first login, so the keys live in /etc.
            "AuthorizedKeysFile /etc/ssh/authorized_keys/%u\n"
            "LogLevel VERBOSE\n"
        )
        self.log = workdir / "sshd.log"
        self._host = host
        self.process = host.start([SSHD, "-D", "-e", "-f", str(config)], log=self.log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sshd did not start:\n{self.log.read_text()}") from None
                time.sleep(0.05)

    def authorize(self, user: str) -> None:
        public = self.key.with_suffix(".pub").read_text()
        self._host.write(f"/etc/ssh/authorized_keys/{user}", public)

    def ssh(self, user: str, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", "-i", str(self.key), "-p", str(self.port), "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "LogLevel=ERROR", f"{user}@127.0.0.1", command],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)

    def stop(self) -> None:
        processes.stop(self.process)


@pytest.fixture
def sshd(host: PamHost, tmp_path: Path) -> Iterator[Sshd]:
    server = Sshd(host, tmp_path)
    yield server
    server.stop()


def test_an_ssh_key_login_makes_the_home_and_the_same_key_is_refused_once_deactivated(
    daemon: Rosterd, host: PamHost, sshd: Sshd
) -> None:
    daemon.ctl("user", "add", "alice")
    sshd.authorize("alice")
    home = daemon.home_root / "alice"
    assert not home.exists()

    first = sshd.ssh("alice", "id; pwd; ls -A")

    assert first.returncode == 0, first.stderr + sshd.log.read_text()
    lines = first.stdout.splitlines()
    assert lines[0].startswith("uid=20000(alice) gid=20000(alice)")
    assert lines[1] == str(home)
    assert ".bashrc" in lines[2:]
    assert (home.stat().st_uid, home.stat().st_mode & 0o777) == (20000, 0o700)
    again = sshd.ssh("alice", "pwd")
    assert again.returncode == 0 and again.stdout.strip() == str(home)

    daemon.ctl("user", "lock", "alice")
    refused = sshd.ssh("alice", "id")

    assert refused.returncode == 255, refused.stdout + refused.stderr
    assert refused.stdout == ""
    assert "by PAM account configuration" in sshd.log.read_text()
    assert host.logged("refused alice: the account is deactivated in rosterd")

    daemon.ctl("user", "unlock", "alice")
    assert sshd.ssh("alice", "true").returncode == 0


def test_an_ssh_login_of_a_local_user_is_untouched(daemon: Rosterd, host: PamHost,
                                                   sshd: Sshd) -> None:
    added = host.run(["useradd", "--create-home", "--home-dir", "/mnt/localperson",
                      "--shell", "/bin/sh", "localperson"])
    assert added.returncode == 0, added.stderr
    sshd.authorize("localperson")
    result = sshd.ssh("localperson", "pwd")
    assert result.returncode == 0, result.stderr + sshd.log.read_text()
    assert result.stdout.strip() == "/mnt/localperson"
    assert "pam_roster" not in host.syslog()


def test_a_person_deactivated_over_scim_is_refused_by_sshd_and_pamtester(tmp_path: Path) -> None:
    """The identity provider's PATCH active=false, as Entra ID sends it, shuts the person out."""
    with scim_session() as scim:
        created = scim.http.post("/Users", json={"schemas": [USER], "active": True,
                                                 "userName": "dana@example.com"})
        assert created.status_code == 201, created.text
        person = created.json()
        login = person[POSIX]["loginName"]
        with PamHost(scim.daemon.nss_socket) as host:
            host.enable_profile(PROFILE)
            host.write("/etc/pam.d/rostertest", service_file())
            server = Sshd(host, tmp_path)
            try:
                server.authorize(login)
                first = server.ssh(login, "pwd")
                assert first.returncode == 0, first.stderr + server.log.read_text()
                assert first.stdout.strip() == str(scim.daemon.home_root / login)

                off = scim.patch(f"/Users/{person['id']}",
                                 {"op": "replace", "path": "active", "value": False})
                assert off.status_code == 200 and off.json()["active"] is False, off.text

                refused = server.ssh(login, "pwd")
                assert refused.returncode == 255 and refused.stdout == ""
                checked = host.run(["pamtester", "--verbose", "rostertest", login, "acct_mgmt"])
                assert checked.returncode != 0
                assert DEACTIVATED in checked.stderr
            finally:
                server.stop()
