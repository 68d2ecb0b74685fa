"""Segment's optional ``messageId`` and ``timestamp`` (its HTTP Tracking API docs: both optional; Segment computes
``timestamp = receivedAt - (sentAt - originalTimestamp)``), the rules of ``functions.pipeline.segment.complete_call``
as ``parse_body`` and ``raw_events`` apply them, and as the enricher hands them on.

Invariants (hypothesis):
* a call that has ``messageId`` and ``timestamp`` is parsed exactly as before (no derived field, no warning);
* the derived id and time depend only on the request (id, received time) and the call's position, so parsing the
  same body again (an SQS redelivery) gives the same ids, and the dead-letter copy of a call carries them;
* the skew-corrected time is ``receivedAt - (sentAt - originalTimestamp)`` to the millisecond.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from functions.enricher.core import Enricher, MessageInfo, Queues
from functions.pipeline import reasons
from functions.pipeline.contract import parse_timestamp
from functions.pipeline.events import NotedEvent, Rejection, load_document, parse_body, parse_warnings, raw_events
from functions.pipeline.segment import Received, complete_call, derived_message_id
from functions.pipeline.settings import Settings
from tests.fakes import FakeLog, FakeProfileStore, FakeSender

RECEIVED = Received("req-1", 1_795_176_000_000)  # 2026-11-20T12:00:00Z
RECEIVED_S = RECEIVED.received_at_ms / 1000  # type: ignore[operator]
CONTEXT = {"device": {"type": "ios", "id": "3F2504E0-4F89-11D3-9A0C-0305E82C3301"}}


def call(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Order Completed", "context": CONTEXT, **fields}


def only(items: list[Any]) -> NotedEvent:
    (item,) = items
    assert isinstance(item, NotedEvent), item
    return item


def test_timestamp_as_sent_wins_and_leaves_no_warning() -> None:
    (item,) = parse_body(json.dumps(call(messageId="m", timestamp="2026-11-20T11:00:00Z", sentAt="x")), "segment")
    assert not isinstance(item, Rejection | NotedEvent)
    assert item.timestamp == parse_timestamp("2026-11-20T11:00:00Z")
    assert parse_warnings(item) == []


def test_original_timestamp_is_corrected_by_the_skew_between_sent_at_and_received_at() -> None:
    # The device clock is 10 minutes fast: it sent at 12:10 (its clock) what it recorded at 12:05 (its clock).
    body = {"batch": [call(originalTimestamp="2026-11-20T12:05:00Z")], "sentAt": "2026-11-20T12:10:00Z"}
    event = only(parse_body(json.dumps(body), "segment", RECEIVED))
    assert event.timestamp == RECEIVED_S - 300  # received 12:00 minus the 5 minutes between recording and sending
    assert "receivedAt - (sentAt - originalTimestamp)" in parse_warnings(event)[-1]


def test_the_calls_own_sent_at_wins_over_the_batchs() -> None:
    own = call(originalTimestamp="2026-11-20T12:05:00Z", sentAt="2026-11-20T12:05:30Z")
    body = {"batch": [own], "sentAt": "2026-11-20T13:00:00Z"}
    assert only(parse_body(json.dumps(body), "segment", RECEIVED)).timestamp == RECEIVED_S - 30


def test_original_timestamp_as_is_without_sent_at_or_without_a_received_time() -> None:
    original = "2026-11-20T10:00:00Z"
    without_sent_at = only(parse_body(json.dumps(call(originalTimestamp=original)), "segment", RECEIVED))
    assert without_sent_at.timestamp == parse_timestamp(original)
    assert "originalTimestamp used as is (no readable sentAt" in parse_warnings(without_sent_at)[-1]
    body = json.dumps(call(messageId="m", originalTimestamp=original, sentAt="2026-11-20T10:00:05Z"))
    unknown = only(parse_body(body, "segment"))  # no received time (tools.transform)
    assert unknown.timestamp == parse_timestamp(original)
    assert "no received time" in parse_warnings(unknown)[-1]


def test_no_time_at_all_takes_the_time_the_api_received_it() -> None:
    event = only(parse_body(json.dumps(call()), "segment", RECEIVED))
    assert event.timestamp == RECEIVED_S
    assert "the time the API received it used" in parse_warnings(event)[-1]


def test_an_unreadable_original_timestamp_is_rejected_naming_it() -> None:
    (item,) = parse_body(json.dumps(call(originalTimestamp="yesterday")), "segment", RECEIVED)
    assert isinstance(item, Rejection)
    assert (item.reason, item.field) == (reasons.INVALID_EVENT, "originalTimestamp")
    assert item.uuid == "req-1#0" and item.raw == call(originalTimestamp="yesterday", messageId="req-1#0")


def test_without_a_request_or_a_time_the_model_still_names_the_missing_field() -> None:
    (no_id,) = parse_body(json.dumps(call(timestamp=RECEIVED_S)), "segment")
    assert isinstance(no_id, Rejection) and no_id.field == "messageId"
    (no_time,) = parse_body(json.dumps(call(messageId="m")), "segment", Received("req-1", None))
    assert isinstance(no_time, Rejection) and no_time.field == "timestamp"


def test_native_events_still_require_their_timestamp() -> None:
    native = {"uuid": "u", "type": "track", "event": "x", "device": {"platform": "ios", "id": "V"}}
    (item,) = parse_body(json.dumps(native), "native", RECEIVED)
    assert isinstance(item, Rejection) and item.field == "timestamp"


def test_a_missing_message_id_is_the_request_id_and_the_position_in_batch_and_single_bodies() -> None:
    batch = {"batch": [call(messageId="own", timestamp=RECEIVED_S), call(timestamp=RECEIVED_S), {"type": "page"}]}
    items = parse_body(json.dumps(batch), "segment", RECEIVED)
    assert [item.uuid for item in items] == ["own", "req-1#1", "req-1#2"]  # filtered calls get their id too
    assert "messageId: not sent" in parse_warnings(items[1])[0]
    (single,) = parse_body(json.dumps(call(timestamp=RECEIVED_S)), "segment", RECEIVED)
    assert single.uuid == derived_message_id("req-1", 0)


def iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_times = st.integers(min_value=1_000_000_000_001, max_value=4_000_000_000_000)  # epoch ms (above 1e12)


@settings(max_examples=80, deadline=None)
@given(
    received_ms=_times,
    original_ms=_times,
    skew_ms=st.integers(min_value=-86_400_000, max_value=86_400_000),
    sent_delay_ms=st.integers(min_value=0, max_value=86_400_000),
    give_id=st.lists(st.booleans(), min_size=1, max_size=5),
)
# Found by hypothesis: computed in float seconds, the corrected time came out 1 ms early.
@example(
    received_ms=2_984_847_241_060, original_ms=1_345_614_625_985, skew_ms=-769_901, sent_delay_ms=0, give_id=[False]
)
def test_derived_fields_are_stable_carried_by_the_dead_letter_copy_and_follow_segments_formula(
    received_ms: int, original_ms: int, skew_ms: int, sent_delay_ms: int, give_id: list[bool]
) -> None:
    received = Received("c6af9ac6-7b61-11e6-9a41-93e8deadbeef", received_ms)
    calls = [
        call(originalTimestamp=iso(original_ms), **({"messageId": f"own-{i}"} if own else {}))
        for i, own in enumerate(give_id)
    ]
    body = json.dumps({"batch": calls, "sentAt": iso(original_ms + sent_delay_ms + skew_ms)})
    first, again = parse_body(body, "segment", received), parse_body(body, "segment", received)
    assert [i.uuid for i in first] == [i.uuid for i in again], "a redelivered body maps to the same ids"
    expected_ms = received_ms - (sent_delay_ms + skew_ms)
    for position, (item, own) in enumerate(zip(first, give_id, strict=True)):
        assert item.uuid == (f"own-{position}" if own else derived_message_id(received.request_id or "", position))
        if not 946_684_800_000 <= expected_ms <= 4_102_444_800_000:
            assert isinstance(item, Rejection) and item.field == "timestamp"  # out of the accepted range: named
            continue
        assert round(item.timestamp * 1000) == expected_ms
    copies = raw_events(load_document(body), "segment", received)
    assert [copy.get("messageId") for copy in copies] == [item.uuid for item in first]
    replayed = [parse_body(json.dumps(copy), "segment", Received("another-request", None))[0] for copy in copies]
    assert [(r.uuid, getattr(r, "timestamp", None)) for r in replayed] == [
        (i.uuid, getattr(i, "timestamp", None)) for i in first
    ], "a dead-lettered call replays alone, in another request, to the same id and time"


@given(st.dictionaries(st.sampled_from(["messageId", "timestamp", "event", "sentAt"]), st.text(max_size=5)))
def test_a_call_with_both_fields_is_never_touched(extra: dict[str, str]) -> None:
    fields = {**extra, "messageId": "m", "timestamp": "2026-11-20T12:00:00Z"}
    assert complete_call(call(**fields), 0, RECEIVED) == (call(**fields), [])


def test_the_enricher_sends_the_derived_id_to_kochava_and_writes_id_and_time_into_the_dead_letter() -> None:
    sender = FakeSender()
    enricher = Enricher(
        settings=Settings(kochava_app_id_ios="ko-ios", kochava_app_id_android="ko-android", adservices_resolve=False),
        sender=sender,
        queues=Queues(ingest="q-ingest", ingest_dlq="q-dlq", delivery="q-delivery"),
        profile_store=FakeProfileStore(),
        adservices=None,
        log=FakeLog(),
    )
    good, bad = call(), call(context={"device": {"type": "phone"}})
    calls = [{**each, "originalTimestamp": "2026-11-20T12:05:00Z"} for each in (good, bad)]
    body = json.dumps({"batch": calls, "sentAt": "2026-11-20T12:10:00Z"})
    info = MessageInfo(request_id="req-1", received_at_ms=RECEIVED.received_at_ms, route="segment")
    result = enricher.process(body, info, RECEIVED_S)
    assert result.forwarded == {"event": ["req-1#0"]}
    (delivery,) = sender.messages("q-delivery")
    assert json.loads(delivery.body)["uuid"] == "req-1#0"
    (dead,) = sender.messages("q-dlq")
    assert dead.attributes["uuid"] == "req-1#1"
    assert json.loads(dead.body)["messageId"] == "req-1#1", "the replayed call keeps its id"
    assert json.loads(dead.body)["timestamp"] == "2026-11-20T11:55:00.000Z"


def test_tools_transform_shows_which_rule_gave_the_timestamp() -> None:
    from tools.transform import read_events, transform

    settings_ = Settings(kochava_app_id_ios="ko-ios", kochava_app_id_android="ko-android", adservices_resolve=False)
    data = json.dumps(call(messageId="m", originalTimestamp="2026-11-20T12:05:00Z")).encode()
    (line,) = transform(read_events(data, "segment"), settings_, RECEIVED_S, route="segment")
    assert line["status"] == "ok"
    assert line["warnings"][0].startswith("timestamp: not sent; originalTimestamp used as is")


def test_tools_transform_times_a_call_without_any_time_against_its_now(tmp_path: Any) -> None:
    import io

    from tools.transform import run

    settings_ = Settings(kochava_app_id_ios="ko-ios", kochava_app_id_android="ko-android", adservices_resolve=False)
    lines = b"\n".join(json.dumps(call(messageId=f"m-{i}")).encode() for i in range(2))  # JSON lines
    out = io.BytesIO()
    assert run(io.BytesIO(lines), out, settings_, "segment", RECEIVED_S) == 0
    for line in map(json.loads, out.getvalue().splitlines()):
        assert line["payload"]["data"]["usertime"] == int(RECEIVED_S)
        assert "the time the API received it used" in line["warnings"][0]
