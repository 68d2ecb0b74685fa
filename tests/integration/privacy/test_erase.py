"""``python -m tools.privacy erase`` against moto: the device's profiles (every app, or one) and its DLQ messages
go, nobody else's do, the output masks what it names, and a second run removes nothing."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest

from functions.names import ATTR_FAILED_AT_MS, ATTR_REASON
from tests.integration.dlq.helpers import (
    NOW_MS,
    REGION,
    STAGE,
    Run,
    create_queues,
    put,
    put_delivery_dead,
    put_ingest_dead,
    snapshot,
)
from tests.integration.privacy.conftest import ANDROID_APP, IOS_APP, SHOP_APP, SHOP_BUNDLE, Pipeline
from tests.samples.dlq import IDFA, IDFV, IP, envelope, native_event
from tools.privacy.cli import main

OTHER_IDFV = "F0E1D2C3-9999-8888-7777-666655554444"
OTHER_IDFA = "11112222-3333-4444-5555-666677778888"
KOCHAVA_ID = "KDxyz0123456789abcdef"
USER_ID = "user-1001"
PROFILE = {"advertising_id": IDFA, "kochava_device_id": KOCHAVA_ID, "ip": IP, "user_id": USER_ID, "model": "iPhone"}


def erase(*argv: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["--stage", STAGE, "--region", REGION, "--wait-time-seconds", "0", *argv], stdout=out, stderr=err, now_ms=NOW_MS
    )
    return Run(code, out.getvalue(), err.getvalue())


def _seed_profiles(pipeline: Pipeline) -> None:
    pipeline.put_profiles(
        {
            f"{IOS_APP}#ios#{IDFV}": PROFILE,
            f"{SHOP_APP}#ios#{IDFV}": {"ip": IP},
            f"{IOS_APP}#ios#{OTHER_IDFV}": {"advertising_id": OTHER_IDFA, "ip": "198.51.100.1"},
            f"{ANDROID_APP}#android#{IDFV}": {"ip": "198.51.100.2"},  # another platform: another device
        }
    )


def _other_event() -> dict[str, Any]:
    other = native_event("other-1")
    other["device"] = {**other["device"], "id": OTHER_IDFV, "advertising_id": OTHER_IDFA}
    return other


def _seed_dlqs(pipeline: Pipeline) -> dict[str, str]:
    q = pipeline.queues
    other = _other_event()
    segment = {
        "type": "track",
        "event": "Order Completed",
        "messageId": "seg-1",
        "context": {"device": {"type": "ios", "advertisingId": IDFA.lower()}},  # only the IDFA, lower case
    }
    kochava_only = envelope("env-2")
    kochava_only["payload"] = {"kochava_device_id": KOCHAVA_ID, "data": {"device_ids": {}}}
    return {
        "native": put_ingest_dead(q, "mine-1", "invalid_event"),  # device.id = IDFV
        "segment": put(q.sqs, q.ingest_dlq, segment, **{ATTR_REASON: "invalid_event"}),
        "other": put(q.sqs, q.ingest_dlq, other, **{ATTR_REASON: "invalid_event"}),
        "batch": put(q.sqs, q.ingest_dlq, {"batch": [native_event("mine-2"), other]}),  # redriven: no reason
        "broken": put(q.sqs, q.ingest_dlq, '{"uuid": "x", "device": {"id": "' + IDFV.lower() + '", ', reason="x"),
        "envelope": put_delivery_dead(q, "env-1", "kochava_rejected"),  # device_ids.idfv / idfa
        "kochava_only": put(q.sqs, q.delivery_dlq, kochava_only, **{ATTR_REASON: "retries_exhausted"}),
        "other_envelope": put(q.sqs, q.delivery_dlq, {**envelope("env-3"), "payload": {"kochava_device_id": "KD-9"}}),
    }


def _bodies(pipeline: Pipeline, url: str) -> dict[str, Any]:
    out = {}
    for message_id, body, attributes in snapshot(pipeline.queues.sqs, url).messages:
        out[message_id] = (body, json.loads(attributes))
    return out


def test_erase_removes_the_device_everywhere_and_nothing_else(pipeline: Pipeline, enricher: str) -> None:
    _seed_profiles(pipeline)
    ids = _seed_dlqs(pipeline)

    run = erase("erase", "--platform", "iOS", "--device-id", IDFV.lower())

    assert run.code == 0, run.out + run.err
    # Profiles: both apps of the device (platform GUID and per-bundle GUID), found although the id's case differs.
    assert pipeline.profile_keys() == {f"{IOS_APP}#ios#{OTHER_IDFV}", f"{ANDROID_APP}#android#{IDFV}"}
    # Ingest DLQ: the native event, the Segment one (by the IDFA its profile held), the broken body; the batch is
    # rewritten with the other device's event only, keeping its attributes and its age.
    ingest = _bodies(pipeline, pipeline.queues.ingest_dlq)
    assert ids["other"] in ingest and not {ids["native"], ids["segment"], ids["broken"], ids["batch"]} & set(ingest)
    [(rewritten, attributes)] = [v for k, v in ingest.items() if k != ids["other"]]
    assert json.loads(rewritten) == {"batch": [_other_event()]}
    assert ATTR_FAILED_AT_MS in attributes
    # Delivery DLQ: the envelope (device_ids) and the one naming only the Kochava device id.
    assert set(_bodies(pipeline, pipeline.queues.delivery_dlq)) == {ids["other_envelope"]}
    # Output: says what went, masks the ids.
    assert f"{IOS_APP}#ios#A1B2…(36)" in run.out
    assert "kochava-local-ingest-dlq: looked at 5, deleted 3, rewrote 1, failed 0" in run.out
    assert "1 other event(s) kept" in run.out and "matched device.id" in run.out
    assert "kochava-local-delivery-dlq: looked at 3, deleted 2, rewrote 0, failed 0" in run.out
    assert "removed 8 profile(s) and message(s)" in run.out
    for secret in (IDFV, IDFV.lower(), IDFA, KOCHAVA_ID, USER_ID, IP):
        assert secret not in run.out + run.err
    # Nothing is left hidden by the tool.
    for url in (pipeline.queues.ingest_dlq, pipeline.queues.delivery_dlq):
        assert snapshot(pipeline.queues.sqs, url).hidden == 0

    again = erase("--json", "erase", "--platform", "ios", "--device-id", IDFV)

    assert again.code == 0
    assert again.json()["removed"] == 0
    assert pipeline.profile_keys() == {f"{IOS_APP}#ios#{OTHER_IDFV}", f"{ANDROID_APP}#android#{IDFV}"}


def test_dry_run_changes_nothing_and_reports_what_would_go(pipeline: Pipeline, enricher: str) -> None:
    _seed_profiles(pipeline)
    ids = _seed_dlqs(pipeline)
    before = {
        url: snapshot(pipeline.queues.sqs, url) for url in (pipeline.queues.ingest_dlq, pipeline.queues.delivery_dlq)
    }

    run = erase("--json", "erase", "--platform", "ios", "--device-id", IDFV, "--dry-run")

    assert run.code == 0
    doc = run.json()
    assert doc["dry_run"] is True and doc["removed"] == 8
    assert doc["profiles"]["app_ids_source"] == f"the environment of function {enricher}"
    assert sorted(d["key"] for d in doc["profiles"]["deleted"]) == [
        f"{IOS_APP}#ios#A1B2…(36)",
        f"{SHOP_APP}#ios#A1B2…(36)",
    ]
    ingest = doc["dlqs"][0]
    assert {m["id"] for m in ingest["deleted"]} == {ids["native"], ids["segment"], ids["broken"]}
    assert [m["id"] for m in ingest["rewritten"]] == [ids["batch"]]
    assert len(pipeline.profile_keys()) == 4
    for url, snap in before.items():
        assert snapshot(pipeline.queues.sqs, url).messages == snap.messages


def test_app_erases_only_that_apps_profile(pipeline: Pipeline, enricher: str) -> None:
    _seed_profiles(pipeline)

    run = erase("erase", "--platform", "ios", "--device-id", IDFV, "--app", SHOP_BUNDLE)

    assert run.code == 0
    assert f"{IOS_APP}#ios#{IDFV}" in pipeline.profile_keys()
    assert f"{SHOP_APP}#ios#{IDFV}" not in pipeline.profile_keys()


def test_user_id_finds_the_devices_that_store_it(pipeline: Pipeline, enricher: str) -> None:
    _seed_profiles(pipeline)
    ids = _seed_dlqs(pipeline)

    run = erase("--json", "erase", "--user-id", USER_ID.upper())

    assert run.code == 0, run.err
    doc = run.json()
    assert doc["profiles"]["scanned"] == 4
    assert doc["devices"] == [{"platform": "ios", "device_id": "A1B2…(36)"}]
    assert pipeline.profile_keys() == {f"{IOS_APP}#ios#{OTHER_IDFV}", f"{ANDROID_APP}#android#{IDFV}"}
    assert ids["native"] not in _bodies(pipeline, pipeline.queues.ingest_dlq)


def test_scan_finds_profiles_under_guids_no_longer_configured(pipeline: Pipeline, enricher: str) -> None:
    pipeline.put_profiles({f"retired-guid#ios#{IDFV}": {"ip": IP}, f"{IOS_APP}#ios#{OTHER_IDFV}": {"ip": IP}})

    unscanned = erase("erase", "--platform", "ios", "--device-id", IDFV, "--no-scan")
    assert f"retired-guid#ios#{IDFV}" in pipeline.profile_keys()
    # not looked everywhere: said so, and no confirmation (exit 1), although nothing it looked at was left
    assert unscanned.code == 1 and "NOT LOOKED AT: the rest of the table (--no-scan)" in unscanned.out
    assert "NOT CONFIRMED" in unscanned.out

    scanned = erase("erase", "--platform", "ios", "--device-id", IDFV)  # the scan is the default
    assert scanned.code == 0, scanned.out
    assert pipeline.profile_keys() == {f"{IOS_APP}#ios#{OTHER_IDFV}"}


def test_a_profile_stored_under_another_spelling_of_the_id_is_erased(pipeline: Pipeline, enricher: str) -> None:
    """Issue 22: a profile stored (before ids were normalised) for Priv-Dev-1 survived ``erase --device-id
    priv-dev-1``, which said "removed 0" and exited 0, and so did the runbook's confirmation run."""
    pipeline.put_profiles({f"{IOS_APP}#ios#Priv-Dev-1": {"ip": IP}, f"{IOS_APP}#ios#{OTHER_IDFV}": {"ip": IP}})

    run = erase("--json", "erase", "--platform", "ios", "--device-id", "priv-dev-1")

    assert run.code == 0, run.out + run.err
    assert pipeline.profile_keys() == {f"{IOS_APP}#ios#{OTHER_IDFV}"}
    doc = run.json()
    assert doc["removed"] == 1
    assert doc["profiles"]["not_looked"] == [] and doc["profiles"]["remaining"] == []
    assert doc["profiles"]["checked_after_delete"] >= 1
    confirm = erase("--json", "erase", "--platform", "ios", "--device-id", "PRIV-DEV-1")
    assert (confirm.code, confirm.json()["removed"]) == (0, 0)


