"""The enricher's core on in-memory ports (tests/fakes.py): what one ingest message becomes, without moto or HTTP.

The Lambda's entry point on the same fakes is ``test_lambda_*.py``, its end-to-end paths on moto and real HTTP
``tests/integration/enricher``; here each one is a direct call of :meth:`Enricher.process` (or one of its
steps), so a failure points at the core.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from functions.enricher import metrics as m
from functions.enricher.adservices_flow import AdServicesFlow
from functions.enricher.core import Enricher, MessageInfo, Queues, Result, parse
from functions.messages import OutgoingMessage, SendError
from functions.names import (
    ATTR_ADSERVICES_ATTEMPT,
    ATTR_ERROR,
    ATTR_EVENT_NAME,
    ATTR_FIELD,
    ATTR_KIND,
    ATTR_REASON,
    ATTR_RECEIVED_AT_MS,
    ATTR_REQUEST_ID,
    ATTR_ROUTE,
    ATTR_STAGE,
    ATTR_UUID,
    SQS_MAX_MESSAGE_BYTES,
)
from functions.pipeline import reasons
from functions.pipeline.adservices import ATTRIBUTION_KEY, TOKEN_KEY
from functions.pipeline.profiles import profile_key
from functions.pipeline.settings import Settings
from tests.fakes import APPLE_NOT_READY, FakeAdServices, FakeLog, FakeProfileStore, FakeSender, apple_resolved
from tests.samples.enricher import ANDROID_APP, IDFA, IDFV, IOS_APP, IP, NOW, TOKEN, UA, native_event
from tools.local.apple_stub import attribution_payload

QUEUES = Queues(ingest="q-ingest", ingest_dlq="q-ingest-dlq", delivery="q-delivery")
SETTINGS = Settings(kochava_app_id_ios=IOS_APP, kochava_app_id_android=ANDROID_APP, adservices_resolve=False)
RECEIVED_AT_MS = int(NOW * 1000) - 250
INFO = MessageInfo(request_id="api-req-1", received_at_ms=RECEIVED_AT_MS, route="native")
WEEK_S = 7 * 24 * 3600


@dataclass
class Core:
    """An enricher wired to fakes, and the fakes to look at afterwards."""

    enricher: Enricher
    sender: FakeSender
    store: FakeProfileStore
    log: FakeLog
    apple: FakeAdServices

    def process(self, *events: dict[str, Any], info: MessageInfo = INFO) -> Result:
        body = events[0] if len(events) == 1 else {"batch": list(events)}
        return self.enricher.process(json.dumps(body), info, NOW)

    def deliveries(self) -> list[dict[str, Any]]:
        """The delivery-queue envelopes, parsed, with their attributes under ``_attributes``."""
        messages = self.sender.messages("q-delivery")
        return [{**json.loads(msg.body), "_attributes": dict(msg.attributes)} for msg in messages]

    def dead_letters(self) -> list[OutgoingMessage]:
        return self.sender.messages("q-ingest-dlq")


def make_core(settings: Settings = SETTINGS, *, profile_ttl_s: int = WEEK_S) -> Core:
    sender, store, log, apple = FakeSender(), FakeProfileStore(), FakeLog(), FakeAdServices()
    enricher = Enricher(
        settings=settings,
        sender=sender,
        queues=QUEUES,
        profile_store=store,
        adservices=(lambda: AdServicesFlow(settings, apple)) if settings.adservices_resolve else None,
        log=log,
        profile_ttl_s=profile_ttl_s,
    )
    return Core(enricher, sender, store, log, apple)


@pytest.fixture
def core() -> Core:
    return make_core()


def server_side_purchase() -> dict[str, Any]:
    """A backend's event: only the platform and the device id, nothing to match or attribute it with."""
    return native_event("track", event="Purchase", properties={"price": 4.99}, device={"platform": "ios", "id": IDFV})


def test_a_valid_batch_is_delivered_in_order_with_its_attributes(core: Core) -> None:
    """Given a message of three valid events (an install and two tracks)
    When the enricher processes it
    Then each becomes one delivery-queue envelope, in the message's order, carrying the uuid, kind, event name,
    API request id and receive time as attributes, and nothing is dead-lettered."""
    events = [native_event("install"), native_event(event="Level Up"), native_event(event="Purchase")]

    result = core.process(*events)

    deliveries = core.deliveries()
    assert [d["uuid"] for d in deliveries] == [e["uuid"] for e in events]
    assert [d["kind"] for d in deliveries] == ["install", "event", "event"]
    first = deliveries[0]["_attributes"]
    assert first == {
        ATTR_UUID: events[0]["uuid"],
        ATTR_KIND: "install",
        ATTR_EVENT_NAME: "install",
        ATTR_REQUEST_ID: "api-req-1",
        ATTR_RECEIVED_AT_MS: RECEIVED_AT_MS,
    }
    assert deliveries[2]["payload"]["data"]["device_ids"] == {"idfa": IDFA, "idfv": IDFV}
    assert core.dead_letters() == []
    assert result.tally[m.EVENTS_RECEIVED] == 3
    assert result.tally[m.EVENTS_FORWARDED] == 3
    assert result.tally[m.EVENTS_REJECTED] == 0


