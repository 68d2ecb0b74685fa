"""Sample DLQ message bodies and attributes (native events and delivery envelopes carrying personal data), shared
by the DLQ tool's unit and integration tests."""

from __future__ import annotations

from typing import Any

IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
IDFV = "A1B2C3D4-1111-2222-3333-444455556666"
IP = "203.0.113.77"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.secret-adservices-token-value"


def typed(attrs: dict[str, Any]) -> dict[str, dict[str, str]]:
    out = {}
    for name, value in attrs.items():
        if value is None:
            continue
        kind = "Number" if isinstance(value, int | float) and not isinstance(value, bool) else "String"
        out[name] = {"DataType": kind, "StringValue": str(value)}
    return out


def native_event(uuid: str, name: str = "Purchase") -> dict[str, Any]:
    return {
        "uuid": uuid,
        "type": "track",
        "event": name,
        "timestamp": "2026-11-23T10:00:00Z",
        "properties": {"price": 9.99},
        "device": {"platform": "ios", "id": IDFV, "advertising_id": IDFA, "ip": IP},
        "adservices": {"token": TOKEN, "generated_at": 1_799_990_000},
    }


def envelope(uuid: str, name: str = "Purchase", kind: str = "event") -> dict[str, Any]:
    return {
        "v": 1,
        "uuid": uuid,
        "kind": kind,
        "event_name": name,
        "payload": {
            "action": kind,
            "kochava_app_id": "koapp-guid",
            "kochava_device_id": IDFV,
            "data": {
                "device_ids": {"idfa": IDFA, "idfv": IDFV},
                "origination_ip": IP,
                "event_name": name,
                "usertime": 1_799_990_000,
                # Kochava's iOS 14+ rule: every iOS payload carries the ATT answer (the local sink refuses one without)
                "app_tracking_transparency": {"att": True, "att_detail": "authorized"},
            },
        },
        "adservices_generated_at": None,
    }
