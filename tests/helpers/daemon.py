"""Starts a real rosterd on temporary directories and waits for its systemd READY notification."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 60.0
# rosterd refuses to serve HTTPS as root, so a daemon with its listener on runs
# as nobody, as the packaged service runs as its own unprivileged user.
UNPRIVILEGED_UID = 65534
UNPRIVILEGED_GID = 65534


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, sections: Mapping[str, Mapping[str, Any]]) -> None:
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in keys.items())
        lines.append("")
    path.write_text("\n".join(lines))


@dataclass
class Rosterd:
    """A running rosterd and the paths a test needs to talk to it."""

    root: Path
    config_path: Path
    state_dir: Path
    runtime_dir: Path
    home_root: Path
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)
    https_port: int | None = None
    ca: Any = None  # trustme.CA that signed the server's certificate, when HTTPS is on

    @property
    def base_url(self) -> str:
        assert self.https_port is not None, "start_rosterd(https=True) for an HTTPS daemon"
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def scim_url(self) -> str:
        return f"{self.base_url}/scim/v2"

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.pem"

    def new_token(self, label: str = "test client") -> str:
        """A fresh SCIM bearer token, made the way an admin makes one."""
        return self.ctl("token", "generate", label).stdout.strip()

    def __post_init__(self) -> None:
        self.log_path = self.root / "rosterd.log"

    @property
    def nss_socket(self) -> Path:
        return self.runtime_dir / "nss.sock"

    @property
    def admin_socket(self) -> Path:
        return self.runtime_dir / "admin.sock"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, extra_env: Mapping[str, str] | None = None) -> None:
        notify_path = self.root / "notify.sock"
        notify_path.unlink(missing_ok=True)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(notify_path))
        env = dict(os.environ, NOTIFY_SOCKET=str(notify_path), **(extra_env or {}))
        identity: dict[str, Any] = {}
        if self.https_port is not None:
            notify_path.chmod(0o777)
            identity = {"user": UNPRIVILEGED_UID, "group": UNPRIVILEGED_GID, "extra_groups": []}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "rosterd"), "--config", str(self.config_path),
                 "--log-level", "debug"],
                stdout=log, stderr=log, env=env, **identity,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"rosterd exited with {self.process.returncode} before READY:\n{self.log()}"
                    )
                notify.settimeout(0.2)
                try:
                    message = notify.recv(4096).decode()
                except TimeoutError:
                    continue
                if "READY=1" in message.splitlines():
                    return
            raise RuntimeError(f"rosterd sent no READY=1 within {READY_TIMEOUT_S} s:\n{self.log()}")
        finally:
            notify.close()

    def stop(self, timeout: float = 15) -> int:
        """Sends SIGTERM and returns the exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"rosterd ignored SIGTERM for {timeout} s:\n{self.log()}") from None

    @property
    def lookup_pid(self) -> int:
        """The child process that serves nss.sock (rosterd.lookup_process)."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        assert len(children) == 1, f"rosterd has children {children}, expected its lookup process"
        return int(children[0])

    def kill(self) -> None:
        """SIGKILL for the daemon and its lookup process, as a crash or systemd's kill would."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.kill(self.lookup_pid, signal.SIGKILL)
            except (OSError, AssertionError):
                pass
            self.process.kill()
            self.process.wait()

    def ctl(self, *args: str, check: bool = True, json: bool = False,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        argv = [str(VENV_BIN / "rosterctl"), "--config", str(self.config_path)]
        if json:
            argv.append("--json")
        result = subprocess.run([*argv, *args], capture_output=True, text=True,
                                timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(
                f"rosterctl {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
            )
        return result


def make_rosterd(
    config: Mapping[str, Mapping[str, Any]] | None = None, *, https: bool = False
) -> Rosterd:
    """Lays out a rosterd's directories and config (not started).

    Paths live under a short /tmp directory: a Unix socket path must fit in 108
    bytes. With `https`, the daemon gets a certificate from a test CA (trustme)
    and a free loopback port, and runs as an unprivileged user.
    """
    root = Path(tempfile.mkdtemp(prefix="rd-", dir="/tmp"))
    daemon = Rosterd(
        root=root,
        config_path=root / "rosterd.toml",
        state_dir=root / "state",
        runtime_dir=root / "run",
        home_root=root / "home",
    )
    sections: dict[str, dict[str, Any]] = {
        "paths": {"state_dir": str(daemon.state_dir), "runtime_dir": str(daemon.runtime_dir)},
        # Well clear of the host's own accounts (1000 and up on most machines).
        "provisioning": {"start_uid": 20000, "start_gid": 20000,
                         "home_root": str(daemon.home_root)},
        "scim": {"enabled": https},
    }
    if https:
        _prepare_https(daemon, sections)
    for section, keys in (config or {}).items():
        sections.setdefault(section, {}).update(keys)
    write_config(daemon.config_path, sections)
    return daemon


def _prepare_https(daemon: Rosterd, sections: dict[str, dict[str, Any]]) -> None:
    import trustme

    daemon.ca = trustme.CA()
    daemon.ca.cert_pem.write_to_path(str(daemon.ca_file))
    server_cert = daemon.ca.issue_cert("localhost", "127.0.0.1")
    tls = daemon.root / "tls"
    tls.mkdir()
    server_cert.cert_chain_pems[0].write_to_path(str(tls / "cert.pem"))
    for pem in server_cert.cert_chain_pems[1:]:
        pem.write_to_path(str(tls / "cert.pem"), append=True)
    server_cert.private_key_pem.write_to_path(str(tls / "key.pem"))
    daemon.https_port = free_port()
    sections["http"] = {
        "listen": f"127.0.0.1:{daemon.https_port}",
        "tls_cert": str(tls / "cert.pem"),
        "tls_key": str(tls / "key.pem"),
    }
    # The unprivileged daemon must reach its config and key and own its state.
    daemon.root.chmod(0o755)
    for directory in (daemon.state_dir, daemon.runtime_dir):
        directory.mkdir()
    for path in (tls / "key.pem", daemon.state_dir, daemon.runtime_dir):
        os.chown(path, UNPRIVILEGED_UID, UNPRIVILEGED_GID)
    (tls / "key.pem").chmod(0o600)


def remove_rosterd(daemon: Rosterd) -> None:
    daemon.kill()
    shutil.rmtree(daemon.root, ignore_errors=True)
