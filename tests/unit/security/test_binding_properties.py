"""Invariant (docs/security.md, I1): an event accepted under API key K reaches only the Kochava apps K is bound to.

For arbitrary app GUID configurations (per platform, per bundle), arbitrary bindings (bundle ids and GUIDs, some
not resolving to any app), arbitrary keys (bound, unbound, none) and arbitrary events on both routes (native and
Segment, any platform / bundle), every delivery the enricher hands to the delivery queue carries a
``kochava_app_id`` the key reaches (``sources.reachable_apps``); every other event is dead-lettered or filtered,
never lost. Runs :class:`~functions.enricher.core.Enricher` on the in-memory ports.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from functions.enricher.core import Enricher, MessageInfo, Queues
from functions.pipeline import reasons
from functions.pipeline.settings import Settings
from functions.pipeline.sources import reachable_apps
from tests.fakes import FakeLog, FakeProfileStore, FakeSender
from tests.samples.enricher import NOW

QUEUES = Queues(ingest="q-ingest", ingest_dlq="q-ingest-dlq", delivery="q-delivery")
BUNDLES = ["com.example.ios", "com.example.android", "com.example.game", "com.other"]
GUIDS = ["ko-ios", "ko-android", "ko-game", "ko-shared"]
KEYS = ["key-a", "key-b", "key-c"]

configs = st.builds(
    Settings,
    kochava_app_id_ios=st.sampled_from([None, *GUIDS]),
    kochava_app_id_android=st.sampled_from([None, *GUIDS]),
    kochava_app_ids_by_bundle=st.dictionaries(st.sampled_from(BUNDLES), st.sampled_from(GUIDS), max_size=3),
    source_apps=st.dictionaries(
        st.sampled_from(KEYS), st.frozensets(st.sampled_from(BUNDLES + GUIDS), min_size=1, max_size=3), max_size=2
    ),
    require_bound_keys=st.booleans(),
    adservices_resolve=st.just(False),
)


@st.composite
def calls(draw: st.DrawFn, n: int) -> dict[str, Any]:
    """One event of either route with any platform and bundle (or none)."""
    platform = draw(st.sampled_from(["ios", "android", "iOS", "Android"]))
    bundle = draw(st.one_of(st.none(), st.sampled_from(BUNDLES)))
    kind = draw(st.sampled_from(["track", "install", "identify"]))
    device_id = draw(st.sampled_from(["3B2F8C1E-5A8D-4C0E-9F4B-1D2E3F4A5B6C", "9774d56d682e549c"]))
    if draw(st.booleans()):  # native
        event: dict[str, Any] = {
            "uuid": f"n-{n}",
            "type": kind,
            "timestamp": NOW - 60,
            "device": {"platform": platform, "id": device_id},
        }
        if kind == "track":
            event["event"] = "Purchase"
        if kind == "identify":
            event["user_id"] = "user-1"
        if bundle is not None:
            event["app"] = {"bundle_id": bundle}
        return {"route": "native", "event": event}
    context: dict[str, Any] = {"device": {"type": platform, "id": device_id}}
    if bundle is not None:
        context["app"] = {"namespace": bundle}
    call: dict[str, Any] = {"type": kind, "messageId": f"s-{n}", "timestamp": NOW - 60, "context": context}
    call["userId"] = "user-1"
    if kind == "track":
        call["event"] = "Purchase"
    return {"route": "segment", "event": call}


@settings(max_examples=150, deadline=None)
@given(
    config=configs,
    key=st.sampled_from([None, *KEYS]),
    drawn=st.lists(st.integers(0, 10**6), min_size=1, max_size=6).flatmap(
        lambda ns: st.tuples(*(calls(i) for i in range(len(ns))))
    ),
)
def test_a_delivered_payload_goes_only_to_an_app_its_key_reaches(
    config: Settings, key: str | None, drawn: tuple[dict[str, Any], ...]
) -> None:
    sender = FakeSender()
    enricher = Enricher(
        settings=config,
        sender=sender,
        queues=QUEUES,
        profile_store=FakeProfileStore(),
        adservices=None,
        log=FakeLog(),
        profile_ttl_s=86400,
    )
    for route in ("native", "segment"):
        events = [d["event"] for d in drawn if d["route"] == route]
        if not events:
            continue
        body = events[0] if len(events) == 1 and route == "native" else {"batch": events}
        info = MessageInfo(request_id="r-1", received_at_ms=int(NOW * 1000), route=route, api_key_id=key)  # type: ignore[arg-type]
        enricher.process(json.dumps(body), info, NOW)

    deliveries = [json.loads(m.body) for m in sender.messages("q-delivery")]
    bound = key is not None and key in config.source_apps
    judged = key is not None and bool(config.source_apps) and (bound or config.require_bound_keys)
    for delivery in deliveries:
        app = delivery["payload"]["kochava_app_id"]
        if judged:
            assert bound, f"unbound key {key} delivered to {app} while every key must be bound"
            assert app in reachable_apps(config.source_apps[str(key)], config.kochava_app_ids_by_bundle), (
                f"key {key} bound to {sorted(config.source_apps[str(key)])} delivered to {app}"
            )
    # Nothing lost: every event is delivered, dead-lettered with a reason, or filtered (Segment identify without
    # a device id is not possible here: each has one).
    dead = sender.messages("q-ingest-dlq")
    assert all(m.attributes.get("reason") for m in dead)
    assert len(deliveries) + len(dead) <= len(drawn)
    refused = [m for m in dead if m.attributes.get("reason") == reasons.APP_NOT_ALLOWED]
    if not judged:
        assert refused == []


def test_the_readme_binding_no_longer_reaches_the_android_app() -> None:
    """Issue 22, HIGH, as the audit ran it: {"ios-backend": ["com.example.ios"]} with per-platform GUIDs, an event
    naming com.example.ios from an Android device, through /v1/events and through the Segment route."""
    config = Settings(
        kochava_app_id_ios="ko-ios",
        kochava_app_id_android="ko-android",
        source_apps={"ios-backend": frozenset({"com.example.ios"})},
        adservices_resolve=False,
    )
    sender = FakeSender()
    enricher = Enricher(
        settings=config, sender=sender, queues=QUEUES, profile_store=None, adservices=None, log=FakeLog()
    )
    native = {
        "uuid": "n-1",
        "type": "track",
        "event": "Purchase",
        "timestamp": NOW - 60,
        "app": {"bundle_id": "com.example.ios"},
        "device": {"platform": "android", "id": "9774d56d682e549c"},
    }
    segment = {
        "type": "track",
        "event": "Purchase",
        "messageId": "s-1",
        "timestamp": NOW - 60,
        "userId": "u",
        "context": {"app": {"namespace": "com.example.ios"}, "device": {"type": "android", "id": "9774d56d682e549c"}},
    }
    for route, body in (("native", native), ("segment", {"batch": [segment]})):
        info = MessageInfo(request_id="r", received_at_ms=int(NOW * 1000), route=route, api_key_id="ios-backend")  # type: ignore[arg-type]
        enricher.process(json.dumps(body), info, NOW)
    assert sender.messages("q-delivery") == []
    assert [m.attributes["reason"] for m in sender.messages("q-ingest-dlq")] == [reasons.APP_NOT_ALLOWED] * 2
