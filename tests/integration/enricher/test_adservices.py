"""AdServices tokens in the enricher (issue 5): a real local HTTP server stands in for Apple
(tools/local/apple_stub.py), moto for SQS / DynamoDB, and the handler's clock is controlled by the test.

A re-queued install is fed back to the handler from what the enricher really sent to the ingest queue
(recorded on the way to moto), so the 5 s ``DelaySeconds`` does not make the tests wait."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from functions.enricher import handler
from functions.names import (
    ATTR_ADSERVICES_ATTEMPT,
    ATTR_RECEIVED_AT_MS,
    ATTR_REQUEST_ID,
    ATTR_ROUTE,
    ENV_ADSERVICES_RESOLVE,
    ENV_ADSERVICES_URL,
)
from functions.pipeline.adservices import ATTRIBUTION_KEY, TOKEN_KEY, TOKEN_VALIDITY_S
from tests.integration.enricher.support import Stack
from tests.samples.enricher import NOW, TOKEN, native_event
from tools.local.apple_stub import DEVELOPER_MODE_PAYLOAD, AppleStub, attribution_payload
from tools.local.stub_http import Reply


class RecordingSqs:
    """Passes every SendMessageBatch to the real (moto) client and keeps the entries sent to each queue."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.sent: dict[str, list[dict[str, Any]]] = {}

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.sent.setdefault(QueueUrl, []).extend(Entries)
        return dict(self.real.send_message_batch(QueueUrl=QueueUrl, Entries=Entries))


class AdStack:
    def __init__(self, stack: Stack, apple: AppleStub, recorder: RecordingSqs) -> None:
        self.stack, self.apple, self.recorder = stack, apple, recorder

    def requeued(self) -> list[dict[str, Any]]:
        """Entries the enricher sent back to the ingest queue since the last call (then forgotten)."""
        return self.recorder.sent.pop(self.stack.urls["ingest"], [])

    def as_record(self, entry: dict[str, Any]) -> dict[str, Any]:
        """An ingest-queue entry the enricher sent, as Lambda would deliver it once its delay has passed."""
        attrs = {name: value["StringValue"] for name, value in entry["MessageAttributes"].items()}
        record = self.stack.record(entry["MessageBody"], route=attrs[ATTR_ROUTE])
        record["messageAttributes"] = {
            name: {"stringValue": value["StringValue"], "dataType": value["DataType"]}
            for name, value in entry["MessageAttributes"].items()
        }
        return record

    def install(self, token: str = TOKEN, *, age_s: float = 60.0, **fields: Any) -> dict[str, Any]:
        return native_event(
            "install", adservices={"token": token, "generated_at": self.stack.clock.now - age_s, **fields}
        )


@pytest.fixture
def apple() -> Iterator[AppleStub]:
    with AppleStub() as stub:
        yield stub


@pytest.fixture
def ads(make_stack: Callable[..., Stack], apple: AppleStub) -> AdStack:
    stack = make_stack(**{ENV_ADSERVICES_RESOLVE: "true", ENV_ADSERVICES_URL: apple.api_url})
    recorder = RecordingSqs(stack.sqs)
    handler.get_runtime().core.sender._client = recorder
    return AdStack(stack, apple, recorder)


def _data(delivery: dict[str, Any]) -> dict[str, Any]:
    return dict(delivery["payload"]["data"])


def _metrics(out: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for line in out.splitlines():
        if '"_aws"' not in line or '"reason"' in line:
            continue
        doc = json.loads(line)
        for name in (m["Name"] for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]):
            value = doc[name]
            totals[name] = totals.get(name, 0) + (sum(value) if isinstance(value, list) else value)
    return totals


def test_fresh_token_resolved_attaches_the_details(ads: AdStack, capsys: pytest.CaptureFixture[str]) -> None:
    ads.apple.script(TOKEN, [attribution_payload(campaign_id=42)])
    install = ads.install()
    ads.stack.invoke(ads.stack.record(install))
    [delivery] = ads.stack.deliveries()
    data = _data(delivery)
    assert data[TOKEN_KEY] == TOKEN
    assert data[ATTRIBUTION_KEY]["campaignId"] == 42
    assert delivery["adservices_generated_at"] == pytest.approx(NOW - 60)
    [request] = ads.apple.requests
    assert request.text == TOKEN and request.headers["content-type"].startswith("text/plain")
    assert _metrics(capsys.readouterr().out)["AdServicesResolved"] == 1


