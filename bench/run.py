"""`make bench`: rosterd's lookups against libnss_files, nscd and the socket floor, in one run.

Measures, with 1,000 and 100,000 users, getpwnam, getpwuid, getgrnam,
initgroups and a miss (median and p99, one and two threads) through each NSS
source in its own mount namespace, plus full enumeration and rosterd's memory;
prints the tables and writes them into docs/benchmarks.md. Needs root (mount
namespaces) and `make build`. Not a test: nothing here asserts on timing.
Every process it starts and every temporary directory is removed on the way
out, also after a failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from types import FrameType

import debs
import measure
import native
import population
import report
import sources
from measure import Plan
from population import Population

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "benchmarks.md"
POPULATIONS = (1_000, 100_000)
FLOOR_ITERATIONS = 20_000

# Enough calls for a stable p99 where a call costs microseconds; libnss_files
# reads the whole passwd file per call (milliseconds at 100,000 users), so it
# gets fewer. Caches get a warm-up over every key they are asked, and few
# enough keys that warming them through libnss_files stays affordable.
SOCKET_PLAN = Plan(iterations=20_000, keys=20_000, warmup=200)
# Keyed by "is this the small population".
FILES_PLANS = {True: Plan(iterations=20_000, keys=1_000, warmup=200),
               False: Plan(iterations=300, keys=300, warmup=5)}
CACHE_PLANS = {True: Plan(iterations=20_000, keys=1_000, warmup=1_000),
               False: Plan(iterations=20_000, keys=500, warmup=500)}

# Measured here on 2026-11-24: SSSD 2.8's files provider had not finished
# importing 100,000 users and 120,000 groups into its cache after 437 s (sssd_be
# at 294 MB resident), most of the whole benchmark's 10-minute budget.
SSSD_MAX_USERS = 1_000
SSSD_TOO_SLOW = ("left out: SSSD's files provider had not finished importing 100,000 users "
                 "and 120,000 groups after 437 s when tried on this machine")

SourceFactory = Callable[[Path], AbstractContextManager[sources.RunningSource]]


def _raise_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # Turns SIGTERM into an exception, so the finally blocks stop daemons and remove dirs.
    raise KeyboardInterrupt(f"signal {signum}")


def _measure_source(results: report.Results, name: str, users: int, start: SourceFactory,
                    work: Path, pop: Population, plan: Plan, lookup_bench: Path) -> None:
    print(f"{name}, {users:,} users:", flush=True)
    results.plans[(name, users)] = plan
    key_files = pop.write_keys(work / "keys", plan.keys)
    try:
        with start(work) as source:
            results.latencies += measure.lookups(source, users, lookup_bench, key_files, plan)
            results.enumerations.append(measure.enumeration(source, users, lookup_bench))
            daemons = source.view.daemon_pids()
            if daemons:
                results.memory_kib[(name, users)] = measure.memory_kib(daemons)
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as err:
        # One source failing (to start, or a driver hanging) must not cost the others' figures.
        traceback.print_exc()
        results.not_measured.append(f"{name} with {users:,} users: {err}")


def _sssd_package(results: report.Results) -> sources.SssdPackage | None:
    """SSSD as installed on the host, else unpacked from Debian's packages; None if neither."""
    if Path("/usr/sbin/sssd").exists():
        return sources.SssdPackage(root=None)
    print("unpacking Debian's sssd-common (not installing it) ...", flush=True)
    try:
        return sources.SssdPackage(root=debs.unpacked("sssd-common", REPO / "build" / "bench"))
    except (RuntimeError, OSError, subprocess.CalledProcessError) as err:
        results.not_measured.append(f"sssd: {err}")
        return None


def _run_population(results: report.Results, users: int, work: Path,
                    binaries: dict[str, Path], sssd: sources.SssdPackage | None) -> None:
    config_path = work / "rosterd.toml"
    runtime_dir = work / "run"
    population.write_config(config_path, work / "state", runtime_dir, work / "home")
    print(f"seeding {users:,} users through rosterd's Accounts API ...", flush=True)
    started = time.monotonic()
    pop = population.seed(config_path, users)
    print(f"  seeded in {time.monotonic() - started:.0f} s", flush=True)

    def start_rosterd(dir_: Path) -> AbstractContextManager[sources.RunningSource]:
        return sources.rosterd(dir_, config_path, runtime_dir / "nss.sock")

    small = users <= POPULATIONS[0]
    cache_plan = CACHE_PLANS[small]
    cases: list[tuple[str, SourceFactory, Plan]] = [
        ("rosterd", start_rosterd, SOCKET_PLAN),
        ("files", lambda dir_: sources.files(dir_, pop), FILES_PLANS[small]),
        ("nscd", lambda dir_: sources.nscd(dir_, pop, shared=True), cache_plan),
        ("nscd-socket", lambda dir_: sources.nscd(dir_, pop, shared=False), cache_plan),
    ]
    if sssd is not None and users > SSSD_MAX_USERS:
        results.not_measured.append(f"sssd with {users:,} users: {SSSD_TOO_SLOW}")
    elif sssd is not None:
        cases += [
            ("sssd", lambda dir_: sources.sssd(dir_, pop, sssd, memcache=True), cache_plan),
            ("sssd-socket", lambda dir_: sources.sssd(dir_, pop, sssd, memcache=False),
             cache_plan),
        ]
    print(f"floor (C echo server), before the {users:,}-user cases:", flush=True)
    results.floor += measure.floor(binaries["echo_server"], work, FLOOR_ITERATIONS, users)
    for name, start, plan in cases:
        case_dir = work / name
        case_dir.mkdir()
        _measure_source(results, name, users, start, case_dir, pop, plan,
                        binaries["lookup_bench"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, action="append",
                        help="population size to measure, repeatable (default: 1000 and 100000)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/run.py: needs root (each NSS source runs in its own mount namespace)",
              file=sys.stderr)
        return 2
    if not (sources.NATIVE_DIR / "libnss_roster.so.2").exists():
        print(f"bench/run.py: {sources.NATIVE_DIR}/libnss_roster.so.2 is missing; run make build",
              file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    binaries = native.build(REPO / "build" / "bench")
    results = report.Results()
    sssd = _sssd_package(results)
    # Short and under /tmp: rosterd's socket paths must fit in 108 bytes.
    work = Path(tempfile.mkdtemp(prefix="rb-", dir="/tmp"))
    try:
        for users in args.users or POPULATIONS:
            population_dir = work / f"u{users}"
            population_dir.mkdir()
            _run_population(results, users, population_dir, binaries, sssd)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    block = report.render(results)
    print("\n" + block)
    report.write_docs(DOCS, block)
    print(f"written into {DOCS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
