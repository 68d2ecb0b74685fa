"""The local stand-ins themselves: shape checks, deterministic failures, connection counting."""

from __future__ import annotations

import requests

from tools.local.kochava_sink import KochavaSink, identitylink_payload_violations, track_payload_violations

GOOD_EVENT = {
    "action": "event",
    "kochava_app_id": "guid",
    "kochava_device_id": "dev",
    "data": {
        "device_ids": {"idfa": "X"},
        "usertime": 1_700_000_000,
        "app_tracking_transparency": {"att": True, "att_detail": "authorized"},
        "event_name": "Purchase",
        "event_data": {"a": 1},
    },
}
NO_UA = {"User-Agent": "Unknown"}  # Kochava's header for a payload without device_ua


def test_a_good_event_has_no_violations() -> None:
    assert track_payload_violations(GOOD_EVENT) == []


def test_violations_are_named() -> None:
    assert "action 'track'" in track_payload_violations({**GOOD_EVENT, "action": "track"})[0]
    bad = {
        "action": "event",
        "kochava_app_id": "",
        "data": {
            "device_ids": {},
            "usertime": 1_700_000_000_000,
            "event_data": {"nested": {"a": 1}},
        },
    }
    problems = " | ".join(track_payload_violations(bad))
    for expected in ("kochava_app_id", "kochava_device_id", "device_ids", "milliseconds", "event_name", "nested"):
        assert expected in problems
    assert track_payload_violations({**GOOD_EVENT, "data": {**GOOD_EVENT["data"], "usertime": "1"}})


def test_identitylink_shape() -> None:
    assert (
        identitylink_payload_violations({"kochava_app_id": "g", "device_id": {"idfv": "X"}, "data": {"u": "1"}}) == []
    )
    assert identitylink_payload_violations({"kochava_app_id": "g", "device_id": {}, "data": {"u": 1}})


def test_seeded_failures_are_reproducible() -> None:
    def statuses(seed: int) -> list[int]:
        with KochavaSink(seed=seed, fail_share=0.5, fail_status=429) as sink, requests.Session() as session:
            session.headers.update(NO_UA)
            return [session.post(sink.track_url, json=GOOD_EVENT, timeout=2).status_code for _ in range(20)]

    first, again = statuses(7), statuses(7)
    assert first == again
    assert set(first) == {200, 429}


def test_violations_and_connections_are_recorded() -> None:
    with KochavaSink() as sink, requests.Session() as session:
        session.headers.update(NO_UA)
        for _ in range(5):
            session.post(sink.track_url, json=GOOD_EVENT, timeout=2)
        refused = session.post(sink.track_url, json={"action": "event"}, timeout=2)
        assert sink.connections_opened == 1
        assert len(sink.delivered) == 5  # the broken payload is refused as Kochava would, and recorded
        assert refused.status_code == 400 and "kochava_app_id" in refused.json()["error"]
        assert sink.violations and all(path == "/track/json" for path, _ in sink.violations)
        assert requests.post(sink.url + "/elsewhere", json={}, timeout=2).status_code == 404
