"""rosterctl doctor's checks, each against a fake host tree built under tmp_path."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from rosterd import config, doctor
from rosterd.store import Store

from tests.helpers.daemon import write_config
from tests.helpers.fakehost import GOOD_NSSWITCH, lay_out_good_host


def _cert(tmp: Path, *, not_before: datetime, not_after: datetime) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "host.example.com")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _host(root: Path, **sections: dict[str, Any]) -> doctor.Host:
    (root / "etc").mkdir(parents=True, exist_ok=True)
    conf = root / "rosterd.toml"
    base: dict[str, dict[str, Any]] = {
        "paths": {"state_dir": str(root / "state"), "runtime_dir": str(root / "run")},
        "scim": {"enabled": False},
    }
    for section, keys in sections.items():
        base.setdefault(section, {}).update(keys)
    write_config(conf, base)
    return doctor.Host(cfg=config.load_config(conf), root=root)


@pytest.fixture
def host(tmp_path: Path) -> doctor.Host:
    """A host set up as the guides ask: every check that applies passes."""
    root = tmp_path / "root"
    h = _host(root)
    lay_out_good_host(root, h.module_dirs[0])
    return h


def _names(report: doctor.Report, status: str) -> set[str]:
    return {c.name for c in report.checks if c.status == status}


def test_a_host_set_up_as_the_guides_ask_passes_every_host_check(host: doctor.Host) -> None:
    for check in (doctor.nsswitch, doctor.module_loads, doctor.nscd, doctor.pam_account,
                  doctor.pam_homes):
        result = check(host)
        assert result.status == "pass", result


@pytest.mark.parametrize("passwd_line, problem", [
    ("passwd: files systemd", "passwd: does not name roster"),
    ("passwd: roster files", "passwd: names roster before files"),
    ("passwd: files sss [NOTFOUND=return] roster", "ends the lookup"),
], ids=["roster is missing", "roster comes before files", "an earlier source ends the lookup"])
def test_nsswitch_names_each_misplaced_module(host: doctor.Host, passwd_line: str,
                                              problem: str) -> None:
    path = host.root / "etc" / "nsswitch.conf"
    path.write_text(GOOD_NSSWITCH.replace("passwd:         files systemd roster", passwd_line))
    result = doctor.nsswitch(host)
    assert result.status == "fail"
    assert problem in result.detail
    assert "passwd: files systemd roster" in result.fix


def test_nsswitch_accepts_the_vendor_guides_pwb_name(host: doctor.Host) -> None:
    path = host.root / "etc" / "nsswitch.conf"
    path.write_text(GOOD_NSSWITCH.replace("roster", "pwb"))
    assert doctor.nsswitch(host).status == "pass"


def test_a_missing_or_broken_module_is_named(host: doctor.Host) -> None:
    module = host.root / host.module_dirs[0] / "libnss_roster.so.2"
    module.write_bytes(b"not an ELF file")
    result = doctor.module_loads(host)
    assert result.status == "fail" and "does not load" in result.detail
    module.unlink()
    result = doctor.module_loads(host)
    assert result.status == "fail" and "libnss_roster.so.2 is in none of" in result.detail


def _nscd_runs(host: doctor.Host) -> None:
    (host.root / "proc" / "731").mkdir()
    (host.root / "proc" / "731" / "comm").write_text("nscd\n")


def test_nscd_caching_passwd_is_a_fault_with_the_edit_that_fixes_it(host: doctor.Host) -> None:
    _nscd_runs(host)
    (host.root / "etc" / "nscd.conf").write_text(
        "enable-cache passwd yes\nenable-cache group no\nenable-cache hosts yes\n")
    result = doctor.nscd(host)
    assert result.status == "fail"
    assert "caches passwd" in result.detail and "group" not in result.detail
    assert "enable-cache passwd no" in result.fix


def test_nscd_without_a_config_caches_by_default(host: doctor.Host) -> None:
    _nscd_runs(host)
    assert "caches passwd and group" in doctor.nscd(host).detail


def test_nscd_running_without_passwd_and_group_caches_is_fine(host: doctor.Host) -> None:
    _nscd_runs(host)
    (host.root / "etc" / "nscd.conf").write_text(
        "enable-cache passwd no\n  enable-cache group  no  # rosterd\n")
    assert doctor.nscd(host).status == "pass"


def test_pam_stacks_without_pam_roster_or_homes_are_named(host: doctor.Host) -> None:
    pamd = host.root / "etc" / "pam.d"
    (pamd / "common-account").write_text("account required pam_unix.so\n")
    (pamd / "common-session").write_text("session required pam_unix.so\n")
    account, homes = doctor.pam_account(host), doctor.pam_homes(host)
    assert account.status == homes.status == "fail"
    assert "sshd, su" in account.detail and "pam_roster.so" in account.detail
    assert "pam_mkhomedir.so" in homes.detail
    assert account.fix == "pam-auth-update --enable roster"


def test_openid_secret_is_skipped_without_an_issuer(host: doctor.Host) -> None:
    assert doctor.openid_secret(host).status == "skip"


def test_a_world_readable_client_secret_is_a_fault(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("client-id=rosterd\nclient-secret=s3cret\n")
    h = _host(tmp_path / "root", openid={"issuer": "https://idp.example.com",
                                          "client_secret_file": str(secret)})
    secret.chmod(0o644)
    result = doctor.openid_secret(h)
    assert result.status == "fail" and "mode 0644" in result.detail
    assert result.fix == f"chown root:rosterd {secret} && chmod 0640 {secret}"
    secret.chmod(0o640)
    assert doctor.openid_secret(h).status == "pass"
    secret.unlink()
    assert "cannot read" in doctor.openid_secret(h).detail


@pytest.mark.parametrize("days_before, days_after, fault", [
    (-400, -1, "expired on"),
    (-30, 3, "in less than 14 days"),
    (2, 300, "is not valid before"),
], ids=["an expired certificate", "one about to expire", "one not yet valid"])
def test_certificates_out_of_date_are_faults(tmp_path: Path, days_before: int, days_after: int,
                                              fault: str) -> None:
    now = datetime.now(UTC)
    cert, key = _cert(tmp_path, not_before=now + timedelta(days=days_before),
                      not_after=now + timedelta(days=days_after))
    h = _host(tmp_path / "root", scim={"enabled": True},
              http={"tls_cert": str(cert), "tls_key": str(key)})
    result = doctor.tls_certificate(h)
    assert result.status == "fail" and fault in result.detail
    assert "openssl req -x509" in result.fix


def test_a_certificate_with_the_wrong_key_is_a_fault(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    cert, _ = _cert(tmp_path, not_before=now, not_after=now + timedelta(days=90))
    other = tmp_path / "other"
    other.mkdir()
    _, key = _cert(other, not_before=now, not_after=now + timedelta(days=90))
    h = _host(tmp_path / "root", scim={"enabled": True},
              http={"tls_cert": str(cert), "tls_key": str(key)})
    assert "is not the key of" in doctor.tls_certificate(h).detail
    h = _host(tmp_path / "root", scim={"enabled": True},
              http={"tls_cert": str(cert), "tls_key": str(tmp_path / "key.pem")})
    assert doctor.tls_certificate(h).status == "pass"


def test_daemon_down_is_named_with_the_command_that_starts_it(host: doctor.Host) -> None:
    result = doctor.daemon_answers(host)
    assert result.status == "fail"
    assert "no answer to PING" in result.detail and "systemctl start rosterd" in result.fix


@pytest.fixture
def discovery_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server answering the discovery document for its own URL."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    issuer: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/idp/.well-known/openid-configuration":
                self.send_error(404)
                return
            body = json.dumps({"issuer": issuer[0]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    issuer.append(f"https://127.0.0.1:{server.server_address[1]}/idp")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield issuer[0], ca_file
    server.shutdown()
    server.server_close()


def test_issuer_discovery_reachable_and_unreachable(
        tmp_path: Path, discovery_server: tuple[str, Path]) -> None:
    issuer, ca_file = discovery_server
    h = _host(tmp_path / "root", openid={"issuer": issuer, "ca_file": str(ca_file)})
    assert doctor.issuer_discovery(h).status == "pass"
    h = _host(tmp_path / "root", openid={"issuer": issuer + "x", "ca_file": str(ca_file)})
    result = doctor.issuer_discovery(h)
    assert result.status == "fail" and "cannot fetch" in result.detail
    h = _host(tmp_path / "root", openid={"issuer": issuer})  # no CA: the chain is refused
    assert "CERTIFICATE_VERIFY_FAILED" in doctor.issuer_discovery(h).detail


def test_database_integrity_and_collisions(tmp_path: Path) -> None:
    h = _host(tmp_path / "root")
    assert doctor.database(h).status == "fail"  # no database yet
    h.cfg.paths.state_dir.mkdir()
    db = h.cfg.paths.state_dir / "rosterd.db"
    Store.open_sqlite(db).close()
    (h.root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\nbob:x:20000:20000::/:/x\n")
    (h.root / "etc" / "group").write_text("root:x:0:\n")
    assert doctor.database(h).status == "pass"
    assert doctor.collisions(h).status == "pass"
    import sqlite3
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO users (id, name, uid, gid, gecos, home, shell, locked, "
                     "created_at, modified_at) VALUES ('u1', 'alice', 20000, 20000, '', "
                     "'/home/alice', '/bin/bash', 0, '2026-01-01', '2026-01-01')")
    result = doctor.collisions(h)
    assert result.status == "fail"
    assert "user alice (UID 20000) collides with bob in" in result.detail


def test_a_corrupt_database_fails_the_integrity_check(tmp_path: Path) -> None:
    h = _host(tmp_path / "root")
    h.cfg.paths.state_dir.mkdir()
    db = h.cfg.paths.state_dir / "rosterd.db"
    Store.open_sqlite(db).close()
    data = bytearray(db.read_bytes())
    for page in range(1, len(data) // 4096):  # scribble over every b-tree page header
        data[page * 4096: page * 4096 + 12] = b"\x0d\xff\xff\xff\xff" + b"\xff" * 7
    db.write_bytes(bytes(data))
    result = doctor.database(h)
    assert result.status == "fail" and "integrity_check" in result.detail


def test_report_text_shows_fixes_only_for_failures() -> None:
    report = doctor.Report([doctor.CheckResult("a", "pass", "fine", "never shown"),
                            doctor.CheckResult("b", "fail", "broken", "do this\nthen that")])
    text = report.plain_text()
    assert "never shown" not in text
    assert "[FAIL] b: broken\n       fix: do this\n       fix: then that" in text
    assert report.failed and text.endswith("1 of 2 checks failed")
