"""The enricher Lambda through its entry point on the in-memory ports: partial batches, DLQ reasons, filtering,
hand-offs SQS refuses, logs free of raw identifiers, hard input. Moved from the moto tier
(``tests/integration/enricher/test_handler.py``, which keeps the end-to-end wiring: real SQS attributes, the SQS
sender's retries through the handler, the profile table written by one invocation and read by the next). The fake
sender refuses what the real one refuses (its size pre-flight; ``tests/integration/contracts``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from functions.names import (
    ATTR_ERROR,
    ATTR_EVENT_NAME,
    ATTR_FAILED_AT_MS,
    ATTR_FIELD,
    ATTR_REASON,
    ATTR_RECEIVED_AT_MS,
    ATTR_REQUEST_ID,
    ATTR_ROUTE,
    ATTR_STAGE,
    ATTR_TRUNCATED,
    ATTR_UUID,
    ENV_KOCHAVA_APP_ID_ANDROID,
    SQS_MAX_MESSAGE_ATTRIBUTES,
    SQS_MAX_MESSAGE_BYTES,
    sqs_message_bytes,
)
from functions.pipeline import reasons
from tests.samples.enricher import IDFA, IDFV, IP, NOW, TOKEN, native_event
from tests.shapes import nested_list
from tests.unit.enricher.stack import FakeStack


def _emf_docs(out: str) -> list[dict[str, Any]]:
    docs = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{") and '"_aws"' in line:
            docs.append(json.loads(line))
    return docs


def _emf(out: str) -> dict[str, float]:
    """The invocation's main EMF document (the one with EventsReceived): metric name -> summed value."""
    for doc in _emf_docs(out):
        if "EventsReceived" in doc:
            return {
                k: (sum(v) if isinstance(v, list) else v)
                for k, v in doc.items()
                if isinstance(v, int | float | list) and k != "_aws"
            }
    raise AssertionError(f"no EMF document in {out[:500]!r}")


def test_100_events_with_3_invalid_forwards_97_and_dead_letters_3_with_reason_and_field(stack: FakeStack) -> None:
    """Given a message of 100 events, 3 of them invalid When it is handled
    Then 97 are delivered and the 3 dead-lettered alone, each with its reason, field and the message's facts."""
    events: list[Any] = [native_event() for _ in range(100)]
    events[10].pop("timestamp")
    events[50]["device"] = {**events[50]["device"], "platform": "windows"}
    events[99] = {**events[99], "type": "track", "event": None}

    response = stack.invoke(stack.record({"batch": events}))

    assert response == {"batchItemFailures": []}
    deliveries = stack.deliveries()
    assert len(deliveries) == 97
    assert {d["uuid"] for d in deliveries} == {e["uuid"] for i, e in enumerate(events) if i not in (10, 50, 99)}
    dead = stack.drain("ingest_dlq")
    assert len(dead) == 3
    by_uuid = {d["attributes"][ATTR_UUID]: d for d in dead}
    assert by_uuid[events[10]["uuid"]]["attributes"][ATTR_FIELD] == "timestamp"
    assert by_uuid[events[50]["uuid"]]["attributes"][ATTR_FIELD] == "device.platform"
    assert by_uuid[events[99]["uuid"]]["attributes"][ATTR_FIELD] == "event"
    for index in (10, 50, 99):
        message = by_uuid[events[index]["uuid"]]
        attrs = message["attributes"]
        assert attrs[ATTR_STAGE] == "enricher"
        assert attrs[ATTR_REASON] == reasons.INVALID_EVENT
        assert attrs[ATTR_ERROR].startswith(attrs[ATTR_FIELD] + ":")
        assert attrs[ATTR_REQUEST_ID] == "api-req-1"
        assert attrs[ATTR_ROUTE] == "native"
        assert int(attrs[ATTR_RECEIVED_AT_MS]) == int(NOW * 1000)
        assert int(attrs[ATTR_FAILED_AT_MS]) == int(NOW * 1000)
        assert json.loads(message["body"]) == events[index]  # the original event, alone
    assert stack.drain("ingest") == []


