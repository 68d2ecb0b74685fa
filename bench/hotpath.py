"""Benchmark 1b: the mapping's hot path in one process, bytes in -> Kochava payload bytes out, against orjson.

Issue 27's method. Each event is a JSON body as the enricher receives it; the timed path is what the enricher
does per event without its I/O: ``parse_body_values`` (orjson, then validation by pydantic-core straight into plain
data, Segment calls completed and converted; no model instance per event), ``to_kochava``, and ``orjson.dumps`` of
the payload. The floor is ``orjson.loads`` of the same body +
``orjson.dumps`` of the parsed object, timed in the same rounds, alternating with the path, on the process's
own CPU time (``time.process_time``: other sessions' work barely moves it). The ratio path / floor per round,
median over the rounds, is the figure: the floor moves with the machine, the ratio does not.

Workloads: the Segment mix of the side-by-side measurement with the peer (track, screen and identify calls, one
call per body, each with a fresh ``messageId``), and the native events of ``bench.workload``.

    python -m bench.hotpath                  # both mixes, figures and ratios
    python -m bench.hotpath --profile segment  # cProfile of the Segment path, top functions by own time

Example:
    >>> bodies = segment_bodies(8)
    >>> len(bodies), sorted({orjson.loads(b)["type"] for b in bodies})
    (8, ['identify', 'screen', 'track'])
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from bench.common import Result, median
from bench.workload import build_mix
from functions.pipeline.contract import parse_timestamp, validate_native_values, validate_segment_call
from functions.pipeline.events import FilteredCall, Rejection, parse_body_values, plain_segment_to_event
from functions.pipeline.kochava import to_kochava
from functions.pipeline.segment import Received, complete_call, filtered_because, merge_shared
from functions.pipeline.settings import Settings
from tools.samples import DEMO_ENV, GOLDEN_NOW, SAMPLES_DIR

NAME = "hot path"
TARGET_SEGMENT_RATIO = 2.6  # about twice the peer's speed here (shared/notes/facts.md)
TARGET_NATIVE_RATIO = 3.0


def _sample(name: str) -> Any:
    return orjson.loads((SAMPLES_DIR / f"{name}.json").read_bytes())


def segment_calls() -> list[dict[str, Any]]:
    """The Segment calls of the mix: the samples' track, screen and identify calls, batch context merged in."""
    calls: list[dict[str, Any]] = [_sample("segment_track")]
    for name in ("segment_batch", "segment_library_batch"):
        body = _sample(name)
        shared = {key: body[key] for key in ("context", "integrations") if isinstance(body.get(key), dict)}
        calls += [merge_shared(shared, call) for call in body["batch"] if call.get("type") != "page"]
    return [call for call in calls if call["type"] in ("track", "screen", "identify")]


