"""The realistic event mix the throughput benchmark feeds to ``python -m tools.transform``.

Built from the valid samples in ``events/`` (``tools.samples``), each copy with fresh, deterministic uuids, so
the mapping sees installs (iOS with AdServices token and ATT, Android with referrer and consent), purchases with
nested properties, screens, identify, plain tracks, the filtered heartbeat and Segment batches. Two JSON-lines
files come out, because ``tools.transform`` reads one route per run: native events one per line, and Segment
bodies (single calls and ``{"batch": [...]}`` bodies of four) one per line.

Example:
    >>> mix = build_mix(40, seed=1)
    >>> mix.native_events + mix.segment_events
    40
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tools.samples import route_for, sample_paths

# How often each sample appears per 20 native events: a mobile game's day is mostly tracks and screens, a few
# installs and purchases. Samples not listed (invalid_*) are left out: rejections are not the hot path.
NATIVE_WEIGHTS: dict[str, int] = {
    "screen": 4,
    "purchase_nested": 3,
    "error_event": 2,
    "heartbeat": 1,
    "identify": 1,
    "monetization_web2": 2,
    "monetization_web3": 1,
    "ios_install": 2,
    "android_install": 2,
    "ios_install_att_denied_no_idfa": 1,
    "kochava_doc_install_consent": 1,
}
# Share of events that arrive through the Segment route (one segment_track line, one 4-event batch line).
SEGMENT_SHARE = 0.25


@dataclass(frozen=True)
class Mix:
    native: bytes  # JSON lines, one native event per line
    segment: bytes  # JSON lines, one Segment body per line (a call or a batch)
    native_events: int
    segment_events: int


def _load(name: str) -> Any:
    for path in sample_paths():
        if path.stem == name:
            return orjson.loads(path.read_bytes())
    raise KeyError(name)


def _fresh(event: dict[str, Any], key: str, rng: random.Random) -> dict[str, Any]:
    copy = dict(event)
    copy[key] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return copy


def build_mix(total: int, seed: int = 8) -> Mix:
    """About ``total`` events (exactly, when ``total`` is a multiple of 20), deterministic for a seed."""
    rng = random.Random(seed)
    natives = [(_load(name), weight) for name, weight in NATIVE_WEIGHTS.items()]
    assert all(route_for(Path(f"{name}.json")) == "native" for name in NATIVE_WEIGHTS)
    segment_track = _load("segment_track")
    segment_batch = _load("segment_batch")["batch"]
    native_lines: list[bytes] = []
    segment_lines: list[bytes] = []
    n_native = n_segment = 0
    segment_target = round(total * SEGMENT_SHARE)
    while n_segment < segment_target:
        if rng.random() < 0.2 or segment_target - n_segment < len(segment_batch):
            segment_lines.append(orjson.dumps(_fresh(segment_track, "messageId", rng)))
            n_segment += 1
        else:
            batch = [_fresh(event, "messageId", rng) for event in segment_batch]
            segment_lines.append(orjson.dumps({"batch": batch}))
            n_segment += len(batch)
    population = [event for event, weight in natives for _ in range(weight)]
    while n_native < total - n_segment:
        native_lines.append(orjson.dumps(_fresh(rng.choice(population), "uuid", rng)))
        n_native += 1
    return Mix(
        native=b"\n".join(native_lines) + b"\n",
        segment=b"\n".join(segment_lines) + b"\n",
        native_events=n_native,
        segment_events=n_segment,
    )
