"""Sample native events (what apps send to the ingest API), shared by the enricher's unit and integration
tests."""

from __future__ import annotations

import itertools
from typing import Any

NOW = 1_700_000_000.0  # the controllable clock's start (2023-11-14T22:13:20Z)
IOS_APP = "koios-test-guid"
ANDROID_APP = "koandroid-test-guid"
IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
IDFV = "3B2F8C1E-5A8D-4C0E-9F4B-1D2E3F4A5B6C"
IP = "203.0.113.77"
UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)"
TOKEN = "AAAAaAaAtBu0AXztoAUKbX8RxE3DEbTHLxJxqDhz+tEUtWO1TqCJ0wLUHZOS+/aY+wThz8EBX6uv4TgET0jq4Us7AFTJ808m6QAAAVADAAAAzQ"

_uuids = itertools.count(1)


def native_event(kind: str = "track", **overrides: Any) -> dict[str, Any]:
    """A valid native event; ``device`` overrides are merged into the default iOS device."""
    event: dict[str, Any] = {
        "uuid": f"evt-{next(_uuids):05d}",
        "type": kind,
        "timestamp": NOW - 60,
        "device": {"platform": "ios", "id": IDFV, "advertising_id": IDFA, "ip": IP, "user_agent": UA},
    }
    if kind == "track":
        event["event"] = "Level Up"
    device = overrides.pop("device", None)
    event.update(overrides)
    if device is not None:
        event["device"] = device
    return event
