"""Benchmark: a Kochava outage on the local stack (``tools.local.outage.run_outage``).

Kochava (the local sink) answers 503 to every request for 6 scaled hours while 500 events are posted, then heals.
Printed: the requests Kochava saw during the outage (per event, and per scaled minute: the breaker allows 3 probes
a minute plus the batches in flight when it failed), the time to drain after recovery (real seconds on this
machine, and what that is at the local scale), and the events dead-lettered or delivered more than once (target:
none). Runs in a child process of its own (one LocalStack per process).
"""

from __future__ import annotations

import json
import sys

from bench.common import PYTHON, Result, base_env, run_child

NAME = "kochava outage"
EVENTS = 500
OUTAGE_S = 6 * 3600
TIME_SCALE = 1440


def child(events: int, outage_s: float, time_scale: float) -> dict[str, float]:
    """Inside the child: the outage run, as plain figures."""
    from functions.adapters.kochava_http import HttpPolicy
    from functions.names import DELIVERY_QUEUE
    from functions.pipeline.breaker import BreakerPolicy
    from tools.local.outage import run_outage

    result = run_outage(events=events, outage_s=outage_s, time_scale=time_scale)
    bound = result.request_bound(
        BreakerPolicy(), batch_size=DELIVERY_QUEUE.batch_size, attempts_per_send=1 + HttpPolicy().max_retries
    )
    return {
        "events": float(result.events),
        "accepted": float(result.accepted),
        "outage_minutes": result.outage_minutes,
        "outage_real_s": result.outage_real_s,
        "requests": float(result.requests_during_outage),
        "bound": float(bound),
        "drained": float(result.drained),
        "drain_real_s": result.drain_real_s,
        "drain_scaled_s": result.drain_s,
        "dead_lettered": float(sum(result.dead_lettered.values())),
        "not_once": float(
            sum(1 for count in result.delivered_per_uuid.values() if count != 1)
            + max(0, result.events - len(result.delivered_per_uuid))
        ),
        "time_scale": time_scale,
    }


def run(events: int = EVENTS, outage_s: float = OUTAGE_S, time_scale: float = TIME_SCALE) -> list[Result]:
    done = run_child(
        [PYTHON, "-m", "bench.outage", str(events), str(outage_s), str(time_scale)], env=base_env(), capture=True
    )
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    if done.returncode != 0 or not lines:
        return [Result(NAME, "requests per event during the outage", float("nan"), detail=f"child failed ({done})")]
    f = json.loads(lines[-1])
    detail = (
        f"{f['events']:.0f} events, Kochava 503 for {f['outage_minutes']:.0f} scaled min ({f['outage_real_s']:.1f} s "
        f"real at {f['time_scale']:.0f}x): {f['requests']:.0f} requests (bound {f['bound']:.0f}); drained "
        f"{'yes' if f['drained'] else 'NO'} {f['drain_real_s']:.1f} s after healing; {f['dead_lettered']:.0f} "
        f"dead-lettered, {f['not_once']:.0f} not delivered exactly once"
    )
    print(f"  {detail}", flush=True)
    per_minute = f["requests"] / f["outage_minutes"] if f["outage_minutes"] else float("nan")
    return [
        Result(
            NAME,
            "requests per event during a 6-hour outage (before the breaker: ~20)",
            f["requests"] / f["events"],
            target=f"<= {f['bound'] / f['events']:.1f}",
            ok=f["requests"] <= f["bound"],
            detail=detail,
        ),
        Result(NAME, "requests per scaled minute during the outage (3 probes/min + onset)", per_minute, unit="/min"),
        Result(NAME, "time to drain after recovery, local stack (real s)", f["drain_real_s"], unit="s"),
        Result(
            NAME,
            "events dead-lettered or not delivered exactly once",
            f["dead_lettered"] + f["not_once"],
            target="0",
            ok=f["dead_lettered"] + f["not_once"] == 0 and bool(f["drained"]),
        ),
    ]


if __name__ == "__main__":
    import contextlib
    import io

    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        figures = child(
            int(sys.argv[1]) if len(sys.argv) > 1 else EVENTS,
            float(sys.argv[2]) if len(sys.argv) > 2 else OUTAGE_S,
            float(sys.argv[3]) if len(sys.argv) > 3 else TIME_SCALE,
        )
    print(json.dumps(figures))