def test_404_404_200_attached_after_requeues_and_the_rest_of_the_batch_is_not_delayed(ads: AdStack) -> None:
    ads.apple.script(TOKEN, [404, 404, attribution_payload(campaign_id=7)])
    install = ads.install()
    others = [native_event(), native_event("install"), native_event(event="Purchase")]
    ads.stack.invoke(ads.stack.record({"batch": [others[0], install, *others[1:]]}))

    assert sorted(d["uuid"] for d in ads.stack.deliveries()) == sorted(e["uuid"] for e in others)
    for attempt in (1, 2):
        [entry] = ads.requeued()
        assert entry["DelaySeconds"] == 5
        attrs = {k: v["StringValue"] for k, v in entry["MessageAttributes"].items()}
        assert attrs[ATTR_ADSERVICES_ATTEMPT] == str(attempt)
        assert attrs[ATTR_REQUEST_ID] == "api-req-1" and attrs[ATTR_ROUTE] == "native"
        assert ATTR_RECEIVED_AT_MS in attrs
        assert json.loads(entry["MessageBody"]) == install  # the raw event, alone
        assert ads.stack.deliveries() == []
        ads.stack.clock.now += 5
        ads.stack.invoke(ads.as_record(entry))

    [delivery] = ads.stack.deliveries()
    assert delivery["uuid"] == install["uuid"]
    assert _data(delivery)[ATTRIBUTION_KEY]["campaignId"] == 7
    assert _data(delivery)[TOKEN_KEY] == TOKEN
    assert ads.requeued() == []
    assert ads.apple.calls_for(TOKEN) == 3
    # The delayed message really is on the ingest queue too (moto keeps it invisible for its delay).
    assert ads.stack.sqs.get_queue_attributes(
        QueueUrl=ads.stack.urls["ingest"], AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]["ApproximateNumberOfMessagesDelayed"] in ("1", "2")


def test_404_three_times_forwards_the_token_alone_and_counts_it(
    ads: AdStack, capsys: pytest.CaptureFixture[str]
) -> None:
    ads.apple.script(TOKEN, [404])
    ads.stack.invoke(ads.stack.record(ads.install()))
    for _ in range(2):
        [entry] = ads.requeued()
        ads.stack.clock.now += 5
        ads.stack.invoke(ads.as_record(entry))
    assert ads.requeued() == []
    [delivery] = ads.stack.deliveries()
    assert _data(delivery)[TOKEN_KEY] == TOKEN
    assert ATTRIBUTION_KEY not in _data(delivery)
    assert ads.apple.calls_for(TOKEN) == 3
    metrics = _metrics(capsys.readouterr().out)
    assert metrics["AdServicesNotReady"] == 1
    assert metrics["AdServicesRequeued"] == 2
    assert metrics["EventsReceived"] == 1  # the re-queued install is not counted twice


def test_400_delivers_the_event_without_the_token(ads: AdStack, capsys: pytest.CaptureFixture[str]) -> None:
    ads.apple.script(TOKEN, [400])
    install = ads.install()
    ads.stack.invoke(ads.stack.record(install))
    [delivery] = ads.stack.deliveries()
    assert delivery["uuid"] == install["uuid"]
    assert TOKEN_KEY not in _data(delivery)
    assert ATTRIBUTION_KEY not in _data(delivery)
    assert delivery["adservices_generated_at"] is None
    assert ads.requeued() == []
    assert _metrics(capsys.readouterr().out)["AdServicesTokenInvalid"] == 1


def test_500_then_200_requeues_then_attaches(ads: AdStack) -> None:
    ads.apple.script(TOKEN, [500, attribution_payload(campaign_id=9)])
    ads.stack.invoke(ads.stack.record(ads.install()))
    assert ads.stack.deliveries() == []
    [entry] = ads.requeued()
    assert entry["DelaySeconds"] == 5
    ads.stack.clock.now += 5
    ads.stack.invoke(ads.as_record(entry))
    [delivery] = ads.stack.deliveries()
    assert _data(delivery)[ATTRIBUTION_KEY]["campaignId"] == 9


