"""The enricher Lambda end to end on moto: partial batches, DLQ reasons, filtering, SendMessageBatch retries,
device-profile enrichment, and logs free of raw identifiers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.enricher import handler
from functions.names import (
    ATTR_ERROR,
    ATTR_EVENT_NAME,
    ATTR_FAILED_AT_MS,
    ATTR_FIELD,
    ATTR_KIND,
    ATTR_REASON,
    ATTR_RECEIVED_AT_MS,
    ATTR_REQUEST_ID,
    ATTR_ROUTE,
    ATTR_STAGE,
    ATTR_TRUNCATED,
    ATTR_UUID,
    SQS_MAX_MESSAGE_ATTRIBUTES,
    SQS_MAX_MESSAGE_BYTES,
    sqs_message_bytes,
)
from functions.pipeline import reasons
from tests.integration.enricher.support import Stack
from tests.samples.enricher import IDFA, IDFV, IOS_APP, IP, NOW, TOKEN, UA, native_event
from tests.shapes import nested_list


def test_100_events_with_3_invalid_forwards_97_and_dead_letters_3_with_reason_and_field(stack: Stack) -> None:
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


def test_delivery_message_carries_the_envelope_and_its_attributes(stack: Stack) -> None:
    event = native_event("track", event="Purchase", properties={"price": 9.99, "currency": "EUR"})
    stack.invoke(stack.record(event))
    [delivery] = stack.deliveries()
    assert delivery["v"] == 1
    assert delivery["kind"] == "event"
    assert delivery["payload"]["kochava_app_id"] == IOS_APP
    assert delivery["payload"]["data"]["event_name"] == "Purchase"
    attrs = delivery["_attributes"]
    assert attrs[ATTR_UUID] == event["uuid"]
    assert attrs[ATTR_KIND] == "event"
    assert attrs[ATTR_EVENT_NAME] == "Purchase"
    assert attrs[ATTR_REQUEST_ID] == "api-req-1"
    assert int(attrs[ATTR_RECEIVED_AT_MS]) == int(NOW * 1000)


def test_unparseable_body_goes_whole_to_the_dlq(stack: Stack) -> None:
    response = stack.invoke(stack.record("{not json"))
    assert response == {"batchItemFailures": []}
    [dead] = stack.drain("ingest_dlq")
    assert dead["body"] == "{not json"
    assert dead["attributes"][ATTR_REASON] == reasons.INVALID_JSON
    assert stack.deliveries() == []


def test_mapping_rejections_are_dead_lettered_with_their_reason(stack: Stack) -> None:
    android = native_event(device={"platform": "android", "id": "a-1"})
    no_id = native_event(device={"platform": "ios", "advertising_id": "00000000-0000-0000-0000-000000000000"})
    stack.invoke(stack.record({"batch": [android, no_id]}))
    dead = {d["attributes"][ATTR_UUID]: d for d in stack.drain("ingest_dlq")}
    # ANDROID app id is configured: the android event is fine; the all-zero IDFA leaves no identifier.
    assert set(dead) == {no_id["uuid"]}
    assert dead[no_id["uuid"]]["attributes"][ATTR_REASON] == reasons.NO_DEVICE_IDENTIFIER
    assert json.loads(dead[no_id["uuid"]]["body"]) == no_id
    assert [d["uuid"] for d in stack.deliveries()] == [android["uuid"]]


def test_missing_app_id_is_dead_lettered_with_the_original_event(make_stack: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("KOCHAVA_APP_ID_ANDROID")
    stack = make_stack()
    event = native_event(device={"platform": "android", "id": "a-1"})
    stack.invoke(stack.record(event))
    [dead] = stack.drain("ingest_dlq")
    assert dead["attributes"][ATTR_REASON] == reasons.MISSING_APP_ID
    assert json.loads(dead["body"]) == event
    assert stack.deliveries() == []


def test_filtered_heartbeat_is_counted_and_not_forwarded(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    heartbeat = native_event(event="heartbeat")
    kept = native_event()
    stack.invoke(stack.record({"batch": [heartbeat, kept]}))
    assert [d["uuid"] for d in stack.deliveries()] == [kept["uuid"]]
    assert stack.drain("ingest_dlq") == []
    emf = _emf(capsys.readouterr().out)
    assert emf["EventsFiltered"] == 1
    assert emf["EventsForwarded"] == 1
    assert emf["EventsReceived"] == 2
    # The message's log line names both (tools.trace finds a filtered or forwarded event by it).
    [processed] = [line for line in stack.log_lines() if line.get("message") == "message processed"]
    assert processed["filtered"] == {"heartbeat": [heartbeat["uuid"]]}
    assert processed["forwarded"] == {"event": [kept["uuid"]]}


def test_rejections_are_counted_per_reason(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    bad = native_event()
    bad.pop("uuid")
    stack.invoke(stack.record({"batch": [bad, native_event()]}))
    out = capsys.readouterr().out
    assert _emf(out)["EventsRejected"] == 1
    [per_reason] = [doc for doc in _emf_docs(out) if "reason" in doc]
    assert per_reason["reason"] == reasons.INVALID_EVENT
    assert per_reason["EventsRejected"] in (1, [1])


class FlakySqs:
    """Wraps the real boto3 client: the first ``failures`` SendMessageBatch calls report their last entry Failed
    (the other entries really are sent), as SQS does under partial failure."""

    def __init__(self, real: Any, failures: int, *, raise_instead: bool = False) -> None:
        self.real = real
        self.failures = failures
        self.raise_instead = raise_instead
        self.calls: list[list[str]] = []

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append([e["Id"] for e in Entries])
        if self.failures <= 0:
            return dict(self.real.send_message_batch(QueueUrl=QueueUrl, Entries=Entries))
        self.failures -= 1
        if self.raise_instead:
            raise ConnectionError("injected")
        *ok, failed = Entries
        response = dict(self.real.send_message_batch(QueueUrl=QueueUrl, Entries=ok)) if ok else {"Successful": []}
        response["Failed"] = [
            {"Id": failed["Id"], "SenderFault": False, "Code": "InternalError", "Message": "injected"}
        ]
        return response


def _wrap_sqs(stack: Stack, flaky: FlakySqs) -> None:
    enricher = handler.get_runtime().core
    enricher.sender._client = flaky
    enricher.sender._sleep = lambda _s: None


def test_send_message_batch_partial_failure_is_retried_and_nothing_is_dropped(stack: Stack) -> None:
    flaky = FlakySqs(stack.sqs, failures=3)
    _wrap_sqs(stack, flaky)
    events = [native_event() for _ in range(25)]
    response = stack.invoke(stack.record({"batch": events}))
    assert response == {"batchItemFailures": []}
    assert sorted(d["uuid"] for d in stack.deliveries()) == sorted(e["uuid"] for e in events)
    assert len(flaky.calls) > 3  # 3 chunks + the retries of the failed entries
    for ids in flaky.calls:
        assert len(ids) <= 10 and len(set(ids)) == len(ids)


def test_record_reported_failed_only_when_a_hand_off_fails_for_good(stack: Stack) -> None:
    doomed_event = native_event()
    flaky = FlakySqs(stack.sqs, failures=0)
    _wrap_sqs(stack, flaky)
    real_send = flaky.send_message_batch

    def refuse_doomed(*, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        doomed = [e for e in Entries if doomed_event["uuid"] in e["MessageBody"]]
        rest = [e for e in Entries if e not in doomed]
        response = real_send(QueueUrl=QueueUrl, Entries=rest) if rest else {"Successful": []}
        failed = [{"Id": e["Id"], "SenderFault": False, "Code": "InternalError"} for e in doomed]
        return {**response, "Failed": failed}

    flaky.send_message_batch = refuse_doomed  # type: ignore[method-assign]
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


def test_a_record_that_fails_alone_fails_the_invocation(stack: Stack) -> None:
    flaky = FlakySqs(stack.sqs, failures=100, raise_instead=True)
    _wrap_sqs(stack, flaky)
    with pytest.raises(Exception, match="All records failed"):
        stack.invoke(stack.record(native_event()))  # Lambda retries the whole batch: nothing lost


def _api_accepted(body: str) -> bool:
    """Whether the ingest API (SQS) would take this body with the attributes API Gateway adds."""
    attrs = [("request_id", "String", "x" * 36), ("received_at_ms", "Number", "1" * 13), ("route", "String", "native")]
    return sqs_message_bytes(body, attrs) <= SQS_MAX_MESSAGE_BYTES


def test_event_whose_delivery_message_cannot_fit_in_sqs_is_dead_lettered_at_once(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # A ~1 MiB property: the API accepted the body, but the Kochava payload built from it (plus the envelope and
    # its attributes) is over SQS's 1 MiB: retrying could never succeed, so it must not wait for SQS's redrive.
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
    # The raw event itself is ~1 MiB: with the DLQ attributes it does not fit either, so the body is cut and
    # says so, rather than the message (and its reason) being lost.
    assert attrs[ATTR_TRUNCATED] == "true"
    assert big_alone.startswith(dead["body"]) and len(dead["body"]) < len(big_alone)
    raw_attrs = dead["raw"]["MessageAttributes"]
    assert len(raw_attrs) <= SQS_MAX_MESSAGE_ATTRIBUTES
    typed = [(k, v["DataType"], v["StringValue"]) for k, v in raw_attrs.items()]
    assert sqs_message_bytes(dead["body"], typed) <= SQS_MAX_MESSAGE_BYTES
    assert not reasons.is_replayable(attrs[ATTR_REASON])
    emf = _emf(capsys.readouterr().out)
    assert emf["EventsRejected"] == 1 and emf["EventsForwarded"] == 1


def test_delivery_message_refused_by_sqs_for_good_is_dead_lettered_not_retried(stack: Stack) -> None:
    doomed_event, fine = native_event(), native_event()
    flaky = FlakySqs(stack.sqs, failures=0)
    _wrap_sqs(stack, flaky)
    real_send = flaky.send_message_batch

    def refuse_doomed(*, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        doomed = [e for e in Entries if QueueUrl == stack.urls["delivery"] and doomed_event["uuid"] in e["MessageBody"]]
        rest = [e for e in Entries if e not in doomed]
        response = real_send(QueueUrl=QueueUrl, Entries=rest) if rest else {"Successful": []}
        failed = [
            {"Id": e["Id"], "SenderFault": True, "Code": "InvalidMessageContents", "Message": "bad"} for e in doomed
        ]
        return {**response, "Failed": failed}

    flaky.send_message_batch = refuse_doomed  # type: ignore[method-assign]
    response = stack.invoke(stack.record({"batch": [doomed_event, fine]}))

    assert response == {"batchItemFailures": []}  # not left to SQS's redrive
    assert [d["uuid"] for d in stack.deliveries()] == [fine["uuid"]]
    [dead] = stack.drain("ingest_dlq")
    assert dead["attributes"][ATTR_UUID] == doomed_event["uuid"]
    assert dead["attributes"][ATTR_REASON] == reasons.INVALID_EVENT
    assert "InvalidMessageContents" in dead["attributes"][ATTR_ERROR]
    assert json.loads(dead["body"]) == doomed_event
    assert len(flaky.calls) == 2  # one delivery call (not retried) + one DLQ call


def _server_side_purchase() -> dict[str, Any]:
    return native_event(
        "track",
        event="Purchase",
        properties={"price": 4.99, "currency": "USD"},
        device={"platform": "ios", "id": IDFV},
    )


def test_server_side_event_with_only_platform_and_id_gets_ids_ip_and_ua_from_the_profile(stack: Stack) -> None:
    # The wiring of the profile path (DynamoDB written by one invocation, read by the next); the profile rules
    # themselves are tested on the fakes (tests/unit/enricher/test_core.py, tests/unit/profiles).
    install = native_event(
        "install",
        user_id="user-42",
        app={"version": "3.1.0"},
        device={
            "platform": "ios",
            "id": IDFV,
            "advertising_id": IDFA,
            "ip": IP,
            "user_agent": UA,
            "model": "iPhone14,2",
            "os_version": "17.1",
            "att": {"status": "authorized", "time": NOW - 3600, "duration": 4},
        },
    )
    stack.invoke(stack.record(install))
    stack.deliveries()

    stack.clock.now += 3600
    purchase = _server_side_purchase()
    stack.invoke(stack.record(purchase))
    [delivery] = stack.deliveries()
    data = delivery["payload"]["data"]
    assert data["device_ids"] == {"idfa": IDFA, "idfv": IDFV}
    assert data["origination_ip"] == IP
    assert data["device_ua"].startswith("Mozilla%2F5.0")
    assert data["device_ver"] == "iPhone14,2-iOS-17.1"
    assert data["app_version"] == "3.1.0"
    assert data["event_data"]["user_id"] == "user-42"


def test_logs_of_a_whole_run_contain_no_raw_idfa_ip_or_token(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    install = native_event("install", adservices={"token": TOKEN, "generated_at": NOW - 60})
    invalid = native_event(device={"platform": "ios", "id": IDFV, "advertising_id": IDFA, "ip": 12})
    stack.invoke(stack.record({"batch": [install, invalid, _server_side_purchase(), native_event()]}))
    stack.invoke(stack.record("{broken"))
    logged = stack.logs.getvalue() + capsys.readouterr().out
    assert stack.log_lines(), "the run logged nothing: the capture is broken"
    for secret in (IDFA, IDFA.lower(), IP, TOKEN, TOKEN[:24]):
        assert secret not in logged
    uuids = {line.get("correlation_id") for line in stack.log_lines()}
    assert invalid["uuid"] in uuids  # the rejected event's log line is correlated by its uuid


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


def test_lists_nested_deeper_than_orjson_writes_are_delivered_or_dead_lettered_never_stuck(stack: Stack) -> None:
    # Given a valid and an invalid event, each with a property 300 levels deep: orjson reads that, but writes at
    # most 254 levels, and a raise while writing failed the whole message on every retry
    deep = nested_list(300)
    kept = native_event(properties={"d": deep})
    invalid = {**native_event(properties={"d": deep}), "type": "nope"}
    # When the enricher handles them
    response = stack.invoke(stack.record({"batch": [kept, invalid]}))
    # Then nothing is reported failed: one is forwarded, the other dead-lettered with its reason, as received
    assert response == {"batchItemFailures": []}
    [delivered] = stack.deliveries()
    assert delivered["uuid"] == kept["uuid"]
    assert delivered["payload"]["data"]["event_data"]["d"] == json.dumps(deep, separators=(",", ":"))
    [dead] = stack.drain("ingest_dlq")
    assert dead["attributes"][ATTR_REASON] == reasons.INVALID_EVENT
    assert json.loads(dead["body"]) == invalid


def test_lone_surrogates_reject_only_their_events_and_the_siblings_go_through(stack: Stack) -> None:
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
