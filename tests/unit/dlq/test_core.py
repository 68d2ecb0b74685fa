"""The pure part of tools.dlq (no AWS): durations, selection, grouping, masking, replay attributes, throttle."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.pipeline import reasons
from tests.samples.dlq import IDFA, IDFV, IP, TOKEN, envelope, native_event, typed
from tools.dlq.core import (
    DLQ_ONLY_ATTRIBUTES,
    REASON_ADVICE,
    DlqMessage,
    Selection,
    age_bucket,
    event_name_from_body,
    group,
    mask_json,
    mask_text,
    mask_value,
    render_body,
    replay_attributes,
    replay_size,
    shown_attributes,
    size_batches,
)
from tools.dlq.ops import Throttle
from tools.oncall.durations import parse_duration

NOW = 1_800_000_000_000
H = 3_600_000


def msg(
    reason: str | None = "retries_exhausted",
    *,
    name: str | None = "Purchase",
    age_h: float = 1.0,
    mid: str = "m-1",
    body: Any = None,
    default_stage: str | None = "deliverer",
    **extra: Any,
) -> DlqMessage:
    attrs: dict[str, Any] = {"reason": reason, "event_name": name, "failed_at_ms": int(NOW - age_h * H), **extra}
    if reason is not None:
        attrs["stage"] = default_stage
    text = json.dumps(body if body is not None else envelope("u-1"))
    return DlqMessage(mid, f"rh-{mid}", text, typed(attrs), {"ApproximateReceiveCount": "1"}, default_stage)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("2h", 7200), ("3d", 259200), ("1h30m", 5400), ("45s", 45), ("1w", 604800), (" 2H ", 7200)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2", "h", "2x", "-1h", "2h ago", "1.5.h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_age_buckets_cover_every_age_in_order() -> None:
    assert [age_bucket(s) for s in (0, 3599, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 30 * 86400)] == [
        "<1h",
        "<1h",
        "1h-6h",
        "6h-24h",
        "1d-3d",
        "3d-7d",
        "7d-14d",
        ">=14d",
    ]


def test_redriven_message_gets_reason_stage_and_name_from_body() -> None:
    m = DlqMessage(
        "m", "rh", json.dumps(native_event("u", "Add To Cart")), {}, {"SentTimestamp": str(NOW - H)}, "enricher"
    )
    assert (m.reason, m.stage, m.event_name, m.replayable) == ("redriven", "enricher", "Add To Cart", True)
    assert m.first_failure_ms == NOW - H
    assert m.age_s(NOW) == 3600


def test_first_failure_prefers_failed_at_then_first_receive_then_sent() -> None:
    sys_attrs = {"ApproximateFirstReceiveTimestamp": "2000", "SentTimestamp": "1000"}
    assert DlqMessage("m", "r", "{}", typed({"failed_at_ms": 3000}), sys_attrs).first_failure_ms == 3000
    assert DlqMessage("m", "r", "{}", {}, sys_attrs).first_failure_ms == 2000
    assert DlqMessage("m", "r", "{}", {}, {"SentTimestamp": "1000"}).first_failure_ms == 1000
    assert DlqMessage("m", "r", "{}").first_failure_ms is None


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ('{"v": 1, "event_name": "Purchase", "kind": "event"}', "Purchase"),
        ('{"type": "track", "event": "Order Completed"}', "Order Completed"),
        ('{"type": "track", "action": "Level Up"}', "Level Up"),
        ('{"type": "install"}', "install"),
        ('{"batch": [{}, {}, {}]}', "batch of 3"),
        ("not json", None),
        ("[1, 2]", None),
    ],
)
def test_event_name_from_body(body: str, name: str | None) -> None:
    assert event_name_from_body(body) == name


def test_selection_ors_values_and_ands_selectors() -> None:
    sel = Selection.of(reasons=["retries_exhausted", "redriven"], event_names=["purchase"], older_than_s=2 * 3600)
    assert sel.matches(msg("retries_exhausted", name="Purchase", age_h=3), NOW)
    assert sel.matches(msg(None, name="PURCHASE", age_h=3), NOW)  # redriven; names compared case-insensitively
    assert not sel.matches(msg("kochava_rejected", age_h=3), NOW)
    assert not sel.matches(msg("retries_exhausted", name="Screen View", age_h=3), NOW)
    assert not sel.matches(msg("retries_exhausted", age_h=1), NOW)
    assert Selection.of(ids=["a"]).matches(msg(mid="a"), NOW)
    assert not Selection.of(ids=["a"]).matches(msg(mid="b"), NOW)
    assert Selection().is_everything and Selection().matches(msg(), NOW)
    assert "older than 2h00m" in sel.describe()


def test_group_counts_oldest_first() -> None:
    messages = [
        msg("retries_exhausted", age_h=0.5, mid="1"),
        msg("retries_exhausted", age_h=0.2, mid="2"),
        msg("kochava_rejected", age_h=50, mid="3"),
        msg(None, name="Screen View", age_h=8, mid="4"),
        msg("invalid_event", age_h=8, mid="5", default_stage="enricher"),
        msg("invalid_event", age_h=9, mid="6", default_stage="enricher"),
    ]
    groups = group(messages, NOW)
    assert [(g.stage, g.reason, g.event_name, g.age, g.count) for g in groups] == [
        ("deliverer", "kochava_rejected", "Purchase", "1d-3d", 1),
        ("enricher", "invalid_event", "Purchase", "6h-24h", 2),
        ("deliverer", "redriven", "Screen View", "6h-24h", 1),
        ("deliverer", "retries_exhausted", "Purchase", "<1h", 2),
    ]
    assert [g.replayable for g in groups] == [True, False, True, True]


def test_mask_value_keeps_four_characters_and_the_length() -> None:
    assert mask_value(IDFA) == "6D92…(36)"
    assert mask_value("10.0.0.1") == "…(8)"  # short: nothing kept
    assert mask_value("") == ""


def test_mask_json_native_event() -> None:
    masked = mask_json(native_event("u-1"))
    dumped = json.dumps(masked, ensure_ascii=False)
    for secret in (IDFA, IDFV, IP, TOKEN):
        assert secret not in dumped
    assert masked["device"] == {"platform": "ios", "id": "A1B2…(36)", "advertising_id": "6D92…(36)", "ip": "203.…(12)"}
    assert masked["adservices"]["token"] == "eyJh…(50)"
    assert masked["uuid"] == "u-1" and masked["properties"] == {"price": 9.99}


def test_mask_json_segment_event_and_envelope() -> None:
    segment = {
        "type": "track",
        "event": "Order Completed",
        "messageId": "seg-1",
        "anonymousId": "anon-1",
        "context": {"ip": IP, "device": {"id": IDFV, "advertisingId": IDFA, "model": "iPhone15,2"}},
    }
    masked = mask_json(segment)
    assert masked["context"]["ip"] == "203.…(12)"
    assert masked["context"]["device"] == {"id": "A1B2…(36)", "advertisingId": "6D92…(36)", "model": "iPhone15,2"}
    assert masked["messageId"] == "seg-1"
    env = mask_json(envelope("u-2"))
    assert env["payload"]["data"]["device_ids"] == {"idfa": "6D92…(36)", "idfv": "A1B2…(36)"}
    assert env["payload"]["kochava_device_id"] == "A1B2…(36)"
    assert env["payload"]["data"]["origination_ip"] == "203.…(12)"
    assert env["uuid"] == "u-2" and env["payload"]["kochava_app_id"] == "koapp-guid"
    identity_link = mask_json({"device_id": {"idfa": IDFA}, "data": {"user_id": "user-7"}})
    assert identity_link == {"device_id": {"idfa": "6D92…(36)"}, "data": {"user_id": "…(6)"}}


def test_mask_text_for_bodies_that_are_not_json() -> None:
    broken = '{"uuid": "u-1", "device": {"idfa": "' + IDFA + '", "ip": "' + IP + '", "kochava_device_id": "KDabc'
    text = mask_text(broken + " and " + IDFV + " from 2001:db8:85a3:0:0:8a2e:370:7334")
    for secret in (IDFA, IDFV, IP, "2001:db8:85a3:0:0:8a2e:370:7334"):
        assert secret not in text
    assert '"uuid": "u-1"' in text


def test_render_body_reveals_only_when_asked() -> None:
    body = json.dumps(native_event("u-1"))
    masked, is_json = render_body(body, reveal=False)
    assert is_json and IDFA not in masked and "6D92…(36)" in masked
    revealed, _ = render_body(body, reveal=True)
    assert IDFA in revealed and TOKEN in revealed
    text, is_json = render_body("{broken " + IDFA, reveal=False)
    assert not is_json and IDFA not in text


def test_shown_attributes_mask_free_text() -> None:
    m = msg("kochava_rejected", error=f"device {IDFA} from {IP}", response_body=f'{{"ip": "{IP}"}}')
    shown = shown_attributes(m, reveal=False)
    assert IDFA not in shown["error"] and IP not in shown["error"] and IP not in shown["response_body"]
    assert shown["reason"] == "kochava_rejected"
    assert IDFA in shown_attributes(m, reveal=True)["error"]


def test_payload_too_large_and_truncated_bodies_are_not_replayable() -> None:
    assert not msg(reasons.PAYLOAD_TOO_LARGE, default_stage="enricher").replayable
    assert "not replayable" in REASON_ADVICE[reasons.PAYLOAD_TOO_LARGE]
    assert set(REASON_ADVICE) == set(reasons.DEAD_LETTER_REASONS)
    # A body cut to fit the DLQ is not the event any more, whatever the reason: replaying it would be garbage.
    cut = msg(reasons.MISSING_APP_ID, default_stage="enricher", truncated="true")
    assert msg(reasons.MISSING_APP_ID, default_stage="enricher").replayable and not cut.replayable
    assert "truncated" not in replay_attributes(cut)


def test_replay_attributes_keep_the_source_ones_only() -> None:
    m = msg(
        "missing_app_id",
        field="app.bundle_id",
        error="x",
        http_status=400,
        response_body="y",
        route="segment",
        request_id="req-1",
        received_at_ms=123,
        uuid="u-1",
        adservices_attempt=2,
    )
    attrs = replay_attributes(m)
    assert not DLQ_ONLY_ATTRIBUTES & set(attrs)
    assert attrs["route"] == {"DataType": "String", "StringValue": "segment"}
    assert attrs["received_at_ms"] == {"DataType": "Number", "StringValue": "123"}
    assert attrs["adservices_attempt"]["DataType"] == "Number"
    assert set(attrs) == {
        "route",
        "request_id",
        "received_at_ms",
        "uuid",
        "event_name",
        "adservices_attempt",
        "replayed",
    }
    assert attrs["replayed"] == {"DataType": "Number", "StringValue": "1"}


def test_a_redriven_message_replayed_before_is_not_replayable_again() -> None:
    fresh = msg(None, default_stage="enricher")
    again = msg(None, default_stage="enricher", replayed=1)
    assert fresh.replayable and not fresh.redriven_after_replay
    assert not again.replayable and again.redriven_after_replay
    assert replay_attributes(again)["replayed"]["StringValue"] == "2"
    # a reasoned message that was replayed before stays replayable: its reason says what to fix
    assert msg(reasons.RETRIES_EXHAUSTED, replayed=3).replayable


SENSITIVE = ["idfa", "idfv", "adid", "android_id", "advertising_id", "advertisingId", "kochava_device_id", "ip"]
SENSITIVE += ["origination_ip", "ad_services_token", "token", "device_id", "user_agent", "userAgent", "device_ua"]
SENSITIVE += ["user_id", "userId", "anonymousId", "tc_string", "referrer", "email"]
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))


@given(
    secret=st.text(alphabet="ABCDEF0123456789-", min_size=12, max_size=40),
    key=st.sampled_from(SENSITIVE),
    depth=st.integers(min_value=0, max_value=4),
    noise=st.dictionaries(st.sampled_from(["uuid", "event", "name", "price"]), json_leaf, max_size=4),
)
def test_mask_json_never_leaks_a_sensitive_value(secret: str, key: str, depth: int, noise: dict[str, Any]) -> None:
    doc: Any = {key: secret, **noise}
    for level in range(depth):
        doc = {f"level{level}": doc, "list": [doc]}
    masked = mask_json(doc)
    assert secret not in json.dumps(masked)
    # everything else is untouched
    inner = masked
    for level in reversed(range(depth)):
        inner = inner[f"level{level}"]
    assert {k: v for k, v in inner.items() if k != key} == noise


def test_throttle_spreads_sends_over_time() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    t = Throttle(5, clock=lambda: now[0], sleep=sleep)
    assert t.chunk == 5
    for _ in range(4):
        t.wait(5)
    assert slept == [1.0, 1.0, 1.0]  # 20 messages at 5/s: the last chunk goes out at t=3 s
    unlimited = Throttle(None, clock=lambda: 0.0, sleep=sleep)
    unlimited.wait(10)
    assert unlimited.chunk == 10 and len(slept) == 3


def test_size_batches_respect_count_and_total_size() -> None:
    small = [msg(mid=f"s{i}", body={"x": "a"}) for i in range(23)]
    assert [len(b) for b in size_batches(small, 10)] == [10, 10, 3]
    big = [msg(mid=f"b{i}", body={"x": "a" * 400_000}) for i in range(5)]
    batches = size_batches(big, 10)
    assert [len(b) for b in batches] == [2, 2, 1]  # 3 x 400 KB > 1 MiB
    assert all(sum(replay_size(m) for m in b) <= 1024 * 1024 for b in batches)
    huge = msg(mid="h", body={"x": "a" * 2_000_000})
    assert size_batches([huge, *small[:2]], 10) == [[huge], small[:2]]
    dlq_only = msg("kochava_rejected", error="e" * 1000)
    assert replay_size(dlq_only) < len(dlq_only.body) + 200  # the DLQ-only attributes do not count


_KEYS = st.text(max_size=8)
_DEVICE_IDS = st.sampled_from([IDFV, IDFA, IDFV.lower(), IP, "2001:db8::1f00:7"])


@st.composite
def _bodies_holding(draw: st.DrawFn, device_id: str) -> Any:
    """Any JSON body with ``device_id`` somewhere in a string value, under any key an event's id does not use."""
    keys = _KEYS.filter(lambda k: "".join(c for c in k.lower() if c.isalnum()) not in {"uuid", "messageid"})
    leaf = st.just(f"{draw(st.sampled_from(['', 'seen ']))}{device_id}")
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))
    tree = st.recursive(
        leaf | scalars, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(keys, kids, max_size=3), max_leaves=8
    )
    body = draw(st.dictionaries(keys, tree, max_size=3))
    return {**body, draw(keys): draw(st.recursive(leaf, lambda kids: st.lists(kids, min_size=1, max_size=2)))}


@settings(max_examples=60)
@given(data=st.data(), device_id=_DEVICE_IDS)
def test_a_device_id_or_ip_is_masked_under_any_key_however_deep(data: st.DataObject, device_id: str) -> None:
    """Invariant (private by default): ``dlq show`` without ``--reveal`` never prints a device id or an IP that a
    body holds, whatever key it sits under and however it is nested; an event's own uuid stays readable."""
    body = data.draw(_bodies_holding(device_id))
    shown = json.dumps(mask_json({**body, "uuid": "0E4AC1D2-5B6F-4A7B-8C9D-0123456789AB"}), ensure_ascii=False)
    assert device_id not in shown
    assert '"uuid": "0E4AC1D2-5B6F-4A7B-8C9D-0123456789AB"' in shown
