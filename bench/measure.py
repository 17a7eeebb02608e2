"""Runs the C drivers against a source or the echo floor and collects their figures."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from population import LOOKUP_KINDS
from sources import RunningSource

THREAD_COUNTS = (1, 2)
DRIVER_TIMEOUT_S = 300


@dataclass(frozen=True)
class Plan:
    """How hard to push one source: timed calls per thread, distinct keys, untimed warm-up calls.

    A caching source (nscd, SSSD) gets warm-up calls covering every key it will
    be asked, so what is timed is a warm-cache hit.
    """

    iterations: int
    keys: int
    warmup: int


@dataclass(frozen=True)
class Latency:
    source: str
    users: int
    kind: str
    threads: int
    median_us: float
    p99_us: float
    samples: int
    failures: int


@dataclass(frozen=True)
class Enumeration:
    source: str
    users: int
    entries: int
    getpwent_ms: float  # the setpwent/getpwent_r loop in lookup_bench
    getent_ms: float  # `getent passwd`, a whole process, output read through a pipe


def _driver_json(result: subprocess.CompletedProcess[str], what: str) -> dict[str, Any]:
    """The one JSON line a driver prints last (see bench/timed_run.c)."""
    if result.returncode != 0:
        raise RuntimeError(f"{what} exited {result.returncode}: {result.stderr.strip()}")
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def _latency(source: str, users: int, figures: dict[str, Any]) -> Latency:
    return Latency(source=source, users=users, kind=figures["kind"], threads=figures["threads"],
                   median_us=figures["median_us"], p99_us=figures["p99_us"],
                   samples=figures["samples"], failures=figures["failures"])


def lookups(source: RunningSource, users: int, driver: Path, key_files: dict[str, Path],
            plan: Plan, kinds: Sequence[str] = LOOKUP_KINDS) -> list[Latency]:
    results = []
    for kind in kinds:
        for threads in THREAD_COUNTS:
            argv = [str(driver), "-k", kind, "-f", str(key_files[kind]),
                    "-n", str(plan.iterations), "-t", str(threads), "-w", str(plan.warmup)]
            what = f"lookup_bench {kind} x{threads} on {source.name} ({users} users)"
            figures = _driver_json(source.view.run(argv, source.env, DRIVER_TIMEOUT_S), what)
            results.append(_latency(source.name, users, figures))
            print(f"  {kind:<10} {threads} thread(s): median {figures['median_us']} us, "
                  f"p99 {figures['p99_us']} us, failures {figures['failures']}", flush=True)
    return results


def enumeration(source: RunningSource, users: int, driver: Path) -> Enumeration:
    figures = _driver_json(source.view.run([str(driver), "-k", "enumerate"], source.env,
                                           DRIVER_TIMEOUT_S), f"enumeration on {source.name}")
    started = time.monotonic()
    getent = source.view.run(["getent", "passwd"], source.env, DRIVER_TIMEOUT_S)
    getent_ms = (time.monotonic() - started) * 1000
    if getent.returncode != 0:
        raise RuntimeError(f"getent passwd on {source.name} exited {getent.returncode}")
    entries = int(figures["count"])
    print(f"  enumeration: {entries} entries, getpwent loop {figures['total_ms']} ms, "
          f"getent passwd {getent_ms:.0f} ms ({len(getent.stdout.splitlines())} lines)", flush=True)
    return Enumeration(source.name, users, entries, float(figures["total_ms"]), getent_ms)


def resident_kib(pids: Sequence[int]) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) from /proc/PID/status, summed over a daemon's processes."""
    fields = {"VmRSS": 0, "VmHWM": 0}
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in fields:
                fields[name] += int(value.split()[0])
    return fields


def floor(echo: Path, work: Path, iterations: int, users: int) -> list[Latency]:
    """The echo exchange, kept connection and connect per call, in 1 and 2 threads.

    `users` only labels the rows: the floor is measured again just before each
    population's rosterd case, so each is compared with a floor taken under the
    same conditions on a shared machine.
    """
    socket_path = work / "echo.sock"
    server = subprocess.Popen([str(echo), "serve", str(socket_path)], stdout=subprocess.PIPE,
                              stdin=subprocess.DEVNULL)
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != b"ready":
            raise RuntimeError("echo_server did not start")
        results = []
        for mode in ("kept", "connect"):
            for threads in THREAD_COUNTS:
                run = subprocess.run([str(echo), mode, str(socket_path), str(iterations),
                                      str(threads)], capture_output=True, text=True,
                                     timeout=DRIVER_TIMEOUT_S, check=False)
                figures = _driver_json(run, f"echo_server {mode} x{threads}")
                results.append(_latency("floor", users, figures))
                print(f"  {mode:<8} {threads} thread(s): median {figures['median_us']} us, "
                      f"p99 {figures['p99_us']} us", flush=True)
        return results
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()
