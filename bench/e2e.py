"""Benchmark 4: the local stack end to end (``tools.local.LocalStack``): events per second from HTTP to the sink,
and peak memory.

Runs in a child process of its own (``python -m bench.e2e``: one LocalStack per process, and the child's peak
RSS is the stack's), which posts the realistic mix (``bench.workload``) over HTTP to the local API in bodies of
50 events (native) and Segment batches, waits until both queues are drained, and prints one JSON line.
Everything (moto server, API, the enricher and deliverer pollers with the real handlers, the Kochava sink)
shares this machine's two cores, so the figure measures the local emulation as much as the pipeline's code: it
is for information (no target in issue 8) and to catch regressions.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from bench.common import PYTHON, Result, base_env, run_child
from bench.workload import build_mix

NAME = "local stack"
EVENTS_PER_BODY = 50


def _bodies(events: int) -> list[tuple[str, bytes, int]]:
    mix = build_mix(events, seed=4)
    bodies: list[tuple[str, bytes, int]] = []
    native = mix.native.splitlines()
    for start in range(0, len(native), EVENTS_PER_BODY):
        chunk = native[start : start + EVENTS_PER_BODY]
        bodies.append(("native", b'{"batch": [' + b",".join(chunk) + b"]}", len(chunk)))
    for line in mix.segment.splitlines():
        count = len(json.loads(line).get("batch", [None]))
        bodies.append(("segment", line, count))
    return bodies


def child(events: int) -> dict[str, float]:
    """Inside the child: start the stack, post, wait for the drain, report."""
    from tools.local.stack import LocalConfig, LocalStack

    bodies = _bodies(events)
    with LocalStack(LocalConfig()) as stack:
        assert stack.sink is not None
        started = time.perf_counter()
        refused = 0
        for route, body, _count in bodies:
            if stack.post(route, body).status_code != 202:
                refused += 1
        posted = time.perf_counter()
        drained = stack.wait_drained(timeout_s=600, settle_s=0.2)
        finished = time.perf_counter()
        sink_requests = len(stack.sink.requests)
        delivered = len(stack.sink.delivered)
    return {
        "events": float(sum(count for _, _, count in bodies)),
        "bodies": float(len(bodies)),
        "refused": float(refused),
        "post_s": posted - started,
        "total_s": finished - started,
        "drained": float(drained),
        "sink_requests": float(sink_requests),
        "delivered": float(delivered),
        "peak_rss_kib": float(peak_rss_kib()),
    }


def peak_rss_kib() -> int:
    """This process's peak RSS since its exec (``VmHWM``). Not ``wait4``'s ``ru_maxrss``: that also counts the
    parent's pages the child had before its exec (fork), so a big parent would inflate it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run(events: int = 2_000, echo: bool = True) -> list[Result]:
    done = run_child([PYTHON, "-m", "bench.e2e", str(events)], env=base_env(), capture=True)
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    if done.returncode != 0 or not lines:
        return [Result(NAME, "events/s HTTP -> sink", float("nan"), detail=f"child failed (exit {done.returncode})")]
    figures = json.loads(lines[-1])
    rate = figures["events"] / figures["total_s"]
    peak_mib = figures["peak_rss_kib"] / 1024
    detail = (
        f"{figures['events']:.0f} events in {figures['bodies']:.0f} bodies, {figures['refused']:.0f} refused; "
        f"posting {figures['post_s']:.1f} s, drained {'yes' if figures['drained'] else 'NO'} after "
        f"{figures['total_s']:.1f} s; sink {figures['delivered']:.0f} delivered of {figures['sink_requests']:.0f} "
        f"requests (heartbeats are filtered, not sent)"
    )
    if echo:
        print(f"  {detail}", flush=True)
    return [
        Result(
            NAME, "events/s from HTTP to the sink (all local, 2 shared cores)", rate, unit="events/s", detail=detail
        ),
        Result(NAME, "peak memory of the whole local stack (one process)", peak_mib, unit="MiB", detail="VmHWM"),
    ]


if __name__ == "__main__":
    import contextlib
    import io

    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        result = child(int(sys.argv[1]) if len(sys.argv) > 1 else 2_000)
    print(json.dumps(result))
