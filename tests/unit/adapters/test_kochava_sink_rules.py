"""The local Kochava sink refuses what Kochava's docs forbid (issue 24), so every end-to-end test is a conformance
test: each documented rule, broken alone in an otherwise good payload, makes the real sink answer 400 and record the
violation; the good payloads (the mapping's own, Kochava's documented examples) pass."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from functions.pipeline.events import Event, parse_event
from functions.pipeline.kochava import to_kochava
from functions.pipeline.settings import Settings
from tools.local.kochava_sink import KochavaSink, track_payload_violations
from tools.local.report import Report

UA = "Mozilla%2F5.0%20(iPhone%3B%20CPU%20iPhone%20OS%2017_1%20like%20Mac%20OS%20X)"
GOOD: dict[str, Any] = {
    "action": "event",
    "kochava_app_id": "ko-ios",
    "kochava_device_id": "IDFV-1",
    "data": {
        "device_ids": {"idfa": "6D92078A-8246-4BA4-AE5B-76104861E7DC", "idfv": "IDFV-1"},
        "device_ua": UA,
        "device_ver": "iPhone15,2-iOS-17.1",
        "usertime": 1_795_175_940,
        "app_tracking_transparency": {
            "att": True,
            "att_time": 1_795_000_000,
            "att_duration": 4,
            "att_detail": "authorized",
        },
        "gdpr_privacy_consent": {"gdpr_applies": 1, "ad_user_data": 1, "ad_personalization": 0},
        "event_name": "Purchase",
        "event_data": {"sum": 9.99, "currency": "USD"},
    },
}
PROJECT = {"User-Agent": "kochava-pipeline/test"}
UNKNOWN = {"User-Agent": "Unknown"}


def broken(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    payload = copy.deepcopy(GOOD)
    change(payload["data"])
    return payload


def _pop(*keys: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        for key in keys:
            data.pop(key)

    return change


# (rule, payload, headers, what the violation says)
RULES: list[tuple[str, dict[str, Any], dict[str, str], str]] = [
    ("ios14_without_att", broken(_pop("app_tracking_transparency")), PROJECT, "app_tracking_transparency missing"),
    (
        "unknown_ios_without_att",
        broken(_pop("app_tracking_transparency", "device_ver", "device_ua")),
        UNKNOWN,
        "unknown iOS version",
    ),
    (
        "att_on_android",
        broken(lambda d: d.update(device_ids={"adid": "a-1"}, device_ver="Pixel-Android-14")),
        PROJECT,
        "without an iOS id",
    ),
    ("usertime_in_ms", broken(lambda d: d.update(usertime=1_795_175_940_000)), PROJECT, "milliseconds"),
    ("no_device_id", broken(lambda d: d.update(device_ids={})), PROJECT, "device_ids"),
    (
        "raw_user_agent",
        broken(lambda d: d.update(device_ua="Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)")),
        PROJECT,
        "not URL-encoded",
    ),
    ("no_device_ua_without_unknown", broken(_pop("device_ua")), PROJECT, "expected 'Unknown'"),
    ("empty_device_ua_without_unknown", broken(lambda d: d.update(device_ua="")), PROJECT, "expected 'Unknown'"),
    ("sum_as_text", broken(lambda d: d["event_data"].update(sum="9.99")), PROJECT, "sum must be a number"),
    ("sum_empty", broken(lambda d: d["event_data"].update(sum="")), PROJECT, "sum must be a number"),
    ("consent_as_booleans", broken(lambda d: d["gdpr_privacy_consent"].update(gdpr_applies=True)), PROJECT, "0 or 1"),
    ("nested_event_data", broken(lambda d: d["event_data"].update(cart={"items": 2})), PROJECT, "nested"),
]


@pytest.fixture(scope="module")
def sink() -> Iterator[KochavaSink]:
    with KochavaSink() as server:
        yield server


def post(sink: KochavaSink, payload: dict[str, Any], headers: dict[str, str]) -> requests.Response:
    sink.reset()
    return requests.post(sink.track_url, json=payload, headers=headers, timeout=5)


def test_a_payload_that_obeys_every_rule_is_accepted(sink: KochavaSink) -> None:
    assert post(sink, GOOD, PROJECT).json() == {"success": "1"}
    without_ua = broken(_pop("device_ua"))
    assert post(sink, without_ua, UNKNOWN).status_code == 200
    before_ios14 = broken(lambda d: (d.pop("app_tracking_transparency"), d.update(device_ver="iPhone8,1-iOS-13.6")))
    assert post(sink, before_ios14, PROJECT).status_code == 200
    assert sink.violations == []


@pytest.mark.parametrize(("rule", "payload", "headers", "says"), RULES, ids=[rule[0] for rule in RULES])
def test_each_broken_rule_is_refused_with_400(
    sink: KochavaSink, rule: str, payload: dict[str, Any], headers: dict[str, str], says: str
) -> None:
    answer = post(sink, payload, headers)
    assert answer.status_code == 400, rule
    assert says in answer.json()["error"]
    assert len(sink.violations) >= 1 and any(says in problem for _, problem in sink.violations)
    assert sink.delivered == []


def test_the_ios_version_is_read_from_the_user_agent_when_device_ver_is_empty() -> None:
    old_ios = broken(lambda d: (d.pop("app_tracking_transparency"), d.update(device_ver="")))
    old_ios["data"]["device_ua"] = UA.replace("17_1", "13_6")
    assert track_payload_violations(old_ios) == []
    old_ios["data"]["device_ua"] = UA
    assert any("iOS 17" in problem for problem in track_payload_violations(old_ios))


SETTINGS = Settings(kochava_app_id_ios="ko-ios", kochava_app_id_android="ko-android")


def mapped(raw: dict[str, Any]) -> dict[str, Any]:
    event = parse_event(raw)
    assert isinstance(event, Event), event
    outcome = to_kochava(event, SETTINGS, now=1_795_176_000.0)
    assert outcome.payload is not None, outcome
    return outcome.payload


@pytest.mark.parametrize("kind", ["install", "track", "screen"])
@pytest.mark.parametrize("os_version", [None, "13.6", "17.1"])
@pytest.mark.parametrize("platform", ["ios", "android"])
def test_the_mappings_own_payloads_obey_the_sinks_rules(kind: str, os_version: str | None, platform: str) -> None:
    raw = {
        "uuid": "u-1",
        "type": kind,
        "event": "Order Completed",
        "timestamp": 1_795_175_940,
        "properties": {"sum": "", "revenue": "4.99", "coupon": None},
        "consent": {"gdpr_applies": True, "ad_user_data": False},
        "device": {"platform": platform, "id": "dev-1", "advertising_id": "6d92078a-8246-4ba4-ae5b-76104861e7dc"},
    }
    if os_version:
        raw["device"]["os_version"] = os_version
    assert track_payload_violations(mapped(raw)) == []


def test_the_local_report_counts_a_refused_payload_as_a_payload_problem(sink: KochavaSink) -> None:
    post(sink, broken(_pop("app_tracking_transparency")), PROJECT)
    report = Report([], [], {}, {}, {}, {}, sink_requests=len(sink.requests), sink_successes=len(sink.delivered))
    report.sink_violations = list(sink.violations)
    text = report.text()
    assert "1 payload problems (each answered 400" in text
    assert "app_tracking_transparency missing on iOS 17" in text
