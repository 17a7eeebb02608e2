"""A fake host tree (/etc, /proc, a library directory) set up as the guides ask, for doctor."""

from __future__ import annotations

import shutil
from pathlib import Path

NATIVE = Path(__file__).resolve().parents[2] / "build" / "native"
GOOD_NSSWITCH = """\
# a Debian default with rosterd added
passwd:         files systemd roster
group:          files systemd roster
shadow:         files roster
hosts:          files dns
"""


def lay_out_good_host(root: Path, libdir: str) -> None:
    """nsswitch.conf, passwd, group, PAM stacks, the module and a /proc without nscd."""
    etc = root / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "nsswitch.conf").write_text(GOOD_NSSWITCH)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\n")
    pamd = etc / "pam.d"
    pamd.mkdir()
    (pamd / "common-account").write_text(
        "account [success=1 new_authtok_reqd=done default=ignore] pam_unix.so\n"
        "account requisite pam_deny.so\naccount required pam_permit.so\n"
        "account [success=ok ignore=ignore perm_denied=bad acct_expired=bad "
        "authinfo_unavail=bad default=bad] pam_roster.so\n")
    (pamd / "common-session").write_text(
        "session required pam_unix.so\nsession optional pam_mkhomedir.so skel=/etc/skel\n")
    (pamd / "sshd").write_text("@include common-account\n@include common-session\n")
    (pamd / "su").write_text("account include common-account\nsession substack common-session\n")
    libdir = root / libdir
    libdir.mkdir(parents=True)
    shutil.copy(NATIVE / "libnss_roster.so.2", libdir)
    (root / "proc" / "1").mkdir(parents=True)
    (root / "proc" / "1" / "comm").write_text("systemd\n")
