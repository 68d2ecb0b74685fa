"""The sample events in ``events/`` and the settings their golden outputs were produced with.

Used by the golden tests, ``tools.local`` (which posts every sample) and the benchmarks, so they all agree on
which route a sample goes to and which demo Kochava GUIDs are configured.

Example:
    >>> route_for(SAMPLES_DIR / "segment_batch.json"), route_for(SAMPLES_DIR / "ios_install.json")
    ('segment', 'native')
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from functions.pipeline.events import Route

SAMPLES_DIR: Final = Path(__file__).resolve().parent.parent / "events"
GOLDEN_SUFFIX: Final = ".expected.jsonl"
# The clock of the golden files: the samples' AdServices tokens are fresh at this time.
GOLDEN_NOW: Final = "2026-11-20T12:00:00Z"
# Demo Kochava app GUIDs used by the golden files and by the local stack.
DEMO_APP_ID_IOS: Final = "kodemo-ios-5f1e0c2a9b"
DEMO_APP_ID_ANDROID: Final = "kodemo-android-7d3b4e1f0a"
DEMO_ENV: Final = {"KOCHAVA_APP_ID_IOS": DEMO_APP_ID_IOS, "KOCHAVA_APP_ID_ANDROID": DEMO_APP_ID_ANDROID}


def route_for(path: Path) -> Route:
    """``segment_*.json`` samples are Segment-spec bodies (``POST /v1/segment``); the rest are native."""
    return "segment" if path.name.startswith("segment_") else "native"


def sample_paths() -> list[Path]:
    """Every sample body, sorted by name (golden files excluded)."""
    return sorted(path for path in SAMPLES_DIR.glob("*.json") if not path.name.endswith(GOLDEN_SUFFIX))


def golden_path(sample: Path) -> Path:
    return sample.with_name(sample.stem + GOLDEN_SUFFIX)
