"""Property tests: whatever JSON arrives, the parser + mapping map it or reject it with a reason; never raise.

And for everything that maps: ``event_data`` is one level, ``usertime`` an int, no reserved key and no all-zero
advertising id reaches Kochava, and every payload obeys the rules the local Kochava sink enforces (Kochava's docs as
they read today: ATT on iOS 14+, a numeric ``sum``, an encoded ``device_ua``...; issue 24), no ``null`` or
non-finite number in ``event_data``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from functions.pipeline import reasons
from functions.pipeline.events import Rejection, parse_body, parse_event
from functions.pipeline.kochava import RESERVED_EVENT_DATA_KEYS, is_zero_id, to_kochava
from functions.pipeline.settings import Settings
from tools.local.kochava_sink import identitylink_payload_violations, track_payload_violations

SETTINGS = Settings(kochava_app_id_ios="ko-ios", kochava_app_id_android="ko-android")
NOW = 1_795_176_000.0

# Integers within 64 bits: a body reaches parse_event through orjson, which refuses larger ones, or through the
# lenient parser, which marks them so their event is rejected (tested on whole bodies below).
json_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
json_scalars = st.none() | st.booleans() | json_ints | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
keys = st.sampled_from(
    ["a", "campaign", "Network", "site", "price", "revenue", "name", "x_y", "source", "cracked", "sum", "products"]
)
properties = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=4),
    max_leaves=15,
).filter(lambda value: isinstance(value, dict)) | st.dictionaries(keys, json_values, max_size=6)

ad_ids = st.sampled_from(
    [None, "", "00000000-0000-0000-0000-000000000000", "0000-0000", "6d92078a-8246-4ba4-ae5b-76104861e7dc", "abc"]
)
timestamps = st.one_of(
    st.integers(min_value=946_684_800, max_value=4_102_444_800),
    st.integers(min_value=946_684_800_000, max_value=4_102_444_800_000),
    st.just("2026-11-20 11:58:30"),
    st.just("2026-11-20T11:58:30.5+02:00"),
    json_scalars,
)
events = st.fixed_dictionaries(
    {
        "uuid": st.text(min_size=0, max_size=10) | json_ints,
        "type": st.sampled_from(["install", "track", "screen", "identify", "other"]),
        "timestamp": timestamps,
        "device": st.fixed_dictionaries(
            {"platform": st.sampled_from(["ios", "android", "Android", "web"])},
            optional={
                "id": st.text(max_size=10) | st.none(),
                "advertising_id": ad_ids,
                "os_version": st.sampled_from(["13.1", "14", "17.1.2", "x"]),
                "model": st.sampled_from(["iPhone15,2", "Pixel 8"]),
                "user_agent": st.sampled_from(["Mozilla/5.0 (iPhone; CPU iPhone OS 13_1 like Mac OS X)", "a b"]),
                "limit_ad_tracking": st.booleans() | st.none(),
                "att": st.fixed_dictionaries({}, optional={"status": st.sampled_from(["authorized", "denied", "x"])}),
            },
        )
        | json_values,
    },
    optional={
        "event": st.text(max_size=12)
        | st.sampled_from(["purchase", "heartbeat", "Order Completed", "Install Attributed", "\x00\x01"]),
        "properties": properties,
        "user_id": st.text(max_size=5) | json_ints,
        "adservices": st.fixed_dictionaries({"token": st.text(max_size=5)}, optional={"generated_at": timestamps}),
        "consent": st.fixed_dictionaries(
            {},
            optional={
                "gdpr_applies": st.booleans(),
                "tc_string": st.text(max_size=5),
                "ad_user_data": st.booleans(),
                "ad_personalization": st.booleans(),
            },
        ),
    },
)


def check_payload(payload: dict[str, Any]) -> None:
    data = payload["data"]
    ids = data.get("device_ids") or payload.get("device_id")
    assert ids, "at least one device identifier"
    assert not any(is_zero_id(value) for value in ids.values()), "no all-zero advertising id"
    if "event_data" in data or payload.get("action") in {"install", "event"}:
        assert isinstance(data["usertime"], int)
    for key, value in data.get("event_data", {}).items():
        assert not isinstance(value, dict | list), f"event_data.{key} is nested"
        assert key.lower() not in RESERVED_EVENT_DATA_KEYS, f"reserved key {key} sent"
        assert value is not None and not (isinstance(value, float) and not math.isfinite(value)), key
    if "device_id" in payload:
        assert identitylink_payload_violations(payload) == []
    else:
        assert track_payload_violations(payload) == []
    orjson.dumps(payload)  # serialisable as the deliverer will send it


def _ios_13_install(**device: Any) -> dict[str, Any]:
    found = {"platform": "ios", "id": "3F2504E0-4F89-11D3-9A0C-0305E82C3301", "os_version": "13.1", "att": {}}
    return {"uuid": "u-1", "type": "install", "timestamp": "2026-11-20T11:58:30Z", "device": found | device}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
# Found by hypothesis: an iOS 13 device whose agent names no OS (Kochava could not read the version: no ATT block
# and device_ver ""), and one whose agent says iOS 17 (Kochava reads 17: the block must go).
@example(_ios_13_install(user_agent="SomeApp/1.0"))
@example(_ios_13_install(user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)"))
def test_any_event_maps_or_is_rejected_with_a_reason(raw: dict[str, Any]) -> None:
    item = parse_event(raw)
    if isinstance(item, Rejection):
        assert item.reason == reasons.INVALID_EVENT
        assert item.message
        return
    outcome = to_kochava(item, SETTINGS, NOW)
    assert outcome.status in {"ok", "rejected", "filtered"}
    if outcome.status == "rejected":
        assert outcome.reason in reasons.DEAD_LETTER_REASONS and outcome.message
    elif outcome.status == "ok":
        assert outcome.payload is not None
        check_payload(outcome.payload)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_body_never_raises(value: Any) -> None:
    items = parse_body(json.dumps(value).encode())
    assert items, "one item at least, even for garbage"
    for item in items:
        if isinstance(item, Rejection):
            assert item.reason in reasons.DEAD_LETTER_REASONS


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_never_raise(body: bytes) -> None:
    assert parse_body(body)


@settings(max_examples=200, deadline=None)
@given(json_values, st.sampled_from(["native", "segment"]))
def test_any_json_event_of_either_route_never_raises(value: Any, route: str) -> None:
    parse_event(value, route)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.integers(), st.booleans())
def test_any_integer_in_a_body_maps_and_can_be_written(number: int, lone_surrogate: bool) -> None:
    # Given an event with any integer in its properties, in a body orjson parses (beyond 64 bits it reads a float)
    # or, with a lone surrogate elsewhere in the batch, one only the lenient parser takes
    device = {"platform": "ios", "id": "V"}
    event = {"uuid": "u1", "type": "track", "event": "x", "timestamp": 1_795_000_000, "device": device}
    event["properties"] = {"n": number, "l": [number]}
    other = {**event, "uuid": "u2", "properties": {"s": "\ud800" if lone_surrogate else "ok"}}
    body = json.dumps({"batch": [event, other]}).encode()
    # When the body is parsed and the first event mapped
    item = parse_body(body)[0]
    # Then both parsers give the same value, and the payload can be written as the deliverer sends it
    assert not isinstance(item, Rejection)
    outcome = to_kochava(item, SETTINGS, NOW)
    assert outcome.payload is not None
    expected = orjson.loads(str(number))
    assert outcome.payload["data"]["event_data"]["n"] == expected
    assert orjson.dumps(outcome.to_line())
