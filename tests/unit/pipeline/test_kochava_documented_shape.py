"""Kochava's own documented install example (seed 004, "iAd/iOS14+ Sample Install Event Calls") comes out of the
mapping with the same shape and values, given the same inputs (events/kochava_doc_install_ios14_iad.json)."""

from __future__ import annotations

import json
from typing import Any

from functions.pipeline.events import Rejection, parse_body
from functions.pipeline.kochava import to_kochava
from functions.pipeline.settings import Settings
from tools.samples import SAMPLES_DIR

# Copied from Kochava's Install Notification documentation (seed 004), unchanged but for att_time (see below).
DOCUMENTED = {
    "action": "install",
    "kochava_app_id": "koconversionsdemo777ea19bc63928c",
    "kochava_device_id": "FFFb085ab00b386",
    "data": {
        "app_tracking_transparency": {
            "att_time": 123456789,
            "att_duration": 13,
            "att": True,
            "att_detail": "authorized",
        },
        "origination_ip": "77.224.141.777",
        "usertime": 1521574016,
        "device_ver": "iPhone-iOS-14.0.0",
        "device_ids": {"idfa": "kochava-test-idfa-2015-12-09-12", "idfv": "333BA75-FE08-AAA4-9EF0-98A6AD293FEC"},
        "app_version": "3.3.0",
        "iad_attribution_details": {
            "Version3.1": {
                "iad-attribution": "",
                "iad-lineitem-id": "",
                "iad-keyword": "",
                "iad-org-name": "",
                "iad-click-date": "",
                "iad-adgroup-name": "",
                "iad-campaign-id": "",
                "iad-adgroup-id": "",
                "iad-lineitem-name": "",
                "iad-campaign-name": "",
                "iad-conversion-date": "",
            }
        },
    },
}


def test_documented_ios14_iad_install_is_reproduced() -> None:
    """Given the documented example's inputs as a native install event
    When it is mapped with the documented app GUID
    Then the payload equals Kochava's example, except three deliberate differences:
    the IDFA is upper-cased (spec: iOS ids upper case; Kochava's placeholder is not a real IDFA), att_time is a
    real epoch time (the documented 123456789 is 1973, which the contract refuses as out of range), and the
    documented origination_ip 77.224.141.777 is not an IP address (777 > 255), so it is dropped with a warning."""
    body = (SAMPLES_DIR / "kochava_doc_install_ios14_iad.json").read_bytes()
    [event] = parse_body(body)
    assert not isinstance(event, Rejection), event
    outcome = to_kochava(event, Settings(kochava_app_id_ios="koconversionsdemo777ea19bc63928c"), now=1521574100.0)

    expected: dict[str, Any] = json.loads(json.dumps(DOCUMENTED))
    expected["data"]["device_ids"]["idfa"] = "KOCHAVA-TEST-IDFA-2015-12-09-12"
    expected["data"]["app_tracking_transparency"]["att_time"] = json.loads(body)["device"]["att"]["time"]
    del expected["data"]["origination_ip"]
    assert outcome.payload == expected
    assert outcome.warnings == ["device.ip is not an IPv4 or IPv6 address: not sent"]
