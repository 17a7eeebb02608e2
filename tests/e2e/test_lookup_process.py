"""Lookups are served by a child process of their own, which the daemon watches."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from tests.helpers.daemon import Rosterd
from tests.helpers.hostview import run_in_view


def test_lookups_come_from_a_child_that_sees_each_change_before_rosterctl_returns(
    rosterd: Rosterd,
) -> None:
    child = rosterd.lookup_pid
    rosterd.ctl("user", "add", "alice")
    result = run_in_view(["getent", "passwd", "alice"], nss_socket=rosterd.nss_socket)
    assert result.returncode == 0 and result.stdout.startswith("alice:x:20000:")
    status = json.loads(rosterd.ctl("status", json=True).stdout)
    assert status["lookups_served"] >= 1 and status["users"] == 1
    assert rosterd.lookup_pid == child


def test_the_daemon_stops_when_its_lookup_process_dies(rosterd: Rosterd) -> None:
    os.kill(rosterd.lookup_pid, signal.SIGKILL)
    assert rosterd.process is not None
    deadline = time.monotonic() + 10
    while rosterd.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rosterd.process.returncode == 1
    assert "lookup process has exited" in rosterd.log()


def test_a_clean_stop_ends_the_lookup_process_too(rosterd: Rosterd) -> None:
    child = rosterd.lookup_pid
    assert rosterd.stop() == 0
    assert not Path(f"/proc/{child}").exists()
    assert not rosterd.nss_socket.exists()
