"""Serves SCIM and the OpenID endpoints on one HTTPS listener: uvicorn in a thread.

Network-facing code must not run as root, so rosterd refuses to open this
listener in a root process: the packaged service runs as its own unprivileged
user. Without a certificate and key the listener is refused too, except with
`http.allow_plain_http`, which the config only accepts on a loopback address
(a TLS-terminating proxy in front, or tests).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import threading
import time
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from rosterd import config
from rosterd.accounts import Accounts
from rosterd.activity import Activity
from rosterd.errors import RosterError
from rosterd.tokens import TokenStore

if TYPE_CHECKING:
    from rosterd.openid.registrar import Registrar

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 15.0
SHUTDOWN_TIMEOUT_S = 5.0


def listener_needed(cfg: config.Config) -> bool:
    return cfg.scim.enabled or bool(cfg.openid.issuer)


def public_base_url(cfg: config.Config) -> str:
    """The URL identity providers are given, without a trailing slash."""
    if cfg.http.public_url:
        return cfg.http.public_url.rstrip("/")
    split = config.split_listen(cfg.http.listen)
    host, port = split if split else ("localhost", 8443)
    if host in ("0.0.0.0", "::"):  # noqa: S104 - naming the wildcard, not binding it
        host = os.uname().nodename
    scheme = "http" if cfg.http.allow_plain_http else "https"
    return f"{scheme}://{host}:{port}"


def check_can_listen(cfg: config.Config) -> None:
    """Refuses, with the fix, a listener that would run as root or without TLS."""
    if os.geteuid() == 0:
        raise RosterError(
            "rosterd serves SCIM and OpenID over the network and will not do so as root: "
            "run it as an unprivileged user (the packaged rosterd.service does), "
            "or turn the listener off with [scim] enabled = false and no [openid] issuer"
        )
    if cfg.http.allow_plain_http:
        return
    missing = [f"http.{key} = {path}" for key, path in
               (("tls_cert", cfg.http.tls_cert), ("tls_key", cfg.http.tls_key))
               if not os.access(path, os.R_OK)]
    if missing:
        raise RosterError(
            f"the HTTPS listener needs a readable certificate and key; not readable: "
            f"{', '.join(missing)} (install them, point these keys at them, or set "
            "[scim] enabled = false)"
        )


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": f"nothing is served at {request.url.path}"}, status_code=404)


def build_app(cfg: config.Config, accounts: Accounts, tokens: TokenStore, activity: Activity,
              registrar: Registrar | None = None) -> Starlette:
    routes: list[Mount | Route] = []
    if cfg.scim.enabled:
        from rosterd.scim.app import build_scim_app

        routes.append(Mount("/scim/v2", app=build_scim_app(
            accounts=accounts, tokens=tokens, config=cfg, activity=activity)))
    if cfg.openid.issuer and registrar is not None:
        from rosterd.openid.web import OpenidWeb

        routes.extend(OpenidWeb(cfg, accounts, registrar,
                                public_url=public_base_url(cfg)).routes())
    return Starlette(routes=routes, exception_handlers={404: _not_found})


class HttpsListener:
    """Runs uvicorn on its own thread and event loop, beside the lookup and admin threads."""

    def __init__(self, cfg: config.Config, app: Starlette, fd: int | None = None) -> None:
        """Binds http.listen, or serves on `fd`, a socket systemd bound (rosterd.socket)."""
        split = config.split_listen(cfg.http.listen)
        if split is None:  # config.py has already refused this; keep mypy and readers sure
            raise RosterError(f"http.listen {cfg.http.listen!r} is not HOST:PORT")
        host, port = split
        tls: dict[str, object] = {}
        if not cfg.http.allow_plain_http:
            tls = {"ssl_certfile": str(cfg.http.tls_cert), "ssl_keyfile": str(cfg.http.tls_key),
                   "ssl_version": ssl.PROTOCOL_TLS_SERVER}
        self._server = uvicorn.Server(uvicorn.Config(
            app, host=host.strip("[]"), port=port, fd=fd, log_config=None, access_log=False,
            lifespan="off", server_header=False, timeout_graceful_shutdown=3, **tls,  # type: ignore[arg-type]
        ))
        self._thread = threading.Thread(target=self._run, name="https", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve())
        except BaseException as err:  # reported to start(), which raises it
            self._error = err

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RosterError(
                    f"the HTTPS listener did not start: {self._error or 'timed out'} "
                    "(is http.listen's port free, and are tls_cert and tls_key a matching pair?)"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=SHUTDOWN_TIMEOUT_S)
