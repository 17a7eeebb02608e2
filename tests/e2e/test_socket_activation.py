"""rosterd adopts the socket rosterd.socket hands it (sd_listen_fds(3)) and leaves it in place."""

from __future__ import annotations

import os
import socket
import subprocess
import time

from rosterd import doctor

from tests.helpers.daemon import VENV_BIN, make_rosterd, remove_rosterd

LAUNCH = """
import os, sys
os.dup2(int(sys.argv[1]), 3)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
os.execv(sys.argv[2], sys.argv[2:])
"""


def test_an_activated_nss_socket_is_served_and_kept_across_a_restart() -> None:
    daemon = make_rosterd()
    try:
        daemon.runtime_dir.mkdir()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(daemon.nss_socket))
        listener.listen(16)
        os.set_inheritable(listener.fileno(), True)
        inode = daemon.nss_socket.stat().st_ino
        for _ in range(2):  # a restart re-adopts the same socket
            process = subprocess.Popen(
                [str(VENV_BIN / "python"), "-c", LAUNCH, str(listener.fileno()),
                 str(VENV_BIN / "rosterd"), "--config", str(daemon.config_path)],
                pass_fds=(listener.fileno(),), stderr=subprocess.PIPE)
            deadline = time.monotonic() + 30
            while not daemon.admin_socket.exists():
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert doctor.ping(daemon.nss_socket)
            process.terminate()
            assert process.wait(timeout=15) == 0
            # The socket file is systemd's: still there, the same one, still listening.
            assert daemon.nss_socket.stat().st_ino == inode
        listener.close()
    finally:
        remove_rosterd(daemon)
