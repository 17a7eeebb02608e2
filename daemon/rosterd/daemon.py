"""Runs rosterd: wires the store, the lookup service and the admin API, and lives until SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TextIO

from rosterd import admin, config, http
from rosterd.accounts import Accounts
from rosterd.activity import Activity
from rosterd.errors import ConfigError, RosterError
from rosterd.hostfiles import HostFiles
from rosterd.ids import IdAllocator
from rosterd.lookup import LookupIndex, LookupServer
from rosterd.lookup_process import LookupProcess
from rosterd.store import Store
from rosterd.tokens import TokenStore

log = logging.getLogger("rosterd")

# The NSS module answers UNAVAIL at once in any process that has this set, so
# nothing in the daemon (nor a library it calls) can resolve a name through its
# own socket and deadlock (proto/nss-wire.md, "Client behaviour").
NSS_DISABLE_ENV = "ROSTERD_NSS_DISABLE"
SHUTDOWN_GRACE_S = 3.0
LOOKUP_CHECK_INTERVAL_S = 1.0


def _setup_logging(level: str) -> None:
    root = logging.getLogger()
    root.setLevel(level.upper())
    handler: logging.Handler
    if _stderr_is_journal():
        from systemd.journal import JournalHandler

        handler = JournalHandler(SYSLOG_IDENTIFIER="rosterd")
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.addHandler(admin.WARNINGS)


def _stderr_is_journal() -> bool:
    # systemd.exec(5): JOURNAL_STREAM names the device and inode of the journal
    # stream our stderr is connected to, when it is.
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


def _notify(state: str) -> None:
    """Tells systemd about our state; a notification that cannot be sent never stops us."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return
    from systemd import daemon as sd

    try:
        sd.notify(state)
    except OSError as err:
        log.debug("cannot notify systemd (%s): %s", state.split("\n")[0], err)


def _watchdog_interval() -> float | None:
    """Half of the service's WatchdogSec, when systemd asks this process to feed it.

    sd_watchdog_enabled(3): WATCHDOG_USEC is the timeout, WATCHDOG_PID (when set)
    the process meant; feeding at half the timeout leaves room for a slow tick.
    """
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


def _say_stopping() -> None:
    _notify("STOPPING=1")
    log.info("stopping")


def _activated_sockets() -> tuple[socket.socket | None, int | None]:
    """(nss.sock listener, HTTPS listener fd) handed over by rosterd.socket, or Nones.

    sd_listen_fds(3): systemd passes the sockets from fd 3 on; they are told apart
    by family (the Unix one is nss.sock, an IP one the HTTPS listener).
    """
    if not os.environ.get("LISTEN_FDS"):
        return None, None
    from systemd import daemon as sd

    unix: socket.socket | None = None
    https: int | None = None
    for fd in sd.listen_fds():
        sock = socket.socket(fileno=fd)
        if sock.family == socket.AF_UNIX and unix is None:
            unix = sock
        elif sock.family in (socket.AF_INET, socket.AF_INET6) and https is None:
            https = sock.detach()
        else:
            log.warning("ignoring an extra socket from systemd: %s", sock)
            sock.close()
    return unix, https


def _lock_state_dir(state_dir: Path) -> TextIO:
    """Holds an exclusive lock for the daemon's life: one rosterd per state directory."""
    handle = open(state_dir / "rosterd.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RosterError(
            f"another rosterd is already running on {state_dir} "
            "(stop it first, or give this one another paths.state_dir)"
        ) from None
    return handle


def _prepare_dirs(cfg: config.Config) -> None:
    cfg.paths.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The runtime directory must be traversable by every local user: nss.sock is
    # for all of them, while admin.sock keeps its own restrictive mode.
    cfg.paths.runtime_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(cfg.paths.runtime_dir, 0o755)  # noqa: S103 - see above


