"""The rpm: rpmbuild makes a binary package with the .deb's content and authselect scriptlets."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def rpm() -> Path:
    result = subprocess.run(["make", "-C", str(REPO), "rpm"], capture_output=True, text=True,
                            check=False, timeout=1500)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    rpms = sorted((REPO / "build" / "rpm" / "RPMS").glob("*/rosterd-*.rpm"))
    assert len(rpms) == 1, rpms
    return rpms[0]


def _rpm(*args: str) -> str:
    return subprocess.run(["rpm", *args], capture_output=True, text=True, check=True).stdout


def test_file_list_matches_the_deb(rpm: Path) -> None:
    files = set(_rpm("-qlp", str(rpm)).splitlines())
    for path in ("/usr/lib64/libnss_roster.so.2", "/usr/lib64/libnss_pwb.so.2",
                 "/usr/lib64/security/pam_roster.so", "/etc/rosterd/rosterd.toml",
                 "/usr/lib/systemd/system/rosterd.service",
                 "/usr/lib/systemd/system/rosterd.socket", "/usr/sbin/rosterctl",
                 "/usr/sbin/rosterd", "/usr/lib/rosterd/venv/bin/rosterd"):
        assert path in files, path
    assert "/etc/rosterd/rosterd.toml" in _rpm("-qcp", str(rpm)).split()  # %config(noreplace)


def test_scriptlets_create_the_user_and_use_authselect(rpm: Path) -> None:
    scripts = _rpm("-qp", "--scripts", str(rpm))
    assert "useradd -r -g rosterd" in scripts
    assert "authselect create-profile rosterd" in scripts and "pam_roster.so" in scripts
    assert "pam-auth-update" not in scripts
    assert "%systemd" not in scripts  # every macro expanded
