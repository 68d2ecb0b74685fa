"""``python -m tools.privacy erase`` against the local stack, as on-call runs it: the device's profile and its
messages in both DLQs go, another device's stay, and an erase is final (a later bare server-side purchase of the
device is enriched with nothing learned before it).

Runs after ``test_local_pipeline`` (file order): its reports count the DLQ messages this test erases.
"""

from __future__ import annotations

import json
from typing import Any

from functions.names import PROFILE_TABLE
from tests.e2e.shared import Run
from tests.e2e.test_local_cli import run_module
from tools.local import aws

IDFV = "5E1F7A2B-0C3D-4E5F-8A9B-0C1D2E3F4A5B"
IDFA = "8A7B6C5D-4E3F-4A1B-9C8D-7E6F5A4B3C2D"
KOCHAVA_ID = "KDe2eprivacy0123456789"
IP = "198.51.100.201"
UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 e2e-privacy"
USER_ID = "user-e2e-privacy-77"
OTHER_IDFV = "0F1E2D3C-4B5A-4968-8776-655443322110"
BASE_TS = 1795176000  # each event its own usertime, to find its payload at the sink


def _install() -> dict[str, Any]:
    return {
        "uuid": "e2e-privacy-install",
        "type": "install",
        "timestamp": BASE_TS,
        "user_id": USER_ID,
        "device": {
            "platform": "ios",
            "id": IDFV,
            "advertising_id": IDFA,
            "kochava_device_id": KOCHAVA_ID,
            "ip": IP,
            "user_agent": UA,
            "att": {"status": "authorized"},
        },
    }


def _bare_purchase(uuid: str, timestamp: int) -> dict[str, Any]:
    """A server-side purchase: only the platform and the device id, no IDFA, IP or user agent."""
    return {
        "uuid": uuid,
        "type": "track",
        "event": "purchase",
        "timestamp": timestamp,
        "properties": {"revenue": 4.99, "currency": "EUR"},
        "device": {"platform": "ios", "id": IDFV},
    }


def _invalid(uuid: str, device_id: str) -> dict[str, Any]:
    return {
        "uuid": uuid,
        "type": "track",
        "event": "level_up",
        "timestamp": "yesterday",
        "device": {"platform": "ios", "id": device_id},
    }


def _payload(run: Run, usertime: int) -> dict[str, Any]:
    [payload] = [
        p for p in run.sink.payloads() if isinstance(p, dict) and p.get("data", {}).get("usertime") == usertime
    ]
    return payload


def _erase(run: Run, *extra: str) -> dict[str, Any]:
    done = run_module("tools.privacy", "--endpoint-url", run.stack.endpoint_url, "--json", "erase", *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    for secret in (IDFV, IDFA, KOCHAVA_ID, IP, UA, USER_ID):
        assert secret not in done.stdout + done.stderr
    return dict(json.loads(done.stdout))


def _dlq_uuids(run: Run) -> dict[str, set[str]]:
    return {key: {m.uuid for m in messages if m.uuid} for key, messages in run.stack.dlq_messages().items()}


def test_erase_is_final_and_reaches_both_dlqs(run: Run) -> None:
    stack = run.stack
    run.sink.add_rule(lambda r: isinstance(r.json, dict) and r.json["data"].get("usertime") == BASE_TS + 2, [400])
    # Given a full install, a purchase enriched from its profile, a purchase Kochava rejects (delivery DLQ), an
    # invalid event (ingest DLQ), and another device's invalid event (the install drained first: the purchases are
    # enriched from the profile it writes; the other four in any order)
    assert stack.post("native", _install()).status_code == 202
    assert stack.wait_drained(timeout_s=40), stack.queue_depths()
    for body in (
        _bare_purchase("e2e-privacy-before", BASE_TS + 1),
        _bare_purchase("e2e-privacy-rejected", BASE_TS + 2),
        _invalid("e2e-privacy-invalid", IDFV.lower()),
        _invalid("e2e-privacy-other", OTHER_IDFV),
    ):
        assert stack.post("native", body).status_code == 202
    assert stack.wait_drained(timeout_s=40), stack.queue_depths()
    before = _payload(run, BASE_TS + 1)
    assert before["data"]["device_ids"]["idfa"] == IDFA and before["data"]["origination_ip"] == IP  # enriched
    dlqs = _dlq_uuids(run)
    assert {"e2e-privacy-invalid", "e2e-privacy-other"} <= dlqs["ingest"]
    assert "e2e-privacy-rejected" in dlqs["delivery"]

    # When on-call erases the device
    erased = _erase(run, "--platform", "ios", "--device-id", IDFV)

    # Then its profile and its DLQ messages are gone, the other device's message stays
    assert [d["key"].split("#")[1] for d in erased["profiles"]["deleted"]] == ["ios"]
    profiles = aws.client("dynamodb", stack.endpoint_url).scan(TableName=stack.names.table(PROFILE_TABLE))["Items"]
    assert not [item for item in profiles if IDFV in item["pk"]["S"]]
    dlqs = _dlq_uuids(run)
    assert "e2e-privacy-invalid" not in dlqs["ingest"] and "e2e-privacy-other" in dlqs["ingest"]
    assert "e2e-privacy-rejected" not in dlqs["delivery"]
    assert erased["removed"] == 3

    # And a bare server-side purchase afterwards carries nothing learned before the erase
    assert stack.post("native", _bare_purchase("e2e-privacy-after", BASE_TS + 3)).status_code == 202
    assert stack.wait_drained(timeout_s=40), stack.queue_depths()
    after = _payload(run, BASE_TS + 3)
    assert after["data"]["device_ids"] == {"idfv": IDFV}
    assert after["kochava_device_id"] == IDFV
    sent = json.dumps(after)
    assert [value for value in (IDFA, KOCHAVA_ID, IP, UA, USER_ID, "authorized") if value in sent] == []

    # And a second erase removes nothing (a purchase with the device id alone leaves no profile behind)
    assert _erase(run, "--platform", "ios", "--device-id", IDFV)["removed"] == 0
