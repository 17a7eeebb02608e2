"""Measures SCIM provisioning over HTTPS: creates per second, initial syncs, lookups meanwhile.

Not a test: it starts a real rosterd (HTTPS with a test CA, as the e2e tests do,
through tests/helpers), prints its figures and writes them to
build/bench/scim.json. Every create is durable before its answer (SQLite WAL,
synchronous=FULL). Lookups are sampled through the real NSS module by one
process in a private mount namespace (tools/roster-view) calling getpwnam.

    .venv/bin/python bench/scim_bench.py [--creates 2000] [--sync 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers.hostview import NATIVE, ROSTER_VIEW  # noqa: E402
from tests.helpers.scim import PATCH_OP, USER, ScimSession, scim_session  # noqa: E402
from tests.helpers.tls import trusting  # noqa: E402

GROUP_RATIO = 0.2
MEMBERSHIPS_PER_USER = 5
MEMBERS_PER_PATCH = 100
# A Python loop inside the namespace: getpwnam through glibc and the module, timed.
# It stops when the stop file appears (signals would reach only roster-view's shell).
_SAMPLER = r"""
import os, pwd, sys, time
name, seconds, pause, stop = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
end = time.monotonic() + seconds
while time.monotonic() < end and not os.path.exists(stop):
    t = time.perf_counter_ns()
    try:
        pwd.getpwnam(name); print(time.perf_counter_ns() - t)
    except KeyError:  # the module's 100 ms deadline passed (UNAVAIL): counted, not timed
        print(-1)
    time.sleep(pause)
