"""Debian packages unpacked, not installed, so a namespace can overlay them onto /usr.

Installing SSSD on the host would run its maintainer scripts, which add `sss`
to the host's /etc/nsswitch.conf and pam_sss to its PAM stack, changing every
login and lookup on a machine others share. Unpacked under build/bench/ and
overlaid inside one mount namespace, the same binaries run with nothing of
the host changed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

COMPLETE_MARKER = ".unpacked"


def unpacked(package: str, cache: Path) -> Path:
    """A root holding `package` and every dependency this host lacks; fetched once, then reused.

    The packages come through apt-get from the host's configured mirror.
    Raises RuntimeError when they cannot be fetched.
    """
    root = cache / package / "root"
    if (root / COMPLETE_MARKER).exists():
        return root
    debs = cache / package / "debs"
    shutil.rmtree(cache / package, ignore_errors=True)
    (debs / "partial").mkdir(parents=True)
    fetch = subprocess.run(
        ["apt-get", "install", "--yes", "--download-only", "--no-install-recommends",
         "-o", f"Dir::Cache::archives={debs}", package],
        capture_output=True, text=True, check=False,
    )
    if fetch.returncode != 0:
        raise RuntimeError(f"apt-get could not fetch {package}: {fetch.stderr.strip()}")
    root.mkdir()
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "--extract", str(deb), str(root)], check=True)
    # Debian 12 merged /usr: /lib is a link to usr/lib on the host, so a package's
    # /lib files belong in the /usr layer.
    if (root / "lib").is_dir():
        shutil.copytree(root / "lib", root / "usr" / "lib", dirs_exist_ok=True, symlinks=True)
        shutil.rmtree(root / "lib")
    (root / COMPLETE_MARKER).touch()
    shutil.rmtree(debs)
    return root
