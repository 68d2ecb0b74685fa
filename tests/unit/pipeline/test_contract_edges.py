"""Edges of the ingest contract that the other contract tests left open (``functions/pipeline/contract.py``): each
test here failed on a mutant that the rest of the fast tests let live (issue 26, "tests that catch mutants";
docs/reliability.md lists which).
"""

from __future__ import annotations

from typing import Any

import pytest

from functions.pipeline import reasons
from functions.pipeline.contract import parse_timestamp
from functions.pipeline.events import Rejection, parse_event

NATIVE: dict[str, Any] = {
    "uuid": "u-1",
    "type": "track",
    "event": "x",
    "timestamp": 1_795_175_910,
    "device": {"platform": "ios", "id": "v"},
}
SEGMENT: dict[str, Any] = {
    "type": "track",
    "event": "x",
    "messageId": "m-1",
    "timestamp": "2026-11-20T10:00:00Z",
    "anonymousId": "a",
    "context": {"device": {"type": "ios", "id": "v"}},
}


def test_an_app_build_sent_as_a_number_is_kept_as_its_decimal_text() -> None:
    # Given an app that sends its build number as a JSON integer, natively and through Segment
    native = parse_event({**NATIVE, "app": {"build": 4711}})
    segment = parse_event({**SEGMENT, "context": {**SEGMENT["context"], "app": {"build": 4711}}}, "segment")
    # Then the event keeps it as the text "4711" (not refused, not turned into some other text)
    assert not isinstance(native, Rejection) and native.app is not None and native.app.build == "4711"
    assert not isinstance(segment, Rejection) and segment.app is not None and segment.app.build == "4711"


@pytest.mark.parametrize("sent", [1.5, True])
def test_an_app_build_that_is_a_fraction_or_a_flag_is_refused_naming_the_field(sent: object) -> None:
    # Given a build number of 1.5 or true (no "1.5" or "True" is made up for it)
    item = parse_event({**NATIVE, "app": {"build": sent}})
    # Then the event is refused, naming the field
    assert isinstance(item, Rejection)
    assert (item.reason, item.field) == (reasons.INVALID_EVENT, "app.build")
    assert item.message == "app.build: must be a string"


def test_an_unreadable_timestamp_is_quoted_in_the_error_cut_to_40_characters() -> None:
    # Given a timestamp that is a long text and no date (a whole log line pasted into the field)
    sent = "not a date: " + "x" * 100
    # When it is read
    with pytest.raises(ValueError, match="must be ISO-8601") as refused:
        parse_timestamp(sent)
    # Then the error quotes its first 40 characters only (the rest of a pasted payload stays out of the DLQ text)
    assert str(refused.value).endswith(f"got {sent[:40]!r}")


def test_a_number_of_exactly_1e12_is_seconds_and_so_out_of_range_one_more_is_milliseconds() -> None:
    # The contract (spec section 2): numbers *above* 1e12 are milliseconds
    with pytest.raises(ValueError, match="out of range"):
        parse_timestamp(1e12)
    assert parse_timestamp(1e12 + 1) == pytest.approx(1e9 + 0.001)


def test_a_timestamp_out_of_range_says_which_range_naming_the_field() -> None:
    item = parse_event({**NATIVE, "timestamp": 5})
    assert isinstance(item, Rejection)
    assert item.message == "timestamp: is out of range (must be between 2000-01-01 and 2100-01-01)"


@pytest.mark.parametrize(
    ("call", "field", "message"),
    [
        ({"type": "track"}, "event", "event: is required for track calls"),
        ({"type": "identify"}, "userId", "userId: is required for identify calls"),
        (
            {"type": "track", "event": "x", "context": {"device": {"type": "windows"}}},
            "context.device.type",
            "context.device.type: must be ios or android (or context.os.name iOS or Android)",
        ),
    ],
)
def test_a_segment_call_missing_what_its_type_needs_is_refused_naming_the_field(
    call: dict[str, Any], field: str, message: str
) -> None:
    # Given a Segment track call without its event, an identify call without its user, a device of no platform
    item = parse_event({key: value for key, value in SEGMENT.items() if key != "event"} | call, "segment")
    # Then it is refused (not mapped with an empty name or user), the message naming the Segment field
    assert isinstance(item, Rejection)
    assert (item.reason, item.field, item.message, item.uuid) == (reasons.INVALID_EVENT, field, message, "m-1")
