"""The enricher with Segment batches as the libraries send them, and with sources bound to apps, through its entry
point on the in-memory ports (moved from the moto tier, ``tests/integration/enricher/test_segment_and_sources.py``).

Given a Segment batch mixing mapped calls with ``page``, ``group`` and ``alias`` calls, the mapped ones are
delivered and the others filtered and counted by type (nothing in a DLQ). Given ``SOURCE_APPS`` and the
``api_key_id`` attribute the gateway adds, an event for another app is dead-lettered ``app_not_allowed`` with the
key id kept, is never sent and touches no device profile; its replay is checked against the binding again.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from functions.names import (
    ATTR_API_KEY_ID,
    ATTR_ERROR,
    ATTR_FIELD,
    ATTR_REASON,
    ATTR_RECEIVED_AT_MS,
    ATTR_REQUEST_ID,
    ATTR_ROUTE,
    ATTR_UUID,
    ENV_KOCHAVA_APP_IDS_BY_BUNDLE,
    ENV_REQUIRE_BOUND_KEYS,
    ENV_SOURCE_APPS,
    SQS_MAX_MESSAGE_ATTRIBUTES,
)
from functions.pipeline import reasons
from tests.samples.enricher import IDFA, IDFV, IP, NOW, UA, native_event
from tests.unit.enricher.stack import FakeStack
from tools.dlq.core import DlqMessage, replay_attributes

GAME = "com.example.game"
TOOLS = "com.example.tools"
GAME_APP = "ko-game-guid"
TOOLS_APP = "ko-tools-guid"
BINDINGS = {"key-game": [GAME], "key-tools": [TOOLS_APP]}


def segment_call(kind: str, message_id: str, bundle: str = GAME, **fields: Any) -> dict[str, Any]:
    call: dict[str, Any] = {
        "type": kind,
        "messageId": message_id,
        "timestamp": NOW - 30,
        "userId": "user-1",
        "context": {
            "device": {
                "type": "ios",
                "id": IDFV,
                "advertisingId": IDFA,
                "adTrackingEnabled": True,
                "model": "iPhone15,2",
            },
            "os": {"name": "iOS", "version": "17.1"},
            "app": {"version": "3.3.0", "namespace": bundle},
            "ip": IP,
            "userAgent": UA,
            "locale": "en-US",
        },
    }
    call.update(fields)
    return call


def with_key(stack: FakeStack, body: Any, key_id: str | None, route: str = "native") -> dict[str, Any]:
    """An ingest record as the gateway writes it, with the API key id attribute (a String)."""
    record = stack.record(body, route=route)
    if key_id is not None:
        record["messageAttributes"][ATTR_API_KEY_ID] = {"stringValue": key_id, "dataType": "String"}
    return record


def emf_docs(out: str) -> list[dict[str, Any]]:
    """The EMF documents printed, each metric's values summed (Powertools writes a list per metric)."""
    docs = [json.loads(line) for line in out.splitlines() if line.strip().startswith("{") and '"_aws"' in line]
    return [{k: sum(v) if isinstance(v, list) else v for k, v in doc.items()} for doc in docs]


def profile_count(stack: FakeStack) -> int:
    return len(stack.profiles.profiles)


@pytest.fixture
def bound(make_stack: Any) -> FakeStack:
    stack: FakeStack = make_stack(
        **{
            ENV_SOURCE_APPS: json.dumps(BINDINGS),
            ENV_KOCHAVA_APP_IDS_BY_BUNDLE: json.dumps({GAME: GAME_APP, TOOLS: TOOLS_APP}),
        }
    )
    return stack


