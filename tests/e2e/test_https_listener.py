"""The HTTPS listener's ground rules, and bearer tokens from rosterctl."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.helpers.daemon import (
    UNPRIVILEGED_UID,
    VENV_BIN,
    Rosterd,
    make_rosterd,
    remove_rosterd,
)
from tests.helpers.tls import trusting


def _run_foreground(daemon: Rosterd, *, as_root: bool) -> subprocess.CompletedProcess[str]:
    identity = {} if as_root else {"user": UNPRIVILEGED_UID, "group": UNPRIVILEGED_UID,
                                   "extra_groups": []}
    return subprocess.run([str(VENV_BIN / "rosterd"), "--config", str(daemon.config_path)],
                          capture_output=True, text=True, timeout=60, check=False,
                          **identity)  # type: ignore[call-overload]


def test_the_listener_is_refused_to_a_root_process() -> None:
    daemon = make_rosterd(https=True)
    try:
        result = _run_foreground(daemon, as_root=True)
        assert result.returncode == 1
        assert "will not do so as root" in result.stderr
        assert not daemon.nss_socket.exists()
    finally:
        remove_rosterd(daemon)


def test_the_listener_is_refused_without_a_certificate_naming_the_key() -> None:
    daemon = make_rosterd(https=True)
    try:
        (daemon.root / "tls" / "key.pem").unlink()
        result = _run_foreground(daemon, as_root=False)
        assert result.returncode == 1
        assert "http.tls_key" in result.stderr and "http.tls_cert" not in result.stderr
    finally:
        remove_rosterd(daemon)


def test_plain_http_is_refused_on_a_public_address(tmp_path: Path) -> None:
    daemon = make_rosterd({"http": {"listen": "0.0.0.0:8080", "allow_plain_http": True}},
                          https=True)
    try:
        result = _run_foreground(daemon, as_root=False)
        assert result.returncode == 1 and "allow_plain_http" in result.stderr
    finally:
        remove_rosterd(daemon)


def test_the_listener_runs_unprivileged_and_speaks_only_verified_tls(
    https_rosterd: Rosterd,
) -> None:
    status = Path(f"/proc/{https_rosterd.pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert set(uid_line.split()[1:]) == {str(UNPRIVILEGED_UID)}
    with httpx.Client(verify=trusting(https_rosterd.ca_file)) as client:
        assert client.get(f"{https_rosterd.base_url}/nothing-here").status_code == 404
    with pytest.raises(httpx.ConnectError):  # the host's own CAs do not vouch for it
        httpx.get(f"{https_rosterd.base_url}/nothing-here")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"http://127.0.0.1:{https_rosterd.https_port}/nothing-here")
    status_json = json.loads(https_rosterd.ctl("status", json=True).stdout)
    assert status_json["https_url"] == https_rosterd.base_url


def test_token_generate_prints_the_token_alone_once_and_list_never_shows_it(
    https_rosterd: Rosterd,
) -> None:
    first = https_rosterd.ctl("token", "generate", "Okta provisioning").stdout
    assert first.count("\n") == 1 and first.strip().startswith("rstr_")
    listed = https_rosterd.ctl("token", "list").stdout
    assert "Okta provisioning" in listed and first.strip() not in listed
    listed_json = json.loads(https_rosterd.ctl("token", "list", json=True).stdout)
    assert [t["label"] for t in listed_json] == ["Okta provisioning"]
    assert first.strip() not in json.dumps(listed_json)
    again = https_rosterd.ctl("token", "generate", "Okta provisioning", check=False)
    assert again.returncode == 1 and "already exists" in again.stderr
    https_rosterd.ctl("token", "revoke", "Okta provisioning")
    assert json.loads(https_rosterd.ctl("token", "list", json=True).stdout) == []
    missing = https_rosterd.ctl("token", "revoke", "Okta provisioning", check=False)
    assert missing.returncode == 1 and "no token" in missing.stderr
