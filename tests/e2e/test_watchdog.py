"""rosterd feeds systemd's watchdog (WATCHDOG=1) at half of WATCHDOG_USEC, as its unit asks."""

from __future__ import annotations

import os
import socket
import time

from tests.helpers.daemon import make_rosterd, remove_rosterd


def test_daemon_feeds_the_watchdog_at_half_the_interval() -> None:
    daemon = make_rosterd()
    try:
        # WATCHDOG_PID is unset: sd_watchdog_enabled(3) then means "this process".
        daemon.start(extra_env={"WATCHDOG_USEC": "400000"})
        notify_path = daemon.root / "notify.sock"
        notify_path.unlink()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(notify_path))
            notify.settimeout(5)
            started = time.monotonic()
            feeds = 0
            while feeds < 3:
                if "WATCHDOG=1" in notify.recv(4096).decode().splitlines():
                    feeds += 1
            assert time.monotonic() - started < 2.0  # every 0.2 s
    finally:
        remove_rosterd(daemon)


def test_a_watchdog_meant_for_another_process_is_left_alone() -> None:
    daemon = make_rosterd()
    try:
        daemon.start(extra_env={"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())})
        notify_path = daemon.root / "notify.sock"
        notify_path.unlink()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(notify_path))
            notify.settimeout(1)
            try:
                message = notify.recv(4096).decode()
            except TimeoutError:
                message = ""
        assert "WATCHDOG=1" not in message
    finally:
        remove_rosterd(daemon)
