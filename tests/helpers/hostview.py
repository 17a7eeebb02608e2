"""Runs commands in a private view of the host whose glibc resolves through rosterd's NSS module.

A thin wrapper over tools/roster-view, the same tool the README shows, so the
tests exercise exactly what a person would type.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROSTER_VIEW = REPO / "tools" / "roster-view"
NATIVE = REPO / "build" / "native"


def run_in_view(
    argv: Sequence[str],
    *,
    nss_socket: Path | str,
    nss_module: str = "roster",
    env: Mapping[str, str] | None = None,
    timeout: float = 30,
    input: str | None = None,
    keep: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs argv with nsswitch.conf reading `files <nss_module>` for passwd, group and shadow."""
    command = [str(ROSTER_VIEW), "--socket", str(nss_socket), "--module", nss_module]
    if keep is not None:
        command += ["--keep", str(keep)]
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [*command, "--", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        input=input,
        check=False,
    )
