"""functions/adapters/sqs.py and profiles_dynamodb.py without AWS (moved from
``tests/integration/enricher/test_sqs_adapter.py``, which keeps what moto answers): batches split by size, calls
that raise or forget entries are retried then raised (never a silent drop), a batch request too long is split,
``fit`` and the dead-letter message keep SQS's limits, a profile store that stays throttled raises."""

from __future__ import annotations

from typing import Any

import pytest

from functions.adapters.profiles_dynamodb import DynamoDbProfileStore, ProfileStoreError
from functions.adapters.sqs import SqsSender, chunks
from functions.messages import MAX_TEXT_ATTRIBUTE_CHARS, OutgoingMessage, SendError, dead_letter_message, fit
from functions.names import SQS_MAX_MESSAGE_ATTRIBUTES, SQS_MAX_MESSAGE_BYTES


def test_batches_are_split_by_total_size() -> None:
    big = OutgoingMessage("x" * 300_000)
    assert [len(c) for c in chunks([big] * 7)] == [3, 3, 1]  # 1 MiB per call
    assert [len(c) for c in chunks([big] * 2, max_bytes=256 * 1024)] == [1, 1]


def test_entries_failing_every_time_raise_instead_of_being_dropped() -> None:
    class AlwaysFails:
        def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            return {"Successful": [], "Failed": [{"Id": e["Id"], "Code": "KmsThrottled"} for e in Entries]}

    with pytest.raises(SendError, match="KmsThrottled") as info:
        SqsSender(AlwaysFails(), sleep=lambda _s: None).send("url", [OutgoingMessage("b")])
    assert len(info.value.failed) == 1


def test_a_raising_call_is_retried_then_raised() -> None:
    class Raises:
        calls = 0

        def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            Raises.calls += 1
            raise ConnectionError("down")

    with pytest.raises(SendError):
        SqsSender(Raises(), max_attempts=3, sleep=lambda _s: None).send("url", [OutgoingMessage("b")])
    assert Raises.calls == 3


def test_an_entry_missing_from_the_answer_is_not_assumed_sent() -> None:
    class Forgetful:
        calls = 0

        def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            Forgetful.calls += 1
            return {"Successful": [{"Id": e["Id"]} for e in Entries[1:]]}

    with pytest.raises(SendError):
        SqsSender(Forgetful(), sleep=lambda _s: None).send("url", [OutgoingMessage("a"), OutgoingMessage("b")])
    assert Forgetful.calls == 4


def test_batch_request_too_long_is_split_instead_of_retried() -> None:
    class Strict:
        calls: list[int] = []

        def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            Strict.calls.append(len(Entries))
            if len(Entries) > 1:
                error = Exception("BatchRequestTooLong")
                error.response = {"Error": {"Code": "BatchRequestTooLong"}}  # type: ignore[attr-defined]
                raise error
            return {"Successful": [{"Id": e["Id"]} for e in Entries]}

    assert SqsSender(Strict(), sleep=lambda _s: None).send("url", [OutgoingMessage("a"), OutgoingMessage("b")]) == []
    assert Strict.calls == [2, 1, 1]


def test_fit_cuts_the_body_and_keeps_ten_attributes_at_most() -> None:
    attrs: dict[str, str | int | float] = {f"a{i}": f"v{i}" for i in range(SQS_MAX_MESSAGE_ATTRIBUTES)}
    msg = OutgoingMessage("é" * SQS_MAX_MESSAGE_BYTES, attrs)
    cut = fit(msg, droppable=("a9", "a8"))
    assert cut.size() <= SQS_MAX_MESSAGE_BYTES
    assert cut.attributes["truncated"] is True
    assert len(cut.attributes) == SQS_MAX_MESSAGE_ATTRIBUTES
    assert "a9" not in cut.attributes and "a8" in cut.attributes
    assert msg.body.startswith(cut.body)  # cut at a character boundary
    assert fit(OutgoingMessage("small", attrs)) == OutgoingMessage("small", attrs)


def test_fit_leaves_out_droppable_attributes_over_ten_even_when_the_size_fits() -> None:
    attrs: dict[str, str | int | float] = {f"a{i}": f"v{i}" for i in range(SQS_MAX_MESSAGE_ATTRIBUTES + 1)}
    small = fit(OutgoingMessage("small", attrs, delay_seconds=5), droppable=("a0", "a1"))
    assert small.body == "small" and small.delay_seconds == 5
    assert sorted(small.attributes) == sorted(f"a{i}" for i in range(1, SQS_MAX_MESSAGE_ATTRIBUTES + 1))
    big = fit(OutgoingMessage("x" * SQS_MAX_MESSAGE_BYTES, attrs), droppable=("a0", "a1"))
    assert big.size() <= SQS_MAX_MESSAGE_BYTES and big.attributes["truncated"] is True
    assert "a0" not in big.attributes and "a1" not in big.attributes
    assert len(big.attributes) == SQS_MAX_MESSAGE_ATTRIBUTES


def test_dead_letter_message_skips_missing_attributes_and_cuts_long_text() -> None:
    msg = dead_letter_message(
        "{}", stage="enricher", reason="invalid_event", failed_at_ms=5, field=None, error="e" * 5000, uuid=""
    )
    assert msg.attributes == {
        "stage": "enricher",
        "reason": "invalid_event",
        "failed_at_ms": 5,
        "error": "e" * MAX_TEXT_ATTRIBUTE_CHARS,
    }


def test_profile_store_raises_when_keys_stay_unprocessed() -> None:
    class Throttled:
        def batch_get_item(self, *, RequestItems: dict[str, Any]) -> dict[str, Any]:
            return {"Responses": {}, "UnprocessedKeys": RequestItems}

        def batch_write_item(self, *, RequestItems: dict[str, Any]) -> dict[str, Any]:
            return {"UnprocessedItems": RequestItems}

    store = DynamoDbProfileStore(Throttled(), "t", sleep=lambda _s: None)
    with pytest.raises(ProfileStoreError):
        store.get_many(["a"])
    with pytest.raises(ProfileStoreError):
        store.put_many({"a": {"ip": "1"}}, expires_at=1)