def test_repeated_5xx_backs_off_and_stops_when_the_window_would_close(
    ads: AdStack, capsys: pytest.CaptureFixture[str]
) -> None:
    ads.apple.script(TOKEN, [503])
    ads.stack.invoke(ads.stack.record(ads.install(age_s=TOKEN_VALIDITY_S - 300)))
    delays = []
    for wait in (5, 10, 200):
        [entry] = ads.requeued()
        delays.append(entry["DelaySeconds"])
        ads.stack.clock.now += wait
        ads.stack.invoke(ads.as_record(entry))
    assert delays == [5, 10, 20]
    # Fourth call at age 24 h - 85 s: the next delay (40 s) plus the 60 s margin would pass the end of the window.
    assert ads.requeued() == []
    [delivery] = ads.stack.deliveries()
    assert _data(delivery)[TOKEN_KEY] == TOKEN
    assert ads.apple.calls_for(TOKEN) == 4
    assert _metrics(capsys.readouterr().out)["AdServicesUnavailable"] == 1


def test_404_when_the_window_is_about_to_close_forwards_the_token_at_once(ads: AdStack) -> None:
    ads.apple.script(TOKEN, [404])
    ads.stack.invoke(ads.stack.record(ads.install(age_s=TOKEN_VALIDITY_S - 30)))
    assert ads.requeued() == []
    [delivery] = ads.stack.deliveries()
    assert _data(delivery)[TOKEN_KEY] == TOKEN


def test_age_23h59m59s_token_sent(ads: AdStack) -> None:
    ads.apple.script(TOKEN, [attribution_payload()])
    ads.stack.invoke(ads.stack.record(ads.install(age_s=TOKEN_VALIDITY_S - 1)))
    [delivery] = ads.stack.deliveries()
    assert _data(delivery)[TOKEN_KEY] == TOKEN
    assert ATTRIBUTION_KEY in _data(delivery)


def test_age_exactly_24h_token_not_sent_and_apple_not_asked(ads: AdStack, capsys: pytest.CaptureFixture[str]) -> None:
    ads.apple.script(TOKEN, [attribution_payload()])
    ads.stack.invoke(ads.stack.record(ads.install(age_s=TOKEN_VALIDITY_S)))
    [delivery] = ads.stack.deliveries()
    assert TOKEN_KEY not in _data(delivery)
    assert ATTRIBUTION_KEY not in _data(delivery)
    assert ads.apple.calls_for(TOKEN) == 0
    assert _metrics(capsys.readouterr().out)["AdServicesTokenExpired"] == 1


def test_generated_at_missing_the_event_timestamp_sets_the_age(ads: AdStack) -> None:
    install = native_event("install", timestamp=NOW - TOKEN_VALIDITY_S - 5, adservices={"token": TOKEN})
    ads.stack.invoke(ads.stack.record(install))
    [delivery] = ads.stack.deliveries()
    assert TOKEN_KEY not in _data(delivery)


def test_expired_token_with_client_attribution_sends_the_attribution(ads: AdStack) -> None:
    client = attribution_payload(campaign_id=1234)
    ads.stack.invoke(ads.stack.record(ads.install(age_s=TOKEN_VALIDITY_S + 3600, attribution=client)))
    [delivery] = ads.stack.deliveries()
    assert TOKEN_KEY not in _data(delivery)
    assert _data(delivery)[ATTRIBUTION_KEY] == client
    assert ads.apple.calls_for(TOKEN) == 0


def test_fresh_token_with_client_attribution_is_not_resolved_again(ads: AdStack) -> None:
    client = attribution_payload(campaign_id=55)
    ads.stack.invoke(ads.stack.record(ads.install(attribution=client)))
    [delivery] = ads.stack.deliveries()
    assert _data(delivery)[TOKEN_KEY] == TOKEN
    assert _data(delivery)[ATTRIBUTION_KEY] == client
    assert ads.apple.calls_for(TOKEN) == 0