def test_an_invalid_event_is_dead_lettered_with_reason_and_field_while_its_siblings_are_delivered(core: Core) -> None:
    """Given a batch whose middle event has an unknown platform
    When the enricher processes it
    Then the two valid events are delivered, and the invalid one goes to the ingest DLQ exactly as received,
    with stage, reason, the field at fault, a readable error, its uuid and the API request's attributes."""
    good = [native_event(), native_event()]
    bad = native_event(device={"platform": "windows", "id": IDFV})

    result = core.process(good[0], bad, good[1])

    assert [d["uuid"] for d in core.deliveries()] == [good[0]["uuid"], good[1]["uuid"]]
    [dead] = core.dead_letters()
    assert json.loads(dead.body) == bad
    attributes = dead.attributes
    assert attributes[ATTR_STAGE] == "enricher"
    assert attributes[ATTR_REASON] == reasons.INVALID_EVENT
    assert attributes[ATTR_FIELD] == "device.platform"
    assert "device.platform" in str(attributes[ATTR_ERROR])
    assert attributes[ATTR_UUID] == bad["uuid"]
    assert (attributes[ATTR_ROUTE], attributes[ATTR_REQUEST_ID]) == ("native", "api-req-1")
    assert result.rejected_by_reason == {reasons.INVALID_EVENT: 1}
    [warning] = core.log.named("event dead-lettered")
    assert warning.correlation_id == bad["uuid"]
    assert warning.extra["reason"] == reasons.INVALID_EVENT


def test_a_filtered_heartbeat_is_counted_and_not_sent_anywhere(core: Core) -> None:
    """Given a heartbeat event (a filtered name by default)
    When the enricher processes it
    Then nothing is sent to any queue, and it is counted as filtered, not rejected."""
    result = core.process(native_event(event="Heartbeat"))

    assert all(not msgs for msgs in core.sender.sent.values())
    assert result.tally[m.EVENTS_FILTERED] == 1
    assert result.tally[m.EVENTS_FORWARDED] == 0
    assert result.rejected_by_reason == {}


def test_a_profile_fills_a_later_events_missing_fields_and_is_written_with_the_configured_ttl(core: Core) -> None:
    """Given an install carrying the device's advertising id and IP, then a server-side purchase with only the
    platform and device id, in one message
    When the enricher processes it
    Then the purchase is delivered with the install's advertising id and IP, and the device profile is written
    once, expiring the configured TTL after now."""
    install, purchase = native_event("install"), server_side_purchase()

    result = core.process(install, purchase)

    delivered = {d["uuid"]: d["payload"]["data"] for d in core.deliveries()}
    assert delivered[purchase["uuid"]]["device_ids"] == {"idfa": IDFA, "idfv": IDFV}
    assert delivered[purchase["uuid"]]["origination_ip"] == IP
    key = profile_key(IOS_APP, "ios", IDFV)
    [(written, expires_at)] = core.store.writes
    assert list(written) == [key]
    assert written[key]["advertising_id"] == IDFA
    assert expires_at == int(NOW) + WEEK_S
    assert result.tally[m.PROFILE_FILLED] == 1
    assert result.tally[m.PROFILE_UPDATED] == 1


def test_a_stored_profile_fills_an_event_of_a_later_message(core: Core) -> None:
    """Given a device profile stored by an earlier message
    When a server-side purchase for that device arrives alone
    Then it is delivered with the remembered advertising id, read with one lookup of its key."""
    core.process(native_event("install"))
    core.sender.sent.clear()

    purchase = server_side_purchase()
    core.process(purchase)

    [delivery] = core.deliveries()
    assert delivery["payload"]["data"]["device_ids"]["idfa"] == IDFA
    # one read: the key (the id normalised) and the key it had before ids were normalised
    assert sorted(core.store.reads[-1]) == sorted([profile_key(IOS_APP, "ios", IDFV), f"{IOS_APP}#ios#{IDFV}"])


