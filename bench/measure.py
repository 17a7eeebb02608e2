"""Runs the C drivers against a source or the echo floor and collects their figures."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
    # CPU time the source's daemon processes spent per call (warm-up included),
    # None for the floor and for sources without a daemon.
    daemon_cpu_us: float | None = None


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


def _cpu_seconds(pids: Sequence[int]) -> float:
    """User plus system CPU time of these processes so far (proc(5), /proc/PID/stat)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a short-lived helper that has gone
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def lookups(source: RunningSource, users: int, driver: Path, key_files: dict[str, Path],
            plan: Plan, kinds: Sequence[str] = LOOKUP_KINDS) -> list[Latency]:
    results = []
    daemons = source.view.daemon_pids()
    for kind in kinds:
        for threads in THREAD_COUNTS:
            argv = [str(driver), "-k", kind, "-f", str(key_files[kind]),
                    "-n", str(plan.iterations), "-t", str(threads), "-w", str(plan.warmup)]
            what = f"lookup_bench {kind} x{threads} on {source.name} ({users} users)"
            cpu_before = _cpu_seconds(daemons)
            figures = _driver_json(source.view.run(argv, source.env, DRIVER_TIMEOUT_S), what)
            calls = threads * (plan.iterations + plan.warmup)
            cpu_us = (_cpu_seconds(daemons) - cpu_before) * 1e6 / calls if daemons else None
            results.append(replace(_latency(source.name, users, figures), daemon_cpu_us=cpu_us))
            cpu_note = f", daemon CPU {cpu_us:.1f} us/call" if cpu_us is not None else ""
            print(f"  {kind:<10} {threads} thread(s): median {figures['median_us']} us, "
                  f"p99 {figures['p99_us']} us, failures {figures['failures']}{cpu_note}",
                  flush=True)
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


def memory_kib(pids: Sequence[int]) -> dict[str, int]:
    """Pss and Rss summed over a daemon's processes, from /proc/PID/smaps_rollup.

    Pss splits each shared page between the processes sharing it, so a daemon
    that forks (rosterd's lookup process, SSSD's responders) is not counted
    twice for the pages parent and child still share; Rss is shown beside it.
    """
    fields = {"Pss": 0, "Rss": 0}
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
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
