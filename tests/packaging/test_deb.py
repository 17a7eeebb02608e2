"""The .deb: built with dpkg-buildpackage, clean under lintian, and installed with apt into a
debootstrap'd Debian 12 tree, where it serves a user through NSS, passes doctor, and purges clean.

Slow (a package build, and once per cache a debootstrap): marked `packaging`; `make test` runs it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Cached between runs (build/ is git-ignored); only ever an overlay's lower layer.
DEBOOTSTRAP_CACHE = REPO / "build" / "debootstrap" / "bookworm"

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def deb() -> Path:
    result = subprocess.run(["make", "-C", str(REPO), "deb"], capture_output=True, text=True,
                            check=False, timeout=1500)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    debs = sorted((REPO / "build" / "deb").glob("rosterd_*.deb"))
    assert len(debs) == 1, debs
    return debs[0]


def test_lintian_reports_no_errors(deb: Path) -> None:
    result = subprocess.run(["lintian", "--no-tag-display-limit", str(deb)],
                            capture_output=True, text=True, check=False, timeout=600)
    errors = [line for line in result.stdout.splitlines() if line.startswith("E:")]
    assert not errors, result.stdout


@pytest.fixture(scope="module")
def installed(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    subprocess.run([str(REPO / "tools" / "debootstrap-cache.sh"), str(DEBOOTSTRAP_CACHE)],
                   check=True, timeout=900)
    work = tmp_path_factory.mktemp("debinstall")
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "--",
         "sh", str(Path(__file__).with_name("deb_install.sh")), str(DEBOOTSTRAP_CACHE),
         str(work), str(deb)],
        capture_output=True, text=True, check=False, timeout=1200)
    out = work / "out"
    logs = "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                     for p in sorted(out.glob("*")) if p.is_file())
    assert result.returncode == 0, result.stderr + "\n" + logs
    return out


def _lines(path: Path, database: str) -> str:
    return next(line for line in path.read_text().splitlines()
                if line.startswith(f"{database}:"))


def test_install_adds_roster_to_nsswitch_once_after_files(installed: Path) -> None:
    for name in ("nsswitch.installed", "nsswitch.reinstalled"):
        for database in ("passwd", "group", "shadow"):
            words = _lines(installed / name, database).split()
            assert words.count("roster") == 1, (name, words)
            assert words.index("files") < words.index("roster")
    assert "pam_roster.so" in (installed / "common-account").read_text()


def test_daemon_from_the_unit_serves_a_user_through_the_installed_module(
        installed: Path) -> None:
    daemon_uid, rosterd_uid = (installed / "daemon-user.txt").read_text().split()
    assert daemon_uid == rosterd_uid != "0"  # the daemon runs as the package's user
    assert (installed / "getent.txt").read_text().startswith(
        "alice:x:1000:1000:Alice Liddell:/home/alice:/bin/bash"), (
        (installed / "getent.txt").read_text() + (installed / "daemon.log").read_text())
    assert "uid=1000(alice)" in (installed / "id.txt").read_text()


def test_doctor_passes_in_the_installed_tree(installed: Path) -> None:
    doctor = (installed / "doctor.txt").read_text()
    assert (installed / "doctor.rc").read_text().strip() == "0", doctor
    assert "[FAIL]" not in doctor


def test_purge_restores_nsswitch_and_removes_the_modules(installed: Path) -> None:
    assert (installed / "nsswitch.purged").read_text() == (
        installed / "nsswitch.before").read_text()
    assert "pam_roster" not in (installed / "common-account.purged").read_text()
    libdir = (installed / "libdir.purged").read_text().split()
    assert "libnss_roster.so.2" not in libdir and "libnss_pwb.so.2" not in libdir