"""


def _parallel(clients: list[httpx.Client], jobs: list[Callable[[httpx.Client], None]]) -> float:
    """Runs the jobs on the clients, one thread per client; returns the wall time."""
    lock = threading.Lock()
    pending = list(reversed(jobs))
    failures: list[str] = []

    def worker(client: httpx.Client) -> None:
        while True:
            with lock:
                if not pending or failures:
                    return
                job = pending.pop()
            try:
                job(client)
            except Exception as err:  # reported once all threads stop
                with lock:
                    failures.append(repr(err))

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, first: {failures[0]}")
    return time.monotonic() - started


def _clients(session: ScimSession, count: int) -> list[httpx.Client]:
    return [httpx.Client(base_url=session.daemon.scim_url,
                         verify=trusting(session.daemon.ca_file),
                         timeout=120, headers={"Authorization": f"Bearer {session.token}"})
            for _ in range(count)]


def _create_job(user_name: str, ids: dict[str, str]) -> Callable[[httpx.Client], None]:
    def run(client: httpx.Client) -> None:
        answer = client.post("/Users", json={"schemas": [USER], "userName": user_name,
                                             "name": {"givenName": "Bench", "familyName": "User"}})
        if answer.status_code != 201:
            raise RuntimeError(f"create {user_name}: {answer.status_code} {answer.text[:200]}")
        ids[user_name] = answer.json()["id"]
    return run


def creates_per_second(clients: int, count: int) -> float:
    with scim_session() as session:
        pool = _clients(session, clients)
        ids: dict[str, str] = {}
        wall = _parallel(pool, [_create_job(f"c{i}@bench.example", ids) for i in range(count)])
        for client in pool:
            client.close()
    return count / wall


def _stop_file(session: ScimSession) -> Path:
    return session.daemon.root / "stop-sampling"


def _start_sampler(session: ScimSession, name: str, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(ROSTER_VIEW), "--socket", str(session.daemon.nss_socket), "--",
         sys.executable, "-c", _SAMPLER, name, str(seconds), "0.005",
         str(_stop_file(session))],
        stdout=subprocess.PIPE, text=True, env={"LD_LIBRARY_PATH": str(NATIVE),
                                                "PATH": "/usr/bin:/bin"})


def _latencies(process: subprocess.Popen[str]) -> tuple[list[float], int]:
    """Answered lookups in microseconds, and how many failed."""
    out, _ = process.communicate(timeout=3600)
    values = [int(line) for line in out.split()]
    return [v / 1000 for v in values if v >= 0], sum(1 for v in values if v < 0)


def initial_sync(users: int, clients: int) -> dict[str, Any]:
    """Pushes users, then groups, then memberships in PATCHes, as an IdP's first cycle does."""
    with scim_session() as session:
        probe = session.http.post("/Users", json={"schemas": [USER],
                                                  "userName": "probe@bench.example"})
        assert probe.status_code == 201
        at_rest, _ = _latencies(_start_sampler(session, "probe", 5))
        pool = _clients(session, clients)
        sampler = _start_sampler(session, "probe", 24 * 3600)
        ids: dict[str, str] = {}
        t_users = _parallel(pool, [_create_job(f"u{i}@bench.example", ids)
                                   for i in range(users)])
        group_count = int(users * GROUP_RATIO)
        group_ids: list[str] = []
        lock = threading.Lock()

        def group_job(i: int) -> Callable[[httpx.Client], None]:
            def run(client: httpx.Client) -> None:
                answer = client.post("/Groups", json={"displayName": f"Bench Group {i}"})
                if answer.status_code != 201:
                    raise RuntimeError(f"group {i}: {answer.status_code} {answer.text[:200]}")
                with lock:
                    group_ids.append(answer.json()["id"])
            return run

        t_groups = _parallel(pool, [group_job(i) for i in range(group_count)])
        user_ids = list(ids.values())
        member_jobs = []
        for slot, group_id in enumerate(group_ids):
            # Every user in MEMBERSHIPS_PER_USER groups on average: round-robin slices.
            per_group = len(user_ids) * MEMBERSHIPS_PER_USER // max(1, len(group_ids))
            start = slot * per_group // MEMBERSHIPS_PER_USER
            members = [user_ids[(start + k) % len(user_ids)] for k in range(per_group)]
            for chunk in range(0, len(members), MEMBERS_PER_PATCH):
                part = members[chunk:chunk + MEMBERS_PER_PATCH]
                member_jobs.append(_member_job(group_id, part))
        t_members = _parallel(pool, member_jobs)
        _stop_file(session).touch()
        during, failed = _latencies(sampler)
        for client in pool:
            client.close()
    return {
        "users": users, "groups": group_count, "memberships": users * MEMBERSHIPS_PER_USER,
        "clients": clients, "users_s": round(t_users, 1), "groups_s": round(t_groups, 1),
        "memberships_s": round(t_members, 1),
        "total_s": round(t_users + t_groups + t_members, 1),
        "lookup_median_us_at_rest": round(statistics.median(at_rest), 1),
        "lookup_median_us_during_sync": round(statistics.median(during), 1),
        "lookup_p99_us_during_sync": round(sorted(during)[int(len(during) * 0.99)], 1),
        "lookup_samples_during_sync": len(during),
        "lookups_failed_during_sync": failed,
    }


def _member_job(group_id: str, members: list[str]) -> Callable[[httpx.Client], None]:
    def run(client: httpx.Client) -> None:
        answer = client.patch(f"/Groups/{group_id}", json={
            "schemas": [PATCH_OP], "Operations": [
                {"op": "add", "path": "members", "value": [{"value": m} for m in members]}]})
        if answer.status_code != 204:
            raise RuntimeError(f"members: {answer.status_code} {answer.text[:200]}")
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=2000, help="users per creates run")
    parser.add_argument("--sync", type=int, nargs="*", default=[10_000, 100_000],
                        help="initial-sync sizes (users)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients for syncs")
    args = parser.parse_args()
    results: dict[str, Any] = {"creates_per_s": {}, "syncs": []}
    for clients in (1, 4):
        rate = creates_per_second(clients, args.creates)
        results["creates_per_s"][str(clients)] = round(rate, 1)
        print(f"creates over HTTPS, {clients} client(s): {rate:.0f}/s", flush=True)
    for users in args.sync:
        figures = initial_sync(users, args.clients)
        results["syncs"].append(figures)
        print(json.dumps(figures), flush=True)
    out = REPO / "build" / "bench" / "scim.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
