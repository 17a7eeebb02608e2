"""Compiles the benchmark's C programs (lookup_bench, echo_server) into build/bench/."""

from __future__ import annotations

import subprocess
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
# The NSS module's own warning flags; libc and pthread only, nothing else linked.
CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror", "-pthread"]
PROGRAMS = ("lookup_bench", "echo_server")


def build(out_dir: Path) -> dict[str, Path]:
    """Compiles each program with the shared timing code; returns their paths by name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    built = {}
    for program in PROGRAMS:
        binary = out_dir / program
        subprocess.run(
            ["gcc", *CFLAGS, "-o", str(binary),
             str(BENCH_DIR / f"{program}.c"), str(BENCH_DIR / "timed_run.c")],
            check=True,
        )
        built[program] = binary
    return built
