"""When two delivery envelopes are the same event (``functions/pipeline/delivery_key.py``): the idempotency key and
the content Powertools hashes under it.

The content is stored (hashed) with every delivered record for 15 days: a release that words it differently would
answer a redelivered or replayed copy of an event delivered before the upgrade ``uuid_conflict`` instead of
``duplicate``. So its exact shape is pinned here, for payloads whose ``data`` is an object and for those whose is not.
"""

from __future__ import annotations

from typing import Any

from functions.pipeline.delivery_key import delivery_key, device_of
from functions.pipeline.envelope import Envelope, Kind


def key(payload: dict[str, Any], kind: Kind = "event", uuid: str = "u-1") -> dict[str, Any]:
    return delivery_key(Envelope(uuid, kind, "Purchase", payload, None))


def test_an_identitylink_is_about_the_device_in_its_device_id() -> None:
    link = {"kochava_app_id": "ko", "device_id": {"idfv": "V-Link"}, "data": {"user_id": "u-9"}}
    assert device_of(link) == "v-link"
    other_device = {**link, "device_id": {"idfv": "V-Other"}}
    assert key(link, "identityLink")["content"] != key(other_device, "identityLink")["content"]


def test_an_empty_own_id_is_no_device_id() -> None:
    payload = {"kochava_device_id": "KO-Dev", "data": {"device_ids": {"idfv": "", "android_id": "AID-1"}}}
    assert device_of(payload) == "aid-1"
    payload["data"]["device_ids"]["android_id"] = ""
    assert device_of(payload) == "ko-dev"
    assert device_of({"kochava_device_id": "", "data": {"device_ids": {"idfv": ""}}}) is None


def test_a_payload_whose_data_is_not_an_object_still_has_a_device_and_a_content() -> None:
    assert device_of({"kochava_device_id": "KD"}) == "kd"
    assert device_of({"kochava_device_id": "KD", "data": ["not", "an", "object"]}) == "kd"
    assert device_of("not a payload") is None
    assert key({"kochava_app_id": "ko", "kochava_device_id": "KD"}) == {
        "uuid": "u-1",
        "kind": "event",
        "app": "ko",
        "content": {"device": "kd", "data": None},
    }
    assert key({"kochava_device_id": "KD", "data": [1, 2]})["content"] == {"device": "kd", "data": [1, 2]}
    # Two such envelopes of one uuid for two devices are two contents (a reused uuid), not a duplicate.
    assert key({"kochava_device_id": "A"})["content"] != key({"kochava_device_id": "B"})["content"]


def test_the_content_leaves_out_what_the_enricher_fills_and_keeps_the_event() -> None:
    data = {
        "device_ids": {"idfa": "A", "idfv": "V"},
        "origination_ip": "192.0.2.1",
        "device_ua": "App/1 (iPhone)",
        "app_tracking_transparency": {"att": True},
        "ad_services_token": "t" * 40,
        "usertime": 1_700_000_000,
        "event_name": "Purchase",
        "event_data": {"sum": 1},
    }
    assert key({"kochava_app_id": "ko", "data": data})["content"] == {
        "device": "v",
        "usertime": 1_700_000_000,
        "event_name": "Purchase",
        "event_data": {"sum": 1},
    }


def test_an_app_id_that_is_not_text_is_no_app() -> None:
    assert key({"kochava_app_id": 1234, "data": {}})["app"] is None
    assert key({"data": {}})["app"] is None
