"""nginx in front of a tiny app, auth_request to rosterd: after login the app sees the POSIX name.

The set-up is the README's nginx snippet: /openid/ goes to rosterd, every other
path asks rosterd's /openid/auth first and passes X-Roster-User on to the app.
"""

from __future__ import annotations

import http.server
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests.e2e.test_openid import start_openid_rosterd
from tests.helpers.daemon import Rosterd, free_port, remove_rosterd
from tests.helpers.hostview import run_in_view
from tests.helpers.oidc import OidcProvider, oidc_provider, sign_in_at_provider
from tests.helpers.tls import trusting

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

pytestmark = pytest.mark.skipif(not Path(NGINX).exists(),
                                reason="nginx is not installed (tools/system-deps.sh)")

NGINX_CONF = """
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {root}/tmp/body;
  proxy_temp_path {root}/tmp/proxy;
  fastcgi_temp_path {root}/tmp/fastcgi;
  uwsgi_temp_path {root}/tmp/uwsgi;
  scgi_temp_path {root}/tmp/scgi;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {root}/cert.pem;
    ssl_certificate_key {root}/key.pem;

    location /openid/ {{
      proxy_pass https://127.0.0.1:{rosterd_port};
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_trusted_certificate {rosterd_ca};
    }}
    location = /_roster_auth {{
      internal;
      proxy_pass https://127.0.0.1:{rosterd_port}/openid/auth;
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_trusted_certificate {rosterd_ca};
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
    }}
    location / {{
      auth_request /_roster_auth;
      auth_request_set $roster_user $upstream_http_x_roster_user;
      proxy_set_header X-Roster-User $roster_user;
      proxy_pass http://127.0.0.1:{app_port};
      error_page 401 = @login;
    }}
    location @login {{
      return 302 /openid/login?rd=$request_uri;
    }}
  }}
}}
"""


class _App(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello {self.headers.get('X-Roster-User', '(nobody)')}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


@dataclass
class FrontDoor:
    url: str
    daemon: Rosterd
    provider: OidcProvider
    ca_file: Path


@pytest.fixture(scope="module")
def front_door() -> Iterator[FrontDoor]:
    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _App)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    root = Path(tempfile.mkdtemp(prefix="ngx-", dir="/tmp"))
    port = free_port()
    nginx: subprocess.Popen[bytes] | None = None
    with oidc_provider() as provider:
        daemon = start_openid_rosterd(provider, http={"public_url": f"https://127.0.0.1:{port}"})
        try:
            (root / "tmp").mkdir()
            cert = daemon.ca.issue_cert("127.0.0.1", "localhost")
            cert.private_key_pem.write_to_path(str(root / "key.pem"))
            for index, pem in enumerate(cert.cert_chain_pems):
                pem.write_to_path(str(root / "cert.pem"), append=index > 0)
            (root / "nginx.conf").write_text(NGINX_CONF.format(
                root=root, port=port, rosterd_port=daemon.https_port,
                rosterd_ca=daemon.ca_file, app_port=app.server_address[1]))
            nginx = subprocess.Popen([NGINX, "-e", str(root / "error.log"), "-p", str(root),
                                      "-c", str(root / "nginx.conf"), "-g", "daemon off;"],
                                     stderr=subprocess.PIPE)
            _wait_for_port(port, nginx, root)
            yield FrontDoor(f"https://127.0.0.1:{port}", daemon, provider, daemon.ca_file)
        finally:
            if nginx is not None:
                nginx.terminate()
                nginx.wait(timeout=10)
            remove_rosterd(daemon)
            app.shutdown()
            shutil.rmtree(root, ignore_errors=True)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], root: Path) -> None:
    import socket

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (root / "error.log").read_text() if (root / "error.log").exists() else ""
            raise RuntimeError(f"nginx exited: {log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nginx did not listen")


def test_the_app_behind_nginx_sees_the_posix_username(front_door: FrontDoor) -> None:
    provider = front_door.provider
    provider.set_account("fay", {"preferred_username": "Fay.Smith@example.com",
                                 "groups": ["designers"]}, sub="sub-fay")
    with httpx.Client(base_url=front_door.url, verify=trusting(front_door.ca_file),
                      follow_redirects=False) as browser:
        first = browser.get("/app/")
        assert first.status_code == 302 and first.headers["location"].endswith(
            "/openid/login?rd=/app/")
        start = browser.get(first.headers["location"])
        assert start.status_code == 302, start.text
        with provider.client() as at_provider:
            at_provider.follow_redirects = False
            back = sign_in_at_provider(at_provider, start.headers["location"], "sub-fay")
        assert back.startswith(f"{front_door.url}/openid/callback")
        done = browser.get(back)
        assert done.status_code == 302, done.text
        page = browser.get(urljoin(front_door.url, done.headers["location"]))
        assert page.status_code == 200 and page.text == "hello fay.smith\n"
        # A header the browser sends itself is replaced, never trusted.
        forged = browser.get("/app/", headers={"X-Roster-User": "root"})
        assert forged.text == "hello fay.smith\n"
    result = run_in_view(["id", "fay.smith"], nss_socket=front_door.daemon.nss_socket)
    assert result.returncode == 0 and "(designers)" not in result.stdout  # not auto-provisioned


def test_a_refused_person_sees_why_in_words_for_their_admin(front_door: FrontDoor) -> None:
    provider = front_door.provider
    provider.set_account("nameless", {"nickname": "x"}, sub="sub-nameless")
    with httpx.Client(base_url=front_door.url, verify=trusting(front_door.ca_file),
                      follow_redirects=False) as browser:
        start = browser.get("/openid/login", params={"rd": "/app/"})
        with provider.client() as at_provider:
            at_provider.follow_redirects = False
            back = sign_in_at_provider(at_provider, start.headers["location"], "sub-nameless")
        page = browser.get(back)
        assert page.status_code == 403
        assert "You cannot sign in to this host" in page.text
        assert "no login name can be made" in page.text and "nickname" in page.text
        assert browser.get("/app/").status_code == 302
