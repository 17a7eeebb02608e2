"""nginx on loopback in front of a tiny app, with auth_request to rosterd's /openid/auth.

The set-up is the README's nginx snippet: /openid/ goes to rosterd, every other
path asks rosterd's /openid/auth first and passes X-Roster-User on to the app,
which answers `hello <that header>`. Shared by the OpenID tests that go through
a front door (httpx and headless Chromium).
"""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import processes
from tests.helpers.daemon import Rosterd, free_port, remove_rosterd
from tests.helpers.oidc import OidcProvider

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

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
    leaf_pem: bytes  # nginx's certificate, for a browser that trusts exactly it


@contextmanager
def nginx_front_door(
    provider: OidcProvider, start_daemon: Callable[[str], Rosterd]
) -> Iterator[FrontDoor]:
    """Runs the app, `start_daemon(public_url)` and nginx; stops all three by PID after."""
    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _App)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    root = Path(tempfile.mkdtemp(prefix="ngx-", dir="/tmp"))
    port = free_port()
    nginx: subprocess.Popen[bytes] | None = None
    daemon = start_daemon(f"https://127.0.0.1:{port}")
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
        yield FrontDoor(f"https://127.0.0.1:{port}", daemon, provider, daemon.ca_file,
                        cert.cert_chain_pems[0].bytes())
    finally:
        processes.stop(nginx)
        remove_rosterd(daemon)
        app.shutdown()
        app.server_close()
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], root: Path) -> None:
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