def test_a_profile_stored_before_ids_were_normalised_is_used_and_written_under_the_normalised_key(
    core: Core,
) -> None:
    """Issue 22: profiles used to be keyed by the id as sent. One stored so is still found (by the spelling the
    event uses) and written back under the normalised key, where an erase by any spelling finds it."""
    legacy = f"{IOS_APP}#ios#{IDFV}"
    core.store.put_many({legacy: {"advertising_id": IDFA, "last_event_at": NOW - 60, "updated_at": NOW - 2 * 86400}}, 1)

    core.process(server_side_purchase())

    [delivery] = core.deliveries()
    assert delivery["payload"]["data"]["device_ids"]["idfa"] == IDFA
    assert profile_key(IOS_APP, "ios", IDFV) == f"{IOS_APP}#ios#{IDFV.lower()}"
    assert core.store.profiles[profile_key(IOS_APP, "ios", IDFV)]["advertising_id"] == IDFA


def test_a_failed_profile_write_is_counted_and_not_fatal(core: Core) -> None:
    """Given a profile store that refuses writes
    When a message that changes a profile is processed
    Then its events are still delivered, the record is not failed, and the failure is counted and logged."""
    core.store.fail_writes()

    result = core.process(native_event("install"))

    assert len(core.deliveries()) == 1
    assert result.tally[m.PROFILE_WRITE_FAILED] == 1
    assert result.tally[m.PROFILE_UPDATED] == 0
    [warning] = core.log.named("profile write failed")
    assert warning.extra == {"profiles": 1, "error": "ProfileStoreError"}


def test_a_failed_profile_read_enriches_without_the_profile_and_keeps_the_stored_one(core: Core) -> None:
    """Given a profile store that cannot be read (throttling, DynamoDB down)
    When a message is processed
    Then its event is still delivered, with its own fields only, the failed read is counted, and no profile is
    written back (a thinner one must never overwrite what is stored)."""
    core.store.fail_reads()

    result = core.process(server_side_purchase())

    assert len(core.deliveries()) == 1
    assert result.tally[m.PROFILE_READ_FAILED] == 1
    assert core.store.writes == []


def test_a_delivery_too_large_for_sqs_is_dead_lettered_as_payload_too_large(core: Core) -> None:
    """Given an event whose Kochava payload cannot fit in one SQS message, next to a normal one
    When the enricher processes them
    Then the normal one is delivered, and the big one is dead-lettered as payload_too_large naming its largest
    field, without any retry."""
    small, big = native_event(), native_event(properties={"blob": "x" * SQS_MAX_MESSAGE_BYTES})

    result = core.process(small, big)

    assert [d["uuid"] for d in core.deliveries()] == [small["uuid"]]
    [dead] = core.dead_letters()
    assert dead.attributes[ATTR_REASON] == reasons.PAYLOAD_TOO_LARGE
    assert dead.attributes[ATTR_FIELD] == "properties.blob"
    assert dead.attributes[ATTR_UUID] == big["uuid"]
    assert result.rejected_by_reason == {reasons.PAYLOAD_TOO_LARGE: 1}
    assert result.tally[m.EVENTS_FORWARDED] == 1


@pytest.mark.parametrize(
    ("code", "reason", "error_part"),
    [
        ("MessageTooLong", reasons.PAYLOAD_TOO_LARGE, "MessageTooLong"),
        ("InvalidMessageContents", reasons.INVALID_EVENT, "SQS refused the delivery message"),
    ],
)
def test_a_delivery_the_queue_refuses_for_good_is_dead_lettered_with_its_reason(
    core: Core, code: str, reason: str, error_part: str
) -> None:
    """Given a delivery queue that refuses one event's message for good (a sender fault)
    When the enricher hands the message's events off
    Then that event is dead-lettered with the matching reason and the queue's error, and the others are delivered
    and counted as forwarded."""
    refused, kept = native_event(event="Refused"), native_event()
    core.sender.refuse(lambda queue, msg: queue == "q-delivery" and refused["uuid"] in msg.body, code)

    result = core.process(refused, kept)

    assert [d["uuid"] for d in core.deliveries()] == [kept["uuid"]]
    [dead] = core.dead_letters()
    assert json.loads(dead.body) == refused
    assert dead.attributes[ATTR_REASON] == reason
    assert error_part in str(dead.attributes[ATTR_ERROR])
    assert result.tally[m.EVENTS_FORWARDED] == 1
    assert result.tally[m.EVENTS_REJECTED] == 1