def test_unparseable_body_goes_whole_to_the_dlq(stack: FakeStack) -> None:
    """Given a body that is not JSON Then it goes whole to the ingest DLQ as invalid_json, nothing delivered."""
    response = stack.invoke(stack.record("{not json"))
    assert response == {"batchItemFailures": []}
    [dead] = stack.drain("ingest_dlq")
    assert dead["body"] == "{not json"
    assert dead["attributes"][ATTR_REASON] == reasons.INVALID_JSON
    assert stack.deliveries() == []


def test_mapping_rejections_are_dead_lettered_with_their_reason(stack: FakeStack) -> None:
    """Given an Android event and an iOS event with only an all-zero IDFA
    Then the Android one is delivered, the other dead-lettered no_device_identifier as received."""
    android = native_event(device={"platform": "android", "id": "a-1"})
    no_id = native_event(device={"platform": "ios", "advertising_id": "00000000-0000-0000-0000-000000000000"})
    stack.invoke(stack.record({"batch": [android, no_id]}))
    dead = {d["attributes"][ATTR_UUID]: d for d in stack.drain("ingest_dlq")}
    assert set(dead) == {no_id["uuid"]}
    assert dead[no_id["uuid"]]["attributes"][ATTR_REASON] == reasons.NO_DEVICE_IDENTIFIER
    assert json.loads(dead[no_id["uuid"]]["body"]) == no_id
    assert [d["uuid"] for d in stack.deliveries()] == [android["uuid"]]


def test_missing_app_id_is_dead_lettered_with_the_original_event(
    fakes: FakeStack, make_stack: Callable[..., FakeStack]
) -> None:
    """Given no Android app id configured When an Android event comes Then it is dead-lettered missing_app_id."""
    fakes.env.pop(ENV_KOCHAVA_APP_ID_ANDROID)
    stack = make_stack()
    event = native_event(device={"platform": "android", "id": "a-1"})
    stack.invoke(stack.record(event))
    [dead] = stack.drain("ingest_dlq")
    assert dead["attributes"][ATTR_REASON] == reasons.MISSING_APP_ID
    assert json.loads(dead["body"]) == event
    assert stack.deliveries() == []


def test_filtered_heartbeat_is_counted_and_not_forwarded(stack: FakeStack, capsys: pytest.CaptureFixture[str]) -> None:
    """Given a heartbeat and a kept event Then the heartbeat is filtered and counted, named in the message's line."""
    heartbeat = native_event(event="heartbeat")
    kept = native_event()
    stack.invoke(stack.record({"batch": [heartbeat, kept]}))
    assert [d["uuid"] for d in stack.deliveries()] == [kept["uuid"]]
    assert stack.drain("ingest_dlq") == []
    emf = _emf(capsys.readouterr().out)
    assert emf["EventsFiltered"] == 1
    assert emf["EventsForwarded"] == 1
    assert emf["EventsReceived"] == 2
    [processed] = [line for line in stack.log_lines() if line.get("message") == "message processed"]
    assert processed["filtered"] == {"heartbeat": [heartbeat["uuid"]]}
    assert processed["forwarded"] == {"event": [kept["uuid"]]}


def test_rejections_are_counted_per_reason(stack: FakeStack, capsys: pytest.CaptureFixture[str]) -> None:
    """Given an event without a uuid Then it is counted rejected, once in total and once under its reason."""
    bad = native_event()
    bad.pop("uuid")
    stack.invoke(stack.record({"batch": [bad, native_event()]}))
    out = capsys.readouterr().out
    assert _emf(out)["EventsRejected"] == 1
    [per_reason] = [doc for doc in _emf_docs(out) if "reason" in doc]
    assert per_reason["reason"] == reasons.INVALID_EVENT
    assert per_reason["EventsRejected"] in (1, [1])


def test_record_reported_failed_only_when_a_hand_off_fails_for_good(stack: FakeStack) -> None:
    """Given three records, one of whose events SQS keeps failing (not a sender fault)
    Then only that record is reported failed; the others' events are delivered."""
    doomed_event = native_event()
    stack.sender.fail_messages(lambda queue, message: doomed_event["uuid"] in message.body)
    good, doomed, also_good = (
        stack.record(native_event()),
        stack.record({"batch": [native_event(), doomed_event]}),
        stack.record(native_event("install")),
    )
    response = stack.invoke(good, doomed, also_good)
    # Only the record whose event SQS kept refusing is reported; its other event may go twice (idempotent).
    assert response == {"batchItemFailures": [{"itemIdentifier": doomed["messageId"]}]}
    delivered = [d["uuid"] for d in stack.deliveries()]
    assert doomed_event["uuid"] not in delivered
    assert len(delivered) == 3


