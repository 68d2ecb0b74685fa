"""Edges of body parsing (``functions/pipeline/events.py``) the other tests left open: a Segment batch with a call
whose time cannot be derived, integer message ids, a duplicated ``batch`` key sent as bytes, the lenient parser's
integers and unpaired surrogates on the Segment route, and ``raw_events`` (what a DLQ message or a re-queued event
carries). Each test here failed on a mutant that the rest of the fast tests let live (issue 26, "tests that catch
mutants"; docs/reliability.md lists which).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.pipeline import reasons, segment
from functions.pipeline.contract import NativeEvent
from functions.pipeline.events import DUPLICATE_BATCH_MESSAGE, Rejection, parse_body, raw_events

CALL: dict[str, Any] = {"type": "track", "event": "x", "anonymousId": "a", "context": {"device": {"type": "ios"}}}
GOOD = {**CALL, "messageId": "m-2", "timestamp": "2026-11-20T10:00:00Z"}
RECEIVED = segment.Received("req-1", 1_795_176_000_000)
SURROGATE = "\\ud800"  # as it appears in the JSON text: an escaped unpaired surrogate


def test_a_call_whose_time_cannot_be_derived_is_refused_alone_and_the_rest_of_the_batch_kept() -> None:
    # Given a Segment batch whose first call has no timestamp and an unreadable originalTimestamp (integer id)
    untimed = {**CALL, "messageId": 42, "originalTimestamp": "garbage"}
    items = parse_body(json.dumps({"batch": [untimed, GOOD]}), "segment", RECEIVED)
    # Then that call is refused, saying why and under its id as text, and the next call is still mapped
    refused, kept = items
    assert isinstance(refused, Rejection)
    assert (refused.reason, refused.field, refused.uuid) == (reasons.INVALID_EVENT, "originalTimestamp", "42")
    assert refused.message.startswith("originalTimestamp: must be ISO-8601")
    assert isinstance(kept, NativeEvent) and kept.uuid == "m-2"


def test_a_padded_message_id_of_an_untimed_call_is_its_uuid_stripped() -> None:
    untimed = {**CALL, "messageId": " m-1 ", "originalTimestamp": "garbage"}
    [refused] = parse_body(json.dumps(untimed), "segment", RECEIVED)
    assert isinstance(refused, Rejection) and refused.uuid == "m-1"


def test_a_duplicated_batch_key_is_refused_in_a_body_of_bytes_too() -> None:
    # API Gateway hands the Lambda text, the local stack and tools bytes: both are checked
    body = b'{"batch": [{"uuid": "a"}], "batch": [{"uuid": "b"}]}'
    [refused] = parse_body(body)
    assert isinstance(refused, Rejection)
    assert (refused.reason, refused.message) == (reasons.INVALID_BODY, DUPLICATE_BATCH_MESSAGE)


def test_the_lenient_parser_keeps_the_64_bit_limits_as_integers_as_orjson_does() -> None:
    # Given a batch the strict parser refuses (an unpaired surrogate in one event), with the largest and smallest
    # integers orjson keeps as integers in the other
    limits = {"low": -(2**63), "high": 2**64 - 1, "beyond": 2**64}
    event = {"uuid": "u-1", "type": "track", "event": "x", "timestamp": 1_795_175_910, "device": {"platform": "ios"}}
    body = json.dumps({"batch": [{**event, "properties": limits}, {**event, "uuid": "u-2", "event": "@"}]})
    body = body.replace('"@"', f'"{SURROGATE}"')
    parsed, refused = parse_body(body)
    # Then the limits stay integers, and only a number beyond them becomes a float (what orjson would have given)
    assert isinstance(parsed, NativeEvent) and isinstance(refused, Rejection)
    assert parsed.properties == {"low": -(2**63), "high": 2**64 - 1, "beyond": float(2**64)}
    assert [type(value) for value in parsed.properties.values()] == [int, int, float]


def test_a_segment_call_with_a_surrogate_is_refused_under_its_message_id_and_its_neighbour_mapped() -> None:
    # Given a Segment batch: one call with an unpaired surrogate in its event name, one good call
    body = json.dumps({"batch": [{**GOOD, "messageId": "m-1", "event": "@"}, GOOD]}).replace('"@"', f'"{SURROGATE}"')
    refused, kept = parse_body(body, "segment", RECEIVED)
    # Then the first is refused under its messageId, naming the field; the second is mapped as a Segment call
    assert isinstance(refused, Rejection) and (refused.uuid, refused.field) == ("m-1", "event")
    assert isinstance(kept, NativeEvent) and (kept.uuid, kept.name) == ("m-2", "x")


def test_a_body_that_is_only_a_text_with_a_surrogate_is_one_refusal_without_an_id() -> None:
    [refused] = parse_body(f'"{SURROGATE}"')
    assert isinstance(refused, Rejection)
    assert (refused.reason, refused.field, refused.uuid) == (reasons.INVALID_EVENT, "event", None)


def test_an_empty_uuid_of_an_event_with_a_surrogate_is_no_uuid() -> None:
    body = json.dumps({"uuid": "", "type": "track", "event": "@"}).replace('"@"', f'"{SURROGATE}"')
    [refused] = parse_body(body)
    assert isinstance(refused, Rejection) and refused.uuid is None


def test_raw_events_are_the_calls_as_parsed_ids_and_times_derived_others_as_sent() -> None:
    # Given a Segment batch: a call without messageId whose time cannot be derived, a member that is not an
    # object, a complete call, and a call without messageId
    untimed = {**CALL, "originalTimestamp": "garbage"}
    unnamed = {**CALL, "timestamp": "2026-11-20T10:00:00Z"}
    events = raw_events({"batch": [untimed, 5, GOOD, unnamed]}, "segment", RECEIVED)
    # Then each is what its DLQ message or re-queued copy carries: the derived messageId written in (even for the
    # call refused for its time), the rest as sent
    assert events == [
        {**untimed, "messageId": "req-1#0"},
        5,
        GOOD,
        {**unnamed, "messageId": "req-1#3"},
    ]


_GOOD = {
    "uuid": "u-1",
    "type": "track",
    "name": "level_up",
    "timestamp": "2026-01-01T00:00:00Z",
    "device": {"platform": "ios", "id": "3F2504E0-4F89-11D3-9A0C-0305E82C3301"},
}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({**_GOOD, "type": "foo"}, "type", "type: must be install, track, screen or identify"),
        ({**_GOOD, "uuid": "a" * 300}, "uuid", "uuid: is too long (at most 128)"),
        ({**_GOOD, "uuid": ""}, "uuid", "uuid: must not be empty"),
        (
            {**_GOOD, "device": {**_GOOD["device"], "att": {"status": "authorized", "duration": -5}}},
            "device.att.duration",
            "device.att.duration: input should be greater than or equal to 0",
        ),
        (
            {key: value for key, value in _GOOD.items() if key != "name"},
            "event",
            "event: is required for track events (alias: action)",
        ),
        ({"batch": [_GOOD] * 101}, "batch", "batch: is too long (at most 100)"),
        ({"batch": []}, "batch", "batch: must have at least 1 item(s)"),
        ({"batch": [_GOOD, 5]}, "batch.1", "batch.1: must be an object"),
    ],
    ids=["literal", "text-too-long", "empty-text", "bound", "model-rule", "batch-too-long", "empty-batch", "item"],
)
def test_each_kind_of_invalid_input_gets_its_own_message_naming_the_field(
    body: dict[str, Any], field: str, message: str
) -> None:
    """Given a body with one problem of each kind pydantic reports (a literal, a text or list too long or empty, a
    bound, a model rule that names its field, a batch item that is no object),
    when it is parsed,
    then the one rejection names the field and says the problem in the contract's words (what the API's caller and
    the DLQ tool show; issue 26, the describe_error survivors of the full run)."""
    [rejection] = parse_body(json.dumps(body))
    assert isinstance(rejection, Rejection)
    assert (rejection.field, rejection.message) == (field, message)
