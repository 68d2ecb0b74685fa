"""The parser's shortcuts give exactly what the models they skip would give.

``parse_body`` checks a batch body's shape itself instead of through ``NativeBatch`` when orjson parsed it, and
``parse_event`` calls the models' validators without ``model_validate``'s wrapper.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field, ValidationError

from functions.pipeline import events, reasons
from functions.pipeline.contract import MAX_BATCH_EVENTS, Device, NativeBatch, NativeEvent, SegmentEvent
from functions.pipeline.events import FilteredCall, Rejection, parse_body, parse_event, plain_batch, segment_to_event
from functions.pipeline.segment import filtered_because

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=12,
)
batches = (
    json_values | st.lists(json_values, max_size=5) | st.lists(st.dictionaries(st.text(), json_values), max_size=5)
)

EVENT = {
    "uuid": "u",
    "type": "track",
    "event": "x",
    "timestamp": 1_700_000_000,
    "device": {"platform": "ios", "id": "V"},
}


@given(batches)
def test_a_plain_batch_is_one_the_model_accepts(batch: Any) -> None:
    document = orjson.loads(orjson.dumps({"batch": batch}))
    try:
        NativeBatch.model_validate(document)
    except ValidationError:
        assert not plain_batch(document["batch"])
    else:
        assert plain_batch(document["batch"])


def test_batch_sizes_at_the_limits() -> None:
    assert not plain_batch([])
    assert plain_batch([{}] * MAX_BATCH_EVENTS)
    assert not plain_batch([{}] * (MAX_BATCH_EVENTS + 1))
    too_many = parse_body(orjson.dumps({"batch": [EVENT] * (MAX_BATCH_EVENTS + 1)}))
    assert [(item.reason, item.field) for item in too_many if isinstance(item, Rejection)] == [
        (reasons.INVALID_BODY, "batch")
    ]


def test_a_key_with_a_lone_surrogate_rejects_its_event_not_the_batch() -> None:
    # NativeBatch would refuse the whole body (its keys must be valid strings): each event is judged on its own.
    body = b'{"batch": [{"\\ud800": 1}, ' + orjson.dumps(EVENT) + b"]}"
    bad, good = parse_body(body)
    assert isinstance(bad, Rejection) and not isinstance(good, Rejection)
    assert (bad.reason, bad.field, bad.raw) == (reasons.INVALID_EVENT, "\\ud800", {"\ufffd": 1})


def test_a_leniently_parsed_batch_that_is_not_a_batch_still_goes_through_the_model() -> None:
    body = b'{"batch": [], "x": "\\ud800"}'
    [item] = parse_body(body)
    assert isinstance(item, Rejection)
    assert (item.reason, item.field, item.raw) == (reasons.INVALID_BODY, "batch", {"batch": [], "x": "\ufffd"})


@given(
    st.dictionaries(
        st.sampled_from([*sorted(EVENT), "messageId", "context", "integrations"]),
        json_values | st.sampled_from(["page", "alias", {"Kochava": False}, {"All": False}]),
        max_size=7,
    )
)
def test_parse_event_is_model_validate(raw: dict[str, Any]) -> None:
    try:
        native = NativeEvent.model_validate(raw)
    except ValidationError:
        assert isinstance(parse_event(raw, "native"), Rejection)
    else:
        assert parse_event(raw, "native") == native
    if filtered_because(raw) is not None:  # page / group / alias, or not for Kochava: never validated
        assert isinstance(parse_event(raw, "segment"), FilteredCall)
        return
    try:
        call = SegmentEvent.model_validate(raw)
    except ValidationError:
        assert isinstance(parse_event(raw, "segment"), Rejection)
    else:
        assert parse_event(raw, "segment") == segment_to_event(call)


def test_valid_events_of_both_routes_are_model_validate() -> None:
    segment = {"type": "track", "event": "x", "messageId": "m", "timestamp": 1_700_000_000}
    segment["context"] = {"device": {"type": "Android", "id": 7, "attTrackingStatus": 2}, "app": {"build": 3}}
    assert parse_event(EVENT, "native") == NativeEvent.model_validate(EVENT)
    assert parse_event(segment, "segment") == segment_to_event(SegmentEvent.model_validate(segment))


SEGMENT_CALL = {
    "type": "track",
    "event": "Level Up",
    "messageId": "m-1",
    "timestamp": 1_700_000_000,
    "context": {"device": {"type": "ios", "id": "V", "advertisingId": "A"}, "app": {"namespace": "com.x"}},
}


def test_a_field_added_to_a_model_reaches_both_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given the internal event and its device gain an optional field each (one with a default factory),
    when a native event and a Segment call are parsed,
    then both come out as the new models, the new fields read as their defaults and model_dump() holds them:
    the Segment fast path (``_trusted``) takes its field list from ``model_fields``, not from a hand-written copy."""

    class WiderDevice(Device):
        carrier: str | None = None

    class WiderEvent(NativeEvent):
        device: WiderDevice
        tags: list[str] = Field(default_factory=list)
        campaign: str | None = "organic"

    monkeypatch.setattr(events, "NativeEvent", WiderEvent)
    monkeypatch.setattr(events, "Device", WiderDevice)
    monkeypatch.setattr(events, "_validate_native", WiderEvent.__pydantic_validator__.validate_python)

    native = parse_event(EVENT, "native")
    segment = parse_event(SEGMENT_CALL, "segment")
    for parsed in (native, segment):
        assert isinstance(parsed, WiderEvent) and isinstance(parsed.device, WiderDevice)
        assert (parsed.tags, parsed.campaign, parsed.device.carrier) == ([], "organic", None)
        dumped = parsed.model_dump()
        assert (dumped["tags"], dumped["campaign"], dumped["device"]["carrier"]) == ([], "organic", None)
    assert isinstance(segment, WiderEvent)
    # The fast path builds what validation would build from the same values.
    assert segment == WiderEvent.model_validate(segment.model_dump())
    other = parse_event({**SEGMENT_CALL, "messageId": "m-2"}, "segment")
    assert isinstance(other, WiderEvent)
    assert other.tags is not segment.tags  # a default factory gives each event its own value


def test_segment_events_are_what_validation_would_build() -> None:
    segment = parse_event(SEGMENT_CALL, "segment")
    assert isinstance(segment, NativeEvent)
    assert segment == NativeEvent.model_validate(segment.model_dump())
    assert set(vars(segment)) == set(NativeEvent.model_fields)
    assert set(vars(segment.device)) == set(Device.model_fields)
