"""``tools.dlq show`` masks every kind of personal data (user agents, user ids, consent strings, referrers, e-mail
addresses, besides device ids, IPs and tokens) unless ``--reveal``, in text and JSON output alike."""

from __future__ import annotations

import json
from typing import Any

from functions.names import ATTR_ERROR, ATTR_REASON, ATTR_STAGE
from tests.integration.dlq.helpers import IDFA, IP, Queues, native_event, put, run_tool

UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15"
USER_ID = "user-1001-private"
TC_STRING = "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"
REFERRER = "utm_source=friend&utm_campaign=spring&gclid=EAIaIQobChMI"
EMAIL = "jo.doe@example.com"
PERSONAL = (UA, USER_ID, TC_STRING, REFERRER, EMAIL, IDFA, IP)


def _personal_event() -> dict[str, Any]:
    event = native_event("mask-1")
    event["device"] = {**event["device"], "platform": "android", "user_agent": UA}
    event["user_id"] = USER_ID
    event["consent"] = {"gdpr_applies": True, "tc_string": TC_STRING, "ad_user_data": True}
    event["install_referrer"] = {"referrer": REFERRER, "click_time": 1_799_990_000}
    event["properties"] = {"contact": EMAIL, "price": 9.99}
    return event


def _segment_call() -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": "mask-2",
        "userId": USER_ID,
        "traits": {"email": EMAIL},
        "context": {"userAgent": UA, "ip": IP, "page": {"referrer": REFERRER}, "device": {"type": "ios"}},
    }


def test_show_masks_user_agents_user_ids_consent_strings_referrers_and_emails(queues: Queues) -> None:
    dead = {ATTR_STAGE: "enricher", ATTR_REASON: "invalid_event", ATTR_ERROR: f"bad user {EMAIL}"}
    native_id = put(queues.sqs, queues.ingest_dlq, _personal_event(), **dead)
    segment_id = put(queues.sqs, queues.ingest_dlq, _segment_call(), **dead)

    text = run_tool("show", native_id, segment_id)
    as_json = run_tool("--json", "show", native_id, segment_id)

    assert text.code == as_json.code == 0
    for output in (text.out, as_json.out):
        leaked = [value[:12] for value in PERSONAL if value in output]
        assert leaked == []
    [native, segment] = sorted(as_json.json()["messages"], key=lambda m: m["body"].get("uuid", "~"))
    assert native["body"]["device"]["user_agent"] == f"Mozi…({len(UA)})"  # masked, still recognisable
    assert native["body"]["consent"]["gdpr_applies"] is True  # consent flags are not personal
    assert native["body"]["properties"] == {"contact": f"…({len(EMAIL)})", "price": 9.99}
    assert segment["body"]["messageId"] == "mask-2"


def test_reveal_shows_them(queues: Queues) -> None:
    message_id = put(queues.sqs, queues.ingest_dlq, _personal_event(), **{ATTR_ERROR: f"bad user {EMAIL}"})

    revealed = run_tool("--json", "show", message_id, "--reveal")

    [message] = revealed.json()["messages"]
    dumped = json.dumps(message, ensure_ascii=False)
    assert all(value in dumped for value in (UA, USER_ID, TC_STRING, REFERRER, EMAIL))
