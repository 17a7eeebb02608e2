"""Writes the wire vectors both codecs are checked against (run from the repo root).

Each vector is `<record kind>-<case>.bin` with the expected decoding beside it in
`<same name>.expected`: the getent-style line(s), or `error` for bytes a decoder
must reject. Record kinds: passwd, group, shadow, initgroups, pwpage, grpage, account.
tests/unit/test_nss_wire.py fails if the Python encoder no longer produces
these bytes; tests/unit/test_wire_c_decoder.py runs the C decoder over them.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "daemon"))

from rosterd import nss_wire

HERE = Path(__file__).resolve().parent


def _alice() -> bytes:
    return nss_wire.encode_passwd(name=b"alice", uid=20000, gid=20000,
                                  gecos=b"Alice Liddell", home=b"/home/alice", shell=b"/bin/bash")


def vectors() -> dict[str, tuple[bytes, str]]:
    alice = _alice()
    max_ids = nss_wire.encode_passwd(name=b"edge", uid=4294967294, gid=4294967294,
                                     gecos=b"", home=b"/home/edge", shell=b"/bin/sh")
    utf8 = nss_wire.encode_passwd(name=b"zoe", uid=20001, gid=20001,
                                  gecos="Zoë Ångström".encode(), home=b"/home/zoe",
                                  shell=b"/bin/zsh")
    staff = nss_wire.encode_group(name=b"analysts", gid=20100,
                                  members=[b"alice", b"bob", b"zoe"])
    empty_group = nss_wire.encode_group(name=b"alice", gid=20000, members=[])
    account = nss_wire.encode_account(active=True, home_mode=0o700, home_root=b"/home",
                                      skel_dir=b"/etc/skel", passwd_record=alice)
    locked = nss_wire.encode_account(active=False, home_mode=0o2750, home_root=b"/srv/homes",
                                     skel_dir=b"", passwd_record=max_ids)
    nul_in_name = alice[:8] + struct.pack("<H", 5) + b"al\0ce" + alice[8 + 2 + 5:]
    return {
        "passwd-plain": (alice, "alice:x:20000:20000:Alice Liddell:/home/alice:/bin/bash"),
        "passwd-max-ids": (max_ids, "edge:x:4294967294:4294967294::/home/edge:/bin/sh"),
        "passwd-utf8-gecos": (utf8, "zoe:x:20001:20001:Zoë Ångström:/home/zoe:/bin/zsh"),
        "group-members": (staff, "analysts:x:20100:alice,bob,zoe"),
        "group-no-members": (empty_group, "alice:x:20000:"),
        "shadow-active": (nss_wire.encode_shadow(name=b"alice", locked=False), "alice:*:::::::"),
        "shadow-locked": (nss_wire.encode_shadow(name=b"alice", locked=True), "alice:!*:::::::"),
        "initgroups-three": (nss_wire.encode_gid_list([20100, 20101, 4294967294]),
                             "20100 20101 4294967294"),
        "initgroups-none": (nss_wire.encode_gid_list([]), ""),
        "pwpage-two-more": (nss_wire.encode_page([alice, utf8], 20002),
                            "alice:x:20000:20000:Alice Liddell:/home/alice:/bin/bash\n"
                            "zoe:x:20001:20001:Zoë Ångström:/home/zoe:/bin/zsh\n"
                            "next_cursor 20002"),
        "grpage-last": (nss_wire.encode_page([staff], 0),
                        "analysts:x:20100:alice,bob,zoe\nnext_cursor 0"),
        "account-active": (account, "active 1 home_mode 0700 home_root /home skel_dir /etc/skel\n"
                           "alice:x:20000:20000:Alice Liddell:/home/alice:/bin/bash"),
        "account-locked": (locked, "active 0 home_mode 2750 home_root /srv/homes skel_dir \n"
                           "edge:x:4294967294:4294967294::/home/edge:/bin/sh"),
        "account-bad-active-byte": (b"\x02" + account[1:], "error"),
        "account-bad-mode": (account[:1] + struct.pack("<I", 0o10000) + account[5:], "error"),
        "account-bad-truncated": (account[:-1], "error"),
        "account-bad-trailing-bytes": (account + b"\0", "error"),
        "account-bad-no-passwd": (account[:-len(alice)], "error"),
        "passwd-bad-truncated": (alice[:-3], "error"),
        "passwd-bad-length-past-end": (alice[:8] + struct.pack("<H", 60000) + alice[10:], "error"),
        "passwd-bad-nul-in-string": (nul_in_name, "error"),
        "passwd-bad-trailing-bytes": (alice + b"\0", "error"),
        "group-bad-member-count": (staff[:-9] + b"", "error"),
        "group-bad-huge-member-count": (
            struct.pack("<I", 1) + nss_wire.encode_string(b"g") + nss_wire.encode_string(b"x")
            + struct.pack("<I", 0xFFFFFFFF), "error"),
        "initgroups-bad-count": (struct.pack("<II", 3, 20100), "error"),
        "pwpage-bad-count": (nss_wire.encode_page([alice], 0)[:4].replace(
            b"\x01", b"\x02") + nss_wire.encode_page([alice], 0)[4:], "error"),
    }


def main() -> None:
    for name, (data, expected) in vectors().items():
        (HERE / f"{name}.bin").write_bytes(data)
        (HERE / f"{name}.expected").write_text(expected + "\n" if expected else "")


if __name__ == "__main__":
    main()
