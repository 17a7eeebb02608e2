"""Stopping the servers a test started, by PID, without ever waiting forever."""

from __future__ import annotations

import subprocess

STOP_TIMEOUT_S = 10.0


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str] | None) -> None:
    """SIGTERM, then SIGKILL if the process is still there after STOP_TIMEOUT_S."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
