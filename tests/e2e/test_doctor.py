"""rosterctl doctor against a real rosterd and a fake host tree: passes, then names each fault."""

from __future__ import annotations

import json
from pathlib import Path

from rosterd import doctor

from tests.helpers.daemon import Rosterd
from tests.helpers.fakehost import lay_out_good_host


def _fake_root(daemon: Rosterd) -> Path:
    root = daemon.root / "hostroot"
    lay_out_good_host(root, doctor.default_module_dirs()[0])
    return root


def test_doctor_passes_on_a_good_set_up_and_exits_zero(https_rosterd: Rosterd) -> None:
    root = _fake_root(https_rosterd)
    https_rosterd.ctl("user", "add", "alice")
    result = https_rosterd.ctl("doctor", "--root", str(root), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[PASS] daemon: rosterd" in result.stdout and "admin API: 1 users" in result.stdout
    assert "[PASS] tls certificate" in result.stdout
    assert "[SKIP] openid secret" in result.stdout
    assert "[FAIL]" not in result.stdout


def test_doctor_names_every_fault_and_exits_one(https_rosterd: Rosterd) -> None:
    root = _fake_root(https_rosterd)
    https_rosterd.ctl("user", "add", "alice")  # UID 20000
    etc = root / "etc"
    (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files roster\nshadow: files\n")
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\nbob:x:20000:20000::/home/bob:/x\n")
    (root / "proc" / "42").mkdir()
    (root / "proc" / "42" / "comm").write_text("nscd\n")
    result = https_rosterd.ctl("doctor", "--root", str(root), check=False)
    assert result.returncode == 1
    out = result.stdout
    assert "[FAIL] nsswitch.conf" in out and "passwd: does not name roster" in out
    assert "fix: edit" in out
    assert "[FAIL] nscd: nscd is running and caches passwd and group" in out
    assert "[FAIL] collisions: user alice (UID 20000) collides with bob in" in out

    https_rosterd.stop()
    reply = https_rosterd.ctl("doctor", "--root", str(root), check=False, json=True)
    assert reply.returncode == 1
    checks = {c["name"]: c for c in json.loads(reply.stdout)["checks"]}
    assert checks["daemon"]["status"] == "fail"
    assert checks["daemon"]["fix"].startswith("systemctl start rosterd")
    assert checks["database"]["status"] == "pass"  # the store is sound with the daemon down