def segment_bodies(events: int, seed: int = 27) -> list[bytes]:
    rng = random.Random(seed)
    calls = segment_calls()
    out = []
    for index in range(events):
        call = dict(calls[index % len(calls)])
        call["messageId"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        out.append(orjson.dumps(call))
    return out


def native_bodies(events: int) -> list[bytes]:
    return build_mix(events * 4 // 3).native.splitlines()[:events]


def make_path(route: str) -> Callable[[list[bytes]], int]:
    """The timed path: every body -> its payload bytes (rejections and filtered calls count, as their line)."""
    settings = Settings.from_env(dict(DEMO_ENV))
    now = parse_timestamp(GOLDEN_NOW)
    received = Received("bench-request", int(now * 1000))
    dumps = orjson.dumps

    def path(bodies: list[bytes]) -> int:
        size = 0
        for body in bodies:
            for item in parse_body_values(body, route, received):  # type: ignore[arg-type]
                if isinstance(item, Rejection | FilteredCall):
                    size += len(dumps(item.reason))
                    continue
                outcome = to_kochava(item, settings, now)
                size += len(dumps(outcome.payload))
        return size

    return path


STAGES = ("loads", "validate", "convert", "map", "dumps")


def stages(route: str, bodies: list[bytes]) -> dict[str, Callable[[], object]]:
    """The path's stages, each a loop over every body's input to that stage (built here, beforehand), so that each
    can be counted alone (``--once ROUTE --isolate --stages``): ``orjson.loads``; validation (Segment:
    ``complete_call``, ``filtered_because`` and the plain validator); the Segment conversion into the internal
    event (native: none); ``to_kochava``; ``orjson.dumps`` of the payload. The whole path less their sum is the
    body/call plumbing."""
    settings = Settings.from_env(dict(DEMO_ENV))
    now = parse_timestamp(GOLDEN_NOW)
    received = Received("bench-request", int(now * 1000))
    documents = [orjson.loads(body) for body in bodies]
    calls = [complete_call(doc, 0, received)[0] for doc in documents] if route == "segment" else []  # type: ignore[index]
    validated = [validate_segment_call(call) for call in calls]
    events = [plain_segment_to_event(v) for v in validated] if calls else [validate_native_values(d) for d in documents]
    payloads = [to_kochava(event, settings, now).payload for event in events]

    def validate() -> None:
        if route != "segment":
            for document in documents:
                validate_native_values(document)
            return
        for document in documents:
            call = complete_call(document, 0, received)[0]  # type: ignore[index]
            filtered_because(call)
            validate_segment_call(call)

    return {
        "loads": lambda: [orjson.loads(body) for body in bodies],
        "validate": validate,
        "convert": lambda: [plain_segment_to_event(v) for v in validated],
        "map": lambda: [to_kochava(event, settings, now) for event in events],
        "dumps": lambda: [orjson.dumps(payload) for payload in payloads],
    }


def floor(bodies: list[bytes]) -> int:
    loads, dumps = orjson.loads, orjson.dumps
    size = 0
    for body in bodies:
        size += len(dumps(loads(body)))
    return size


def measure(route: str, bodies: list[bytes], rounds: int) -> tuple[list[float], list[float]]:
    """CPU seconds per round of the path and of the floor, the two alternating."""
    path = make_path(route)
    path(bodies[:200])  # warm: caches, lazily built validators
    path_s: list[float] = []
    floor_s: list[float] = []
    for index in range(rounds):
        pair: list[tuple[list[float], Callable[[list[bytes]], int]]] = [(path_s, path), (floor_s, floor)]
        for times, run in pair if index % 2 == 0 else reversed(pair):
            started = time.process_time()
            run(bodies)
            times.append(time.process_time() - started)
    return path_s, floor_s


def run(events: int = 50_000, rounds: int = 7, echo: bool = True) -> list[Result]:
    results = []
    for route, bodies, target in (
        ("segment", segment_bodies(events), TARGET_SEGMENT_RATIO),
        ("native", native_bodies(events), TARGET_NATIVE_RATIO),
    ):
        path_s, floor_s = measure(route, bodies, rounds)
        ratios = [p / f for p, f in zip(path_s, floor_s, strict=True)]
        ratio = median(ratios)
        per_event_us = median(path_s) / len(bodies) * 1e6
        if echo:
            print(
                f"  {route}: {len(bodies) / median(path_s):,.0f} events/s CPU ({per_event_us:.1f} us/event), "
                f"orjson floor {len(bodies) / median(floor_s):,.0f}/s, ratio {ratio:.2f}x "
                f"(rounds {min(ratios):.2f}..{max(ratios):.2f})",
                flush=True,
            )
        label = "Segment track/screen/identify" if route == "segment" else "native mix"
        results.append(
            Result(
                NAME,
                f"{label}: bytes -> payload bytes / orjson loads+dumps (CPU time, same rounds)",
                ratio,
                f"<= {target:g}x",
                ratio <= target,
                "x",
                f"{len(bodies):,} bodies, {rounds} alternating rounds, median; "
                f"path {len(bodies) / median(path_s):,.0f} events/s, "
                f"floor {len(bodies) / median(floor_s):,.0f} events/s; rounds "
                f"{min(ratios):.2f}..{max(ratios):.2f}",
            )
        )
    return results


def profile(route: str, events: int, top: int) -> None:
    import cProfile
    import pstats

    bodies = segment_bodies(events) if route == "segment" else native_bodies(events)
    path = make_path(route)
    path(bodies[:200])
    profiler = cProfile.Profile()
    profiler.runcall(path, bodies)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hotpath", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", choices=("segment", "native"), help="print a cProfile of one path instead")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--once",
        choices=("segment", "native", "floor-segment", "floor-native", "build-segment", "build-native"),
        help="build --events bodies, run one path once on them and exit (build-*: only build them); for callgrind, "
        "the difference to build-* is the path's cost",
    )
    parser.add_argument(
        "--stages",
        action="store_true",
        help="with --once ROUTE --isolate: count each stage of the path alone, one sys.call_tracing each, in the order "
        f"{', '.join(STAGES)} (callgrind --dump-after=sys_call_tracing writes one profile per stage)",
    )
    parser.add_argument(
        "--isolate",
        action="store_true",
        help="with --once: warm up on 200 bodies, then run inside sys.call_tracing, so that callgrind's "
        "--toggle-collect=sys_call_tracing counts the path alone (no start, imports or body building to subtract)",
    )
    args = parser.parse_args(argv)
    if args.once:
        route = args.once.removeprefix("floor-").removeprefix("build-")
        bodies = segment_bodies(args.events) if route == "segment" else native_bodies(args.events)
        if args.stages and args.once in ("segment", "native"):
            warm = stages(route, bodies[:200])
            steps = stages(route, bodies)
            for name in STAGES:
                warm[name]()
                sys.call_tracing(steps[name], ())
            return 0
        if not args.once.startswith("build-"):
            once = floor if args.once.startswith("floor-") else make_path(route)
            if args.isolate:
                once(bodies[:200])
                sys.call_tracing(once, (bodies,))
            else:
                once(bodies)
        return 0
    if args.profile:
        profile(args.profile, args.events, args.top)
        return 0
    for result in run(args.events, args.rounds):
        print(f"{result.what}: {result.value:.2f}x (target {result.target}, {result.verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