def test_a_record_that_fails_alone_fails_the_invocation(stack: FakeStack) -> None:
    """Given SQS unreachable When a batch of one record is handled Then the invocation fails (Lambda retries it)."""
    stack.sender.fail(None, times=100)
    with pytest.raises(Exception, match="All records failed"):
        stack.invoke(stack.record(native_event()))


def _api_accepted(body: str) -> bool:
    """Whether the ingest API (SQS) would take this body with the attributes API Gateway adds."""
    attrs = [("request_id", "String", "x" * 36), ("received_at_ms", "Number", "1" * 13), ("route", "String", "native")]
    return sqs_message_bytes(body, attrs) <= SQS_MAX_MESSAGE_BYTES


def test_event_whose_delivery_message_cannot_fit_in_sqs_is_dead_lettered_at_once(
    stack: FakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given an event the API accepted whose delivery message is over SQS's 1 MiB, and a small one
    When they are handled Then the small one is delivered; the big one is dead-lettered payload_too_large at once,
    its body cut to fit (and saying so) rather than the message and its reason lost."""
    big = native_event(event="Upload", properties={"blob": "x" * (SQS_MAX_MESSAGE_BYTES - 500)})
    small = native_event()
    big_alone = json.dumps(big, separators=(",", ":"))  # compact, as the DLQ body re-serializes the event
    assert _api_accepted(big_alone)

    response = stack.invoke(stack.record(big_alone), stack.record({"batch": [small]}))

    assert response == {"batchItemFailures": []}
    assert [d["uuid"] for d in stack.deliveries()] == [small["uuid"]]
    [dead] = stack.drain("ingest_dlq")
    attrs = dead["attributes"]
    assert attrs[ATTR_REASON] == reasons.PAYLOAD_TOO_LARGE
    assert attrs[ATTR_FIELD] == "properties.blob"
    assert "over SQS's limit" in attrs[ATTR_ERROR]
    assert attrs[ATTR_UUID] == big["uuid"] and attrs[ATTR_EVENT_NAME] == "Upload"
    assert attrs[ATTR_STAGE] == "enricher" and attrs[ATTR_REQUEST_ID] == "api-req-1"
    assert attrs[ATTR_TRUNCATED] == "true"
    assert big_alone.startswith(dead["body"]) and len(dead["body"]) < len(big_alone)
    raw_attrs = dead["raw"]["MessageAttributes"]
    assert len(raw_attrs) <= SQS_MAX_MESSAGE_ATTRIBUTES
    typed = [(k, v["DataType"], v["StringValue"]) for k, v in raw_attrs.items()]
    assert sqs_message_bytes(dead["body"], typed) <= SQS_MAX_MESSAGE_BYTES
    assert not reasons.is_replayable(attrs[ATTR_REASON])
    emf = _emf(capsys.readouterr().out)
    assert emf["EventsRejected"] == 1 and emf["EventsForwarded"] == 1


def test_delivery_message_refused_by_sqs_for_good_is_dead_lettered_not_retried(stack: FakeStack) -> None:
    """Given SQS refusing one event's delivery message for good (a sender fault) When its message is handled
    Then it is dead-lettered with SQS's code, as received, in one DLQ call after one delivery call; its sibling is
    delivered, and the record is not left to SQS's redrive."""
    doomed_event, fine = native_event(), native_event()
    stack.sender.refuse(
        lambda queue, message: queue == stack.urls["delivery"] and doomed_event["uuid"] in message.body,
        "InvalidMessageContents",
        "InvalidMessageContents: bad",
    )
    response = stack.invoke(stack.record({"batch": [doomed_event, fine]}))

    assert response == {"batchItemFailures": []}
    assert [d["uuid"] for d in stack.deliveries()] == [fine["uuid"]]
    [dead] = stack.drain("ingest_dlq")
    assert dead["attributes"][ATTR_UUID] == doomed_event["uuid"]
    assert dead["attributes"][ATTR_REASON] == reasons.INVALID_EVENT
    assert "InvalidMessageContents" in dead["attributes"][ATTR_ERROR]
    assert json.loads(dead["body"]) == doomed_event
    assert stack.sender.calls == [stack.urls["delivery"], stack.urls["ingest_dlq"]]


def _server_side_purchase() -> dict[str, Any]:
    return native_event(
        "track",
        event="Purchase",
        properties={"price": 4.99, "currency": "USD"},
        device={"platform": "ios", "id": IDFV},
    )


def test_logs_of_a_whole_run_contain_no_raw_idfa_ip_or_token(
    stack: FakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given an install with a token, an invalid event echoing its ids, a server-side purchase, a valid event and a
    broken body When they are handled
    Then no raw IDFA, IP or token is logged, and the rejected event's line has its uuid."""
    install = native_event("install", adservices={"token": TOKEN, "generated_at": NOW - 60})
    invalid = native_event(device={"platform": "ios", "id": IDFV, "advertising_id": IDFA, "ip": 12})
    stack.invoke(stack.record({"batch": [install, invalid, _server_side_purchase(), native_event()]}))
    stack.invoke(stack.record("{broken"))
    logged = stack.logs.getvalue() + capsys.readouterr().out
    assert stack.log_lines(), "the run logged nothing: the capture is broken"
    for secret in (IDFA, IDFA.lower(), IP, TOKEN, TOKEN[:24]):
        assert secret not in logged
    uuids = {line.get("correlation_id") for line in stack.log_lines()}
    assert invalid["uuid"] in uuids


def test_lists_nested_deeper_than_orjson_writes_are_delivered_or_dead_lettered_never_stuck(stack: FakeStack) -> None:
    """Given a valid and an invalid event, each with a property 300 levels deep (orjson reads that, writes 254)
    When the enricher handles them Then one is forwarded, the other dead-lettered as received; nothing failed."""
    deep = nested_list(300)
    kept = native_event(properties={"d": deep})
    invalid = {**native_event(properties={"d": deep}), "type": "nope"}
    response = stack.invoke(stack.record({"batch": [kept, invalid]}))
    assert response == {"batchItemFailures": []}
    [delivered] = stack.deliveries()
    assert delivered["uuid"] == kept["uuid"]
    assert delivered["payload"]["data"]["event_data"]["d"] == json.dumps(deep, separators=(",", ":"))
    [dead] = stack.drain("ingest_dlq")
    assert dead["attributes"][ATTR_REASON] == reasons.INVALID_EVENT
    assert json.loads(dead["body"]) == invalid


def test_lone_surrogates_reject_only_their_events_and_the_siblings_go_through(stack: FakeStack) -> None:
    """Given one batch (issue 14, item 5): a lone surrogate escape in a property key, one in a property value, an
    event the mapping rejects (only an all-zero IDFA) and a valid event
    When the enricher handles it
    Then the record succeeds at once: the valid event is forwarded, each other event is dead-lettered on its own
    with its reason and a field name that can be read (the escape as received)."""
    key = native_event(properties={"k\ud800": 1})
    value = native_event(properties={"k": "v\udc00"})
    no_id = native_event(device={"platform": "ios", "advertising_id": "00000000-0000-0000-0000-000000000000"})
    good = native_event()
    body = json.dumps({"batch": [key, value, no_id, good]})  # ensure_ascii: the surrogates travel as escapes
    assert "\\ud800" in body

    assert stack.invoke(stack.record(body)) == {"batchItemFailures": []}

    assert [d["uuid"] for d in stack.deliveries()] == [good["uuid"]]
    dead = {d["attributes"][ATTR_UUID]: d for d in stack.drain("ingest_dlq")}
    assert {uuid: d["attributes"][ATTR_REASON] for uuid, d in dead.items()} == {
        key["uuid"]: reasons.INVALID_EVENT,
        value["uuid"]: reasons.INVALID_EVENT,
        no_id["uuid"]: reasons.NO_DEVICE_IDENTIFIER,
    }
    assert dead[key["uuid"]]["attributes"][ATTR_FIELD] == "properties.k\\ud800"
    assert dead[value["uuid"]]["attributes"][ATTR_FIELD] == "properties.k"
    assert json.loads(dead[no_id["uuid"]]["body"]) == no_id
    assert stack.drain("ingest") == []