def test_developer_mode_payload_from_apple_is_not_forwarded(ads: AdStack, capsys: pytest.CaptureFixture[str]) -> None:
    ads.apple.script(TOKEN, [DEVELOPER_MODE_PAYLOAD])
    ads.stack.invoke(ads.stack.record(ads.install()))
    [delivery] = ads.stack.deliveries()
    assert ATTRIBUTION_KEY not in _data(delivery)
    assert _data(delivery)[TOKEN_KEY] == TOKEN
    assert _metrics(capsys.readouterr().out)["AdServicesDeveloperMode"] == 1


def test_developer_mode_payload_from_the_client_is_not_forwarded(ads: AdStack) -> None:
    ads.stack.invoke(
        ads.stack.record(ads.install(age_s=TOKEN_VALIDITY_S + 1, attribution=dict(DEVELOPER_MODE_PAYLOAD)))
    )
    [delivery] = ads.stack.deliveries()
    assert ATTRIBUTION_KEY not in _data(delivery)


def test_installs_of_a_batch_are_resolved_concurrently(ads: AdStack) -> None:
    tokens = [f"{TOKEN[:40]}-{i}" for i in range(6)]
    for i, token in enumerate(tokens):
        slow = Reply(status=200, body=json.dumps(attribution_payload(campaign_id=i)).encode(), delay_s=0.5)
        ads.apple.script(token, [slow])
    installs = [ads.install(token) for token in tokens]
    started = time.monotonic()
    ads.stack.invoke(ads.stack.record({"batch": installs}))
    elapsed = time.monotonic() - started
    by_uuid = {d["uuid"]: d for d in ads.stack.deliveries()}
    for i, install in enumerate(installs):
        assert _data(by_uuid[install["uuid"]])[ATTRIBUTION_KEY]["campaignId"] == i
    assert elapsed < 6 * 0.5  # sequential calls would take at least 3 s


def test_little_lambda_time_left_defers_without_asking_apple(ads: AdStack, capsys: pytest.CaptureFixture[str]) -> None:
    ads.apple.script(TOKEN, [attribution_payload()])
    ads.stack.invoke(ads.stack.record(ads.install()), remaining_ms=3_000)
    assert ads.apple.calls_for(TOKEN) == 0
    [entry] = ads.requeued()
    assert entry["DelaySeconds"] == 5
    assert entry["MessageAttributes"][ATTR_ADSERVICES_ATTEMPT]["StringValue"] == "0"
    assert ads.stack.deliveries() == []
    ads.stack.invoke(ads.as_record(entry))
    [delivery] = ads.stack.deliveries()
    assert ATTRIBUTION_KEY in _data(delivery)
    metrics = _metrics(capsys.readouterr().out)
    assert metrics["EventsReceived"] == 1
    assert metrics["AdServicesDeferred"] == 1


def test_resolution_switched_off_sends_the_token_alone(make_stack: Callable[..., Stack], apple: AppleStub) -> None:
    stack = make_stack(**{ENV_ADSERVICES_RESOLVE: "false", ENV_ADSERVICES_URL: apple.api_url})
    stack.invoke(stack.record(native_event("install", adservices={"token": TOKEN, "generated_at": NOW - 60})))
    [delivery] = stack.deliveries()
    assert _data(delivery)[TOKEN_KEY] == TOKEN
    assert apple.requests == []


def test_logs_never_carry_the_token(ads: AdStack, capsys: pytest.CaptureFixture[str]) -> None:
    ads.apple.script(TOKEN, [404, 400])
    ads.stack.invoke(ads.stack.record(ads.install()))
    [entry] = ads.requeued()
    ads.stack.invoke(ads.as_record(entry))
    logged = ads.stack.logs.getvalue() + capsys.readouterr().out
    assert TOKEN[:20] not in logged
    decisions = [line for line in ads.stack.log_lines() if line.get("message") == "adservices"]
    assert [d["apple"] for d in decisions] == ["not_ready", "invalid"]
    assert all(d["token"].startswith("sha256:") for d in decisions)