@pytest.mark.parametrize("queue", ["q-delivery", "q-ingest-dlq"])
def test_a_transient_send_failure_raises_so_the_record_is_redelivered(core: Core, queue: str) -> None:
    """Given a queue that still fails after the sender's retries
    When the enricher hands off a message with a delivery and a dead letter
    Then process raises SendError: the record is reported failed and SQS redelivers it whole."""
    core.sender.fail(queue)

    with pytest.raises(SendError):
        core.process(native_event(), native_event(device={"platform": "windows", "id": IDFV}))


def test_a_dead_letter_the_dlq_refuses_for_good_fails_the_record(core: Core) -> None:
    """Given an ingest DLQ that refuses a message for good
    When an invalid event must be dead-lettered
    Then process raises rather than acknowledge an event that is nowhere."""
    core.sender.refuse(lambda queue, _msg: queue == "q-ingest-dlq")

    with pytest.raises(SendError, match="1 message"):
        core.process(native_event(device={"platform": "windows", "id": IDFV}))


def test_a_fresh_install_apple_cannot_answer_yet_is_requeued_with_a_delay_and_its_attempt() -> None:
    """Given AdServices resolution switched on, and Apple answering 404 (not ready) for a fresh install's token
    When the install arrives with a sibling event
    Then the sibling is delivered at once, and the install alone goes back to the ingest queue as received,
    delayed 5 s, with adservices_attempt=1 and the API request's attributes; it is not counted as forwarded."""
    core = make_core(Settings(kochava_app_id_ios=IOS_APP, adservices_resolve=True))
    core.apple.script(TOKEN, APPLE_NOT_READY)
    install = native_event("install", adservices={"token": TOKEN, "generated_at": NOW - 60})
    sibling = native_event()

    result = core.process(install, sibling)

    assert [d["uuid"] for d in core.deliveries()] == [sibling["uuid"]]
    [requeued] = core.sender.messages("q-ingest")
    assert json.loads(requeued.body) == install
    assert requeued.delay_seconds == 5
    assert requeued.attributes == {
        ATTR_ROUTE: "native",
        ATTR_REQUEST_ID: "api-req-1",
        ATTR_RECEIVED_AT_MS: RECEIVED_AT_MS,
        ATTR_ADSERVICES_ATTEMPT: 1,
    }
    assert core.apple.calls == [TOKEN]
    assert result.tally[m.ADSERVICES_REQUEUED] == 1
    assert result.tally[m.EVENTS_FORWARDED] == 1
    [line] = core.log.named("adservices")
    assert line.extra["action"] == "requeue"
    assert TOKEN not in json.dumps(line.extra)  # only a fingerprint of the token is logged


def test_a_requeued_install_apple_then_resolves_is_delivered_with_the_attribution_and_not_recounted() -> None:
    """Given an install re-queued once (adservices_attempt=1) and Apple now answering with an attribution
    When the re-queued message comes back
    Then the install is delivered with the token and Apple's attribution, and it is not counted as received
    again."""
    core = make_core(Settings(kochava_app_id_ios=IOS_APP, adservices_resolve=True))
    core.apple.script(TOKEN, apple_resolved(attribution_payload(campaign_id=42)))
    install = native_event("install", adservices={"token": TOKEN, "generated_at": NOW - 60})
    requeued = MessageInfo(request_id="api-req-1", received_at_ms=RECEIVED_AT_MS, adservices_attempt=1, requeued=True)

    result = core.process(install, info=requeued)

    [delivery] = core.deliveries()
    data = delivery["payload"]["data"]
    assert data[TOKEN_KEY] == TOKEN
    assert data[ATTRIBUTION_KEY]["campaignId"] == 42
    assert result.tally[m.EVENTS_RECEIVED] == 0
    assert result.tally[m.ADSERVICES_RESOLVED] == 1


def test_counts_add_up_per_outcome_and_rejections_per_reason() -> None:
    """Given a message with two valid events, two invalid ones, one without a configured Kochava app and a
    heartbeat
    When the enricher processes it
    Then every event is counted exactly once: received 6 = forwarded 2 + rejected 3 + filtered 1, and the
    rejections are broken down by reason."""
    core = make_core(Settings(kochava_app_id_ios=IOS_APP))  # no Android app GUID
    events = [
        native_event(),
        native_event(device={"platform": "windows", "id": IDFV}),
        native_event(event="heartbeat"),
        native_event(device={"platform": "android", "id": "android-id-1"}),
        {"uuid": "no-type"},
        native_event(),
    ]

    result = core.process(*events)

    tally = result.tally
    assert (tally[m.EVENTS_RECEIVED], tally[m.EVENTS_FORWARDED]) == (6, 2)
    assert (tally[m.EVENTS_REJECTED], tally[m.EVENTS_FILTERED]) == (3, 1)
    assert result.rejected_by_reason == {reasons.INVALID_EVENT: 2, reasons.MISSING_APP_ID: 1}
    assert len(core.dead_letters()) == 3