def test_reveal_prints_the_ids(pipeline: Pipeline, enricher: str) -> None:
    _seed_profiles(pipeline)
    run = erase("erase", "--platform", "ios", "--device-id", IDFV, "--reveal", "--dry-run")
    assert f"{IOS_APP}#ios#{IDFV}" in run.out


def test_app_ids_from_the_flag_or_the_shell_when_no_function_is_deployed(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed_profiles(pipeline)
    missing = erase("erase", "--platform", "ios", "--device-id", IDFV)
    assert missing.code == 1 and "no Kochava app GUIDs known" in missing.err

    # --app-id names the GUIDs to try by key; without the scan only those (and the erase says what it skipped)
    flagged = erase("--json", "erase", "--platform", "ios", "--device-id", IDFV, "--app-id", SHOP_APP, "--no-scan")
    assert flagged.code == 1 and [d["key"] for d in flagged.json()["profiles"]["deleted"]] == [
        f"{SHOP_APP}#ios#A1B2…(36)"
    ]
    assert flagged.json()["profiles"]["not_looked"]

    monkeypatch.setenv("KOCHAVA_APP_ID_IOS", IOS_APP)
    shell = erase("--json", "erase", "--platform", "ios", "--device-id", IDFV)
    assert shell.code == 0 and shell.json()["profiles"]["app_ids_source"] == "this shell's KOCHAVA_APP_ID_* variables"
    assert f"{IOS_APP}#ios#{IDFV}" not in pipeline.profile_keys()


@pytest.mark.parametrize(
    "argv",
    [
        ["erase"],
        ["erase", "--device-id", IDFV],
        ["erase", "--platform", "windows", "--device-id", IDFV],
        ["erase", "--platform", "ios", "--device-id", IDFV, "--app", "b", "--app-id", "g"],
        ["erase", "--platform", "ios", "--device-id", " "],
    ],
)
def test_bad_arguments_exit_2(argv: list[str]) -> None:
    assert main(argv, stdout=io.StringIO(), stderr=io.StringIO()) == 2


def test_missing_table_is_an_error_naming_it(aws: None) -> None:
    create_queues(boto3.client("sqs", region_name=REGION))  # the queues, but no table
    run = erase("erase", "--platform", "ios", "--device-id", IDFV, "--app-id", "g")
    assert run.code == 1 and "profile table kochava-local-device-profiles" in run.err


def test_stack_finds_the_dlqs_by_its_outputs_and_the_table_among_its_resources(aws: None) -> None:
    q = create_queues(boto3.client("sqs", region_name=REGION), stage="prod")
    put_ingest_dead(q, "mine-1", "invalid_event")
    template = {
        "Resources": {
            "DeviceProfiles": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "TableName": "kochava-prod-device-profiles",
                    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                    "BillingMode": "PAY_PER_REQUEST",
                },
            }
        },
        "Outputs": {
            "IngestQueueUrl": {"Value": q.ingest},
            "IngestDlqUrl": {"Value": q.ingest_dlq},
            "DeliveryQueueUrl": {"Value": q.delivery},
            "DeliveryDlqUrl": {"Value": q.delivery_dlq},
        },
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="kochava-prod", TemplateBody=json.dumps(template)
    )
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    Pipeline(q, dynamodb, "kochava-prod-device-profiles").put_profiles({f"{IOS_APP}#ios#{IDFV}": {"ip": IP}})
    out, err = io.StringIO(), io.StringIO()

    argv = ["--stack", "kochava-prod", "--region", REGION, "--wait-time-seconds", "0", "--json"]
    code = main([*argv, "erase", "--platform", "ios", "--device-id", IDFV, "--app-id", IOS_APP], stdout=out, stderr=err)

    assert code == 0, err.getvalue()
    doc = json.loads(out.getvalue())
    assert doc["profiles"]["table"] == "kochava-prod-device-profiles" and len(doc["profiles"]["deleted"]) == 1
    assert [(d["dlq"], len(d["deleted"])) for d in doc["dlqs"]] == [
        ("kochava-prod-ingest-dlq", 1),
        ("kochava-prod-delivery-dlq", 0),
    ]
