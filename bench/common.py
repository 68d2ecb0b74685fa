"""What every benchmark shares: run conditions, results with their targets, medians, child processes on one core.

Example:
    >>> r = Result("transform", "events/s (CPU)", 41000.0, ">= 40,000", True)
    >>> r.verdict
    'met'
"""

from __future__ import annotations

import compileall
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@dataclass
class Result:
    """One figure of one benchmark, with its target (``ok`` None: a figure for information, no target)."""

    bench: str
    what: str
    value: float
    target: str = ""
    ok: bool | None = None
    unit: str = ""
    detail: str = ""

    @property
    def verdict(self) -> str:
        if self.ok is None:
            return "info"
        return "met" if self.ok else "MISSED"


@dataclass
class Conditions:
    """The machine and its load when the benchmarks ran (the figures mean little without them)."""

    nproc: int
    cpu_model: str
    python: str
    load_before: tuple[float, float, float]
    started: str
    pinned_cpu: int | None
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        load = ", ".join(f"{x:.2f}" for x in self.load_before)
        pinned = f"child processes pinned to CPU {self.pinned_cpu}" if self.pinned_cpu is not None else "not pinned"
        return [
            f"date (UTC): {self.started}",
            f"machine: {self.nproc} CPU(s), {self.cpu_model}; Python {self.python} ({platform.machine()})",
            f"load average before the run (1/5/15 min): {load}; {pinned}",
            *self.notes,
        ]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def bench_cpu() -> int | None:
    """The CPU child processes are pinned to: the last one this process may use (None where affinity is unknown)."""
    try:
        return max(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def conditions() -> Conditions:
    return Conditions(
        nproc=os.cpu_count() or 1,
        cpu_model=cpu_model(),
        python=platform.python_version(),
        load_before=os.getloadavg(),
        started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        pinned_cpu=bench_cpu(),
    )


@dataclass(frozen=True)
class ChildRun:
    """A finished child process: exit status, wall seconds, CPU seconds (user + system) and peak RSS."""

    returncode: int
    wall_s: float
    cpu_s: float
    max_rss_kib: int  # ru_maxrss: includes what the child shared with this process before its exec
    stdout: bytes


def run_child(
    args: Sequence[str],
    *,
    stdin: IO[bytes] | None = None,
    env: Mapping[str, str] | None = None,
    cpu: int | None = None,
    capture: bool = False,
    stdout: IO[bytes] | None = None,
) -> ChildRun:
    """Run ``args`` (pinned to ``cpu`` when given) and measure it with ``wait4``: its own CPU time, not the load."""

    def pin() -> None:  # runs in the child before exec
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    started = time.perf_counter()
    process = subprocess.Popen(
        list(args),
        stdin=stdin,
        stdout=subprocess.PIPE if capture else (stdout or subprocess.DEVNULL),
        stderr=subprocess.DEVNULL,
        env=dict(env) if env is not None else None,
        cwd=REPO,
        preexec_fn=pin if cpu is not None else None,  # the benchmarks start no thread before this
    )
    out = process.stdout.read() if capture and process.stdout is not None else b""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return ChildRun(process.returncode, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, out)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float]) -> str:
    """``min..max`` of the runs, to show how noisy the machine was."""
    if not values:
        return "-"
    return f"{min(values):,.0f}..{max(values):,.0f}"


def self_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# The repo's own packages that the benchmarked processes import.
REPO_PACKAGES = ("functions", "infra", "tools", "bench")


def precompile_repo() -> int:
    """Write the bytecode of the repo's packages (``__pycache__``, git-ignored), as any Python run does when it may.

    Deployed assets carry bytecode (infra/bundling.py) and site-packages got theirs from pip, so without this a
    shell with ``PYTHONDONTWRITEBYTECODE`` set (CI images often set it) would have every child process compile the
    repo's modules from source: ~20 ms of each cold start and of each transform run measured here that no user
    pays. Returns the number of packages compiled without error.
    """
    return sum(bool(compileall.compile_dir(REPO / name, quiet=1)) for name in REPO_PACKAGES)


def base_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: this one, with the repo on the path and nothing from a shell's AWS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "KOCHAVA_"))}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env