def test_parse_counts_received_events_except_on_a_requeue() -> None:
    """Given the same body arriving from the API and as an enricher re-queue
    When it is parsed (step 1)
    Then its events are counted as received only the first time."""
    body = json.dumps({"batch": [native_event(), native_event()]})

    assert parse(body, INFO, NOW).tally[m.EVENTS_RECEIVED] == 2
    assert parse(body, MessageInfo(adservices_attempt=1, requeued=True), NOW).tally[m.EVENTS_RECEIVED] == 0


# --- Moved from tests/integration/enricher/test_handler.py: profile behaviour of the core, on the fakes -------------


def test_a_server_side_event_gets_ids_ip_ua_device_app_version_and_user_from_the_profile(core: Core) -> None:
    """Given an install that carried everything about the device, an hour earlier
    When a backend sends a purchase with only the platform and the device id
    Then it is delivered with the install's advertising id, IP, user agent, device, app version and user id."""
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
    core.enricher.process(json.dumps(install), INFO, NOW - 3600)
    core.sender.sent.clear()

    core.process(server_side_purchase())

    [delivery] = core.deliveries()
    data = delivery["payload"]["data"]
    assert data["device_ids"] == {"idfa": IDFA, "idfv": IDFV}
    assert data["origination_ip"] == IP
    assert data["device_ua"].startswith("Mozilla%2F5.0")
    assert data["device_ver"] == "iPhone14,2-iOS-17.1"
    assert data["app_version"] == "3.1.0"
    assert data["event_data"]["user_id"] == "user-42"


def test_the_event_s_own_fields_win_over_the_profile(core: Core) -> None:
    """Given a stored profile with the install's IP and user agent
    When an event brings its own IP and user agent but no advertising id
    Then its own IP and user agent are sent, and only the advertising id is filled from the profile."""
    core.process(native_event("install"))
    core.sender.sent.clear()

    core.process(native_event(device={"platform": "ios", "id": IDFV, "ip": "198.51.100.9", "user_agent": "Own/1.0"}))

    [delivery] = core.deliveries()
    data = delivery["payload"]["data"]
    assert data["origination_ip"] == "198.51.100.9"
    assert data["device_ua"] == "Own%2F1.0"
    assert data["device_ids"]["idfa"] == IDFA


def test_a_profile_is_written_only_when_something_changed(core: Core) -> None:
    """Given a profile written by an install (keyed by the app, the platform and the id normalised)
    When an event with the same device context arrives a minute later, then one from a new IP
    Then the first writes nothing, the second writes the new IP."""
    core.process(native_event("install"))
    key = profile_key(IOS_APP, "ios", IDFV)
    assert key == f"{IOS_APP}#ios#{IDFV.lower()}"
    assert [list(written) for written, _ in core.store.writes] == [[key]]
    assert core.store.profiles[key]["ip"] == IP

    core.enricher.process(json.dumps(native_event()), INFO, NOW + 60)
    assert len(core.store.writes) == 1

    core.enricher.process(
        json.dumps(native_event(device={"platform": "ios", "id": IDFV, "ip": "198.51.100.1"})), INFO, NOW + 120
    )
    assert len(core.store.writes) == 2
    assert core.store.profiles[key]["ip"] == "198.51.100.1"


def test_att_denied_removes_the_remembered_advertising_id(core: Core) -> None:
    """Given a profile that remembers the advertising id of an install
    When the device's next event says ATT is denied
    Then the profile forgets the advertising id, and a later server-side event is sent without it."""
    core.process(native_event("install"))
    core.enricher.process(
        json.dumps(
            native_event(timestamp=NOW + 60, device={"platform": "ios", "id": IDFV, "att": {"status": "denied"}})
        ),
        INFO,
        NOW + 60,
    )
    assert "advertising_id" not in core.store.profiles[profile_key(IOS_APP, "ios", IDFV)]
    core.sender.sent.clear()

    core.enricher.process(json.dumps(server_side_purchase()), INFO, NOW + 120)

    [delivery] = core.deliveries()
    assert "idfa" not in delivery["payload"]["data"]["device_ids"]