def test_page_group_and_alias_are_filtered_and_counted_by_type(
    stack: FakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given a Segment batch mixing track and screen calls with page, group and alias calls When it is handled
    Then track and screen are delivered, the others filtered and counted by type, nothing dead-lettered."""
    body = {
        "batch": [
            segment_call("track", "m-track", event="Level Up"),
            segment_call("page", "m-page", name="Pricing"),
            {"type": "group", "messageId": "m-group", "groupId": "g-1", "context": {"library": {"name": "x"}}},
            {"type": "alias", "messageId": "m-alias", "previousId": "anon-1", "userId": "user-1"},
            segment_call("screen", "m-screen", name="Shop"),
            {"type": "page", "messageId": "m-page-2"},
        ],
        "sentAt": "2023-11-14T22:12:50.000Z",
        "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
    }

    response = stack.invoke(stack.record(body, route="segment"))

    assert response == {"batchItemFailures": []}
    assert [d["uuid"] for d in stack.deliveries()] == ["m-track", "m-screen"]
    assert stack.drain("ingest_dlq") == []
    docs = emf_docs(capsys.readouterr().out)
    [main] = [doc for doc in docs if "EventsReceived" in doc]
    assert (main["EventsReceived"], main["EventsFiltered"], main["EventsForwarded"]) == (6, 4, 2)
    by_type = {doc["type"]: doc["EventsFiltered"] for doc in docs if "type" in doc and "EventsFiltered" in doc}
    assert by_type == {"page": 2, "group": 1, "alias": 1}


def test_a_call_switched_off_for_kochava_is_filtered_as_its_type(
    stack: FakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given a track call with ``integrations: {"Kochava": false}`` Then it is filtered and counted as a track."""
    off = segment_call("track", "m-off", event="Level Up", integrations={"Kochava": False})
    stack.invoke(stack.record({"batch": [off]}, route="segment"))
    assert stack.deliveries() == [] and stack.drain("ingest_dlq") == []
    by_type = {doc["type"]: doc["EventsFiltered"] for doc in emf_docs(capsys.readouterr().out) if "type" in doc}
    assert by_type == {"track": 1}


def test_a_dead_lettered_call_of_a_batch_carries_the_batch_context_and_replays_alone(make_stack: Any) -> None:
    """Given a batch whose call has no usable device id When it is dead-lettered
    Then its DLQ body is the call alone with the batch-level context merged in (replayable on its own)."""
    stack: FakeStack = make_stack()
    call = segment_call("track", "m-zero", event="Level Up")
    call["context"] = {"device": {"advertisingId": "00000000-0000-0000-0000-000000000000"}}  # no usable id
    body = {"batch": [call], "context": {"device": {"type": "ios"}, "ip": IP}}
    stack.invoke(stack.record(body, route="segment"))
    [dead] = stack.drain("ingest_dlq")
    assert dead["attributes"][ATTR_REASON] == reasons.NO_DEVICE_IDENTIFIER
    assert json.loads(dead["body"])["context"] == {
        "device": {"type": "ios", "advertisingId": "00000000-0000-0000-0000-000000000000"},
        "ip": IP,
    }


def test_segment_call_with_integrations_kochava_delivers_the_native_payload(stack: FakeStack) -> None:
    """Given a Segment call carrying integrations.Kochava and the same event sent natively
    Then both become the same Kochava payload."""
    kochava = {
        "att": {"status": "authorized", "time": NOW - 600, "duration": 3},
        "consent": {"gdpr_applies": True, "tc_string": "CPXx", "ad_user_data": True, "ad_personalization": False},
        "install_referrer": {"referrer": "utm_source=x", "click_time": NOW - 900},
        "kochava_device_id": "KD-1",
        "iad_attribution_details": {"Version3.1": {"iad-attribution": "true"}},
    }
    call = segment_call("track", "m-install", event="Application Installed", integrations={"Kochava": kochava})
    native = {
        "uuid": "n-install",
        "type": "install",
        "timestamp": NOW - 30,
        "user_id": "user-1",
        "app": {"version": "3.3.0", "bundle_id": GAME},
        "device": {
            "platform": "ios",
            "id": IDFV,
            "advertising_id": IDFA,
            "limit_ad_tracking": False,
            "model": "iPhone15,2",
            "os_version": "17.1",
            "ip": IP,
            "user_agent": UA,
            "att": kochava["att"],
            "kochava_device_id": "KD-1",
        },
        **{key: copy.deepcopy(kochava[key]) for key in ("consent", "install_referrer", "iad_attribution_details")},
    }
    stack.invoke(stack.record({"batch": [call]}, route="segment"), stack.record(native))
    payloads = {d["uuid"]: d["payload"] for d in stack.deliveries()}
    assert payloads["m-install"] == payloads["n-install"]
    assert payloads["m-install"]["data"]["gdpr_privacy_consent"]["ad_personalization"] == 0


def test_an_event_for_another_app_is_dead_lettered_app_not_allowed_and_touches_nothing(
    bound: FakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given a key bound to one app and a message with an event for it and one for another app
    Then the other is dead-lettered app_not_allowed with the key id, never sent, its device never stored, counted."""
    stack = bound
    mine = native_event(app={"bundle_id": GAME})
    other = native_event(app={"bundle_id": TOOLS}, device={"platform": "ios", "id": "OTHER-IDFV", "ip": IP})

    response = stack.invoke(with_key(stack, {"batch": [mine, other]}, "key-game"))

    assert response == {"batchItemFailures": []}
    assert [d["uuid"] for d in stack.deliveries()] == [mine["uuid"]]
    [dead] = stack.drain("ingest_dlq")
    attrs = dead["attributes"]
    assert json.loads(dead["body"]) == other
    assert attrs[ATTR_REASON] == reasons.APP_NOT_ALLOWED
    assert attrs[ATTR_FIELD] == "app.bundle_id"
    assert attrs[ATTR_ERROR].startswith(f"app.bundle_id: API key key-game may send only to {GAME} ")
    assert attrs[ATTR_UUID] == other["uuid"] and attrs[ATTR_API_KEY_ID] == "key-game"
    assert len(dead["raw"]["MessageAttributes"]) <= SQS_MAX_MESSAGE_ATTRIBUTES
    assert profile_count(stack) == 1  # the allowed event's device only: the other one was never stored
    [per_reason] = [doc for doc in emf_docs(capsys.readouterr().out) if doc.get("reason") == reasons.APP_NOT_ALLOWED]
    assert per_reason["EventsRejected"] == 1


def test_keys_not_bound_send_nothing_once_a_key_is_bound_and_messages_without_a_key_send_anywhere(
    bound: FakeStack,
) -> None:
    """requireBoundKeys, on by default: an unbound key (e.g. the stack's default key) is refused once any key is
    bound; a message without a key id (IAM auth, or written before keys existed) is not judged."""
    stack = bound
    unbound = native_event(app={"bundle_id": TOOLS})
    keyless = native_event(app={"bundle_id": GAME})
    via_guid = native_event(app={"bundle_id": TOOLS})  # key-tools is bound by the GUID the bundle maps to
    stack.invoke(
        with_key(stack, unbound, "key-partner"), with_key(stack, keyless, None), with_key(stack, via_guid, "key-tools")
    )
    assert sorted(d["uuid"] for d in stack.deliveries()) == sorted(e["uuid"] for e in (keyless, via_guid))
    [dead] = stack.drain("ingest_dlq")
    assert dead["attributes"][ATTR_REASON] == reasons.APP_NOT_ALLOWED
    assert "key-partner is bound to no app" in dead["attributes"][ATTR_ERROR]


def test_keys_not_bound_send_to_any_app_when_bound_keys_are_not_required(make_stack: Any) -> None:
    """Given REQUIRE_BOUND_KEYS=false When an unbound key sends an event Then it is delivered."""
    stack = make_stack(
        **{
            ENV_SOURCE_APPS: json.dumps(BINDINGS),
            ENV_KOCHAVA_APP_IDS_BY_BUNDLE: json.dumps({GAME: GAME_APP, TOOLS: TOOLS_APP}),
            ENV_REQUIRE_BOUND_KEYS: "false",
        }
    )
    unbound = native_event(app={"bundle_id": TOOLS})
    stack.invoke(with_key(stack, unbound, "key-partner"))
    assert [d["uuid"] for d in stack.deliveries()] == [unbound["uuid"]]
    assert stack.drain("ingest_dlq") == []


def test_segment_call_for_another_app_names_the_segment_field(bound: FakeStack) -> None:
    """Given a Segment batch under a key bound to one app with calls for another
    Then the track call for the other app is dead-lettered naming ``context.app.namespace``; the page call is
    filtered whatever its app."""
    stack = bound
    body = {"batch": [segment_call("track", "m-1", bundle=GAME, event="x"), segment_call("page", "m-2", bundle=TOOLS)]}
    body["batch"].append(segment_call("track", "m-3", bundle=TOOLS, event="x"))
    stack.invoke(with_key(stack, body, "key-game", route="segment"))
    assert [d["uuid"] for d in stack.deliveries()] == ["m-1"]
    [dead] = stack.drain("ingest_dlq")  # m-2 is a page call: filtered, whatever its app
    assert (dead["attributes"][ATTR_UUID], dead["attributes"][ATTR_FIELD]) == ("m-3", "context.app.namespace")
    assert dead["attributes"][ATTR_ROUTE] == "segment"


def test_a_replay_is_checked_against_the_binding_again(make_stack: Any, bound: FakeStack) -> None:
    """Given an event dead-lettered app_not_allowed When on-call replays it unchanged, then after the binding
    was changed to allow it Then it is dead-lettered again, then delivered."""
    stack = bound
    other = native_event(app={"bundle_id": TOOLS})
    stack.invoke(with_key(stack, other, "key-game"))
    [dead] = stack.drain("ingest_dlq")
    # Every attribute present (field, uuid, event name...): api_key_id takes the place of received_at_ms, as SQS
    # allows 10; request_id and failed_at_ms still identify and date it.
    assert ATTR_API_KEY_ID in dead["attributes"] and ATTR_REQUEST_ID in dead["attributes"]
    assert ATTR_RECEIVED_AT_MS not in dead["attributes"]
    assert len(dead["raw"]["MessageAttributes"]) == SQS_MAX_MESSAGE_ATTRIBUTES

    def replayed() -> dict[str, Any]:
        """The record the enricher gets after `tools.dlq replay` copied the message back to the ingest queue."""
        attributes = replay_attributes(DlqMessage.from_sqs(dead["raw"]))
        assert attributes[ATTR_API_KEY_ID]["StringValue"] == "key-game"
        record = stack.record(dead["body"])
        record["messageAttributes"] = {
            name: {"stringValue": value["StringValue"], "dataType": value["DataType"]}
            for name, value in attributes.items()
        }
        return record

    # Replayed unchanged: dead-lettered again, for the same reason.
    stack.invoke(replayed())
    [again] = stack.drain("ingest_dlq")
    assert again["attributes"][ATTR_REASON] == reasons.APP_NOT_ALLOWED
    assert stack.deliveries() == []

    # After the binding was changed to allow it (a deploy): delivered.
    stack = make_stack(
        **{
            ENV_SOURCE_APPS: json.dumps({**BINDINGS, "key-game": [GAME, TOOLS]}),
            ENV_KOCHAVA_APP_IDS_BY_BUNDLE: json.dumps({GAME: GAME_APP, TOOLS: TOOLS_APP}),
        }
    )
    stack.invoke(replayed())
    assert [d["uuid"] for d in stack.deliveries()] == [other["uuid"]]
    assert stack.drain("ingest_dlq") == []


def test_received_at_ms_is_kept_when_there_is_room(bound: FakeStack) -> None:
    """Given a body that is not JSON under a key Then its dead letter keeps both the key id and received_at_ms."""
    stack = bound
    unparseable = with_key(stack, "{not json", "key-game")
    stack.invoke(unparseable)
    [dead] = stack.drain("ingest_dlq")
    # No field, uuid or event name for a body that is not JSON: room for both.
    assert dead["attributes"][ATTR_API_KEY_ID] == "key-game"
    assert int(dead["attributes"][ATTR_RECEIVED_AT_MS]) == int(NOW * 1000)
