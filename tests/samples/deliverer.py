"""Sample delivery envelopes (what the enricher puts on the delivery queue), shared by the deliverer's unit and
integration tests."""

from __future__ import annotations

from typing import Any

from functions.pipeline import envelope

NOW = 1_763_900_000.0  # 2025-11-23, the tests' clock
IOS_APP = "koios-test-guid"
IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
IDFV = "A1B2C3D4-1111-2222-3333-444455556666"
DEVICE_IP = "203.0.113.77"
# Kochava's iOS 14+ rule (install and post-install docs): every iOS payload carries the ATT answer.
ATT = {"att": True, "att_detail": "authorized"}
ADSERVICES_TOKEN = "Tk9UX0FfUkVBTF9UT0tFTl9idXRfbG9uZ19lbm91Z2hfdG9fbG9va19saWtlX29uZQ==" * 2


def event_payload(uuid: str, event_name: str = "Purchase", **data: Any) -> dict[str, Any]:
    """A Kochava event payload of the spec's shape (the sink checks it)."""
    return {
        "action": "event",
        "kochava_app_id": IOS_APP,
        "kochava_device_id": IDFV,
        "data": {
            "device_ids": {"idfa": IDFA, "idfv": IDFV},
            "origination_ip": DEVICE_IP,
            "usertime": int(NOW) - 60,
            "app_tracking_transparency": ATT,
            "event_name": event_name,
            "event_data": {"sum": 9.99, "currency": "USD", "uuid": uuid},
            **data,
        },
    }


def install_payload(with_token: bool = True, attribution: dict[str, Any] | None = None) -> dict[str, Any]:
    """An iOS install payload, optionally with an AdServices token and resolved attribution."""
    data: dict[str, Any] = {
        "device_ids": {"idfa": IDFA, "idfv": IDFV},
        "origination_ip": DEVICE_IP,
        "usertime": int(NOW) - 3600,
        "device_ver": "iPhone15,2-iOS-17.4",
        "app_tracking_transparency": ATT,
    }
    if with_token:
        data["ad_services_token"] = ADSERVICES_TOKEN
    if attribution is not None:
        data["adservices_attribution_details"] = attribution
    return {"action": "install", "kochava_app_id": IOS_APP, "kochava_device_id": IDFV, "data": data}


def event_body(uuid: str, event_name: str = "Purchase", **data: Any) -> str:
    return envelope.build_body(
        uuid=uuid,
        kind="event",
        event_name=event_name,
        payload=event_payload(uuid, event_name, **data),
        adservices_generated_at=None,
    )


def install_body(uuid: str, generated_at: float | None, attribution: dict[str, Any] | None = None) -> str:
    return envelope.build_body(
        uuid=uuid,
        kind="install",
        event_name="install",
        payload=install_payload(True, attribution),
        adservices_generated_at=generated_at,
    )


def device_event_body(uuid: str, device: str) -> str:
    """An event envelope from device ``device`` (the breaker counts distinct devices)."""
    payload = event_payload(uuid)
    payload["kochava_device_id"] = device
    return envelope.build_body(
        uuid=uuid, kind="event", event_name="Purchase", payload=payload, adservices_generated_at=None
    )