def serve(cfg: config.Config, stop: threading.Event) -> None:
    """Starts every service, reports READY to systemd and returns once `stop` is set."""
    started = time.monotonic()
    serve_https = http.listener_needed(cfg)
    if serve_https:
        http.check_can_listen(cfg)
    _prepare_dirs(cfg)
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(_lock_state_dir(cfg.paths.state_dir))
        store = Store.open_sqlite(cfg.paths.state_dir / "rosterd.db")
        cleanup.callback(store.close)
        index = LookupIndex(cfg.provisioning)
        activated_nss, activated_https = _activated_sockets()
        server = LookupServer(index, cfg.paths.runtime_dir / "nss.sock")
        lookups = LookupProcess(index, server)
        accounts = Accounts(
            store, cfg, HostFiles(), IdAllocator.from_store(store, cfg), on_change=lookups.apply
        )
        tokens = TokenStore(store)
        users, groups = accounts.snapshot()
        index.load(users, groups)
        user_count, group_count = len(users), len(groups)
        del users, groups  # the index holds what lookups need; free the rest before forking
        if activated_nss is not None:
            server.adopt(activated_nss)
        else:
            server.bind()
        # Fork the lookup process now, while this is the only thread (fork copies
        # only the calling thread); every thread starts after this line.
        lookups.start()
        cleanup.callback(lookups.stop)
        https_url = http.public_base_url(cfg) if serve_https else ""
        activity = Activity()  # last SCIM request and last login, for `rosterctl status`
        registrar = None
        if cfg.openid.issuer:
            from rosterd.openid.registrar import Registrar

            registrar = Registrar.from_config(cfg, accounts, activity)
            cleanup.callback(registrar.provider.close)
            registrar.provider.warm_up()
        admin_server = admin.start_server(
            accounts, tokens, lookups, cfg,
            socket_path=cfg.paths.runtime_dir / "admin.sock", https_url=https_url,
            activity=activity, registrar=registrar,
        )
        cleanup.callback(lambda: admin_server.stop(grace=SHUTDOWN_GRACE_S).wait())
        if serve_https:
            listener = http.HttpsListener(
                cfg, http.build_app(cfg, accounts, tokens, activity, registrar), fd=activated_https)
            cleanup.callback(listener.stop)
            listener.start()
        cleanup.callback(_say_stopping)  # runs first on the way out, before anything closes

        log.info(
            "ready in %.2f s: %d users, %d groups; lookups on %s%s",
            time.monotonic() - started, user_count, group_count,
            cfg.paths.runtime_dir / "nss.sock",
            f"; SCIM at {https_url}/scim/v2" if serve_https and cfg.scim.enabled else "",
        )
        _notify(f"READY=1\nSTATUS=serving {user_count} users, {group_count} groups")
        watchdog = _watchdog_interval()
        while not stop.wait(watchdog or LOOKUP_CHECK_INTERVAL_S):
            # Without lookups rosterd is useless: end, so the service manager
            # restarts it. A wedged lookup process fails stats() and stops the
            # watchdog feeding, with the same outcome.
            if not lookups.alive:
                raise RosterError("the lookup process has exited; rosterd stops so that it "
                                  "is restarted (see the log above for why)")
            if watchdog is not None:
                lookups.stats()
                _notify("WATCHDOG=1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rosterd", description="Holds provisioned POSIX users and groups and answers lookups."
    )
    parser.add_argument(
        "--config", type=Path,
        help="config file (default: $ROSTERD_CONFIG or /etc/rosterd/rosterd.toml)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"],
        help="least severe messages to log (default: info)",
    )
    args = parser.parse_args(argv)
    os.environ[NSS_DISABLE_ENV] = "1"
    os.umask(0o077)
    try:
        cfg = config.load_config(args.config)
    except ConfigError as err:
        print(f"rosterd: {err}", file=sys.stderr)
        return 1
    _setup_logging(args.log_level)

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        serve(cfg, stop)
    except RosterError as err:
        log.error("%s", err)
        return 1
    except OSError as err:
        log.error("cannot start: %s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
