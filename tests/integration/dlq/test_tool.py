"""tools.dlq against moto: real boto3 calls, the project's queue names (stage ``local``), the CLI entry point."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.integration.dlq.helpers import (
    IDFA,
    IDFV,
    IP,
    REGION,
    TOKEN,
    FakeTty,
    Queues,
    counts,
    create_queues,
    drain,
    put_delivery_dead,
    put_ingest_dead,
    run_tool,
    snapshot,
)
from tools.dlq.sqs import DlqClient, MoveTask

DLQ_ONLY = {"stage", "reason", "field", "error", "failed_at_ms", "http_status", "response_body"}


def seed_mixed(q: Queues) -> dict[str, str]:
    """Both DLQs with every kind of message; returns MessageIds by a short name."""
    return {
        "inv1": put_ingest_dead(q, "e-inv1", "invalid_event", age_h=30),
        "inv2": put_ingest_dead(q, "e-inv2", "invalid_json", name="Screen View", age_h=2),
        "app": put_ingest_dead(q, "e-app", "missing_app_id", name="Install", age_h=5, route="segment"),
        "redriven_in": put_ingest_dead(q, "e-red", None, name="Level Up"),
        "retry_old": put_delivery_dead(q, "d-old", "retries_exhausted", age_h=50),
        "retry_new": put_delivery_dead(q, "d-new", "retries_exhausted", age_h=0.5),
        "retry_other": put_delivery_dead(q, "d-other", "retries_exhausted", name="Screen View", age_h=3),
        "rejected": put_delivery_dead(q, "d-rej", "kochava_rejected", age_h=3),
        "redriven_out": put_delivery_dead(q, "d-red", None, name="Purchase", kind="install"),
    }


# ---------------------------------------------------------------------------------------------------------- list


def test_list_is_read_only_and_groups_oldest_first(queues: Queues) -> None:
    seed_mixed(queues)
    before = {url: snapshot(queues.sqs, url) for url in (queues.ingest_dlq, queues.delivery_dlq)}

    run = run_tool("--json", "list")

    assert run.code == 0, run.err
    doc = run.json()
    by_dlq = {q["dlq"]: q for q in doc["queues"]}
    assert set(by_dlq) == {"kochava-local-ingest-dlq", "kochava-local-delivery-dlq"}
    ingest, delivery = by_dlq["kochava-local-ingest-dlq"], by_dlq["kochava-local-delivery-dlq"]
    assert (ingest["approximate_messages"], ingest["scanned"], ingest["source"]) == (4, 4, "kochava-local-ingest")
    assert [(g["reason"], g["event_name"], g["age"], g["count"]) for g in delivery["groups"]] == [
        ("retries_exhausted", "Purchase", "1d-3d", 1),
        ("kochava_rejected", "Purchase", "1h-6h", 1),
        ("retries_exhausted", "Screen View", "1h-6h", 1),
        ("retries_exhausted", "Purchase", "<1h", 1),  # 30 min
        ("redriven", "Purchase", "<1h", 1),  # just now (no failed_at_ms: SQS's timestamps)
    ]
    assert {g["stage"] for g in delivery["groups"]} == {"deliverer"}
    assert {(g["reason"], g["replayable"]) for g in ingest["groups"]} == {
        ("invalid_event", False),
        ("invalid_json", False),
        ("missing_app_id", True),
        ("redriven", True),
    }
    for url, snap in before.items():
        after = snapshot(queues.sqs, url)
        assert after.messages == snap.messages  # same ids, bodies and attributes
        assert (after.visible, after.hidden) == (snap.visible, 0)  # all visible again


def test_list_human_output(queues: Queues) -> None:
    seed_mixed(queues)
    run = run_tool("list")
    assert run.code == 0
    assert "kochava-local-delivery-dlq  (replays into kochava-local-delivery)" in run.out
    assert "ApproximateNumberOfMessages: 5" in run.out
    assert "not replayable" in run.out and "retries_exhausted" in run.out


def test_list_restores_visibility_when_interrupted(queues: Queues, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(25):
        put_delivery_dead(queues, f"d-{i}", "retries_exhausted")
    real_receive = DlqClient.receive
    calls = []

    def receive_then_ctrl_c(self: DlqClient, url: str, default_stage: str | None = None) -> Any:
        calls.append(url)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_receive(self, url, default_stage)

    monkeypatch.setattr(DlqClient, "receive", receive_then_ctrl_c)
    run = run_tool("--dlq", "delivery", "list")
    assert run.code == 130
    assert counts(queues.sqs, queues.delivery_dlq) == (25, 0)


# -------------------------------------------------------------------------------------------------------- replay


def test_filtered_replay_moves_exactly_the_selection(queues: Queues) -> None:
    ids = seed_mixed(queues)
    ingest_before = snapshot(queues.sqs, queues.ingest_dlq)

    run = run_tool("--json", "replay", "--reason", "retries_exhausted", "--event-name", "purchase")

    assert run.code == 0, run.err
    doc = run.json()
    delivery = next(q for q in doc["queues"] if q["dlq"] == "kochava-local-delivery-dlq")
    assert {m["id"] for m in delivery["moved_messages"]} == {ids["retry_old"], ids["retry_new"]}
    moved = drain(queues.sqs, queues.delivery)
    assert sorted(m["body"]["uuid"] for m in moved) == ["d-new", "d-old"]
    for m in moved:  # the source attributes are back, the DLQ-only ones are gone
        assert m["attributes"] == {"uuid": m["body"]["uuid"], "kind": "event", "event_name": "Purchase"}
    left = {m["body"]["uuid"] for m in drain(queues.sqs, queues.delivery_dlq)}
    assert left == {"d-other", "d-rej", "d-red"}
    assert drain(queues.sqs, queues.ingest) == []
    after = snapshot(queues.sqs, queues.ingest_dlq)
    assert after.messages == ingest_before.messages and after.hidden == 0


def test_replay_to_the_ingest_queue_keeps_route_request_id_and_received_at(queues: Queues) -> None:
    ids = seed_mixed(queues)
    run = run_tool("--json", "replay", "--reason", "missing_app_id", "--id", ids["app"], "--older-than", "4h")
    assert run.code == 0, run.err
    [moved] = drain(queues.sqs, queues.ingest)
    assert moved["body"]["uuid"] == "e-app"
    assert set(moved["attributes"]) == {"route", "request_id", "received_at_ms", "uuid", "event_name"}
    assert moved["attributes"]["route"] == "segment"
    assert moved["attributes"]["request_id"] == "req-e-app"
    assert counts(queues.sqs, queues.ingest_dlq) == (3, 0)
    assert counts(queues.sqs, queues.delivery_dlq) == (5, 0)


def test_replay_of_invalid_events_is_refused_without_force(queues: Queues) -> None:
    seed_mixed(queues)
    run = run_tool("--dlq", "ingest", "replay", "--reason", "invalid_event", "--reason", "invalid_json")
    assert run.code == 3
    assert "refused 2" in run.out and "fix the sender" in run.out
    assert counts(queues.sqs, queues.ingest_dlq) == (4, 0)
    assert drain(queues.sqs, queues.ingest) == []

    forced = run_tool("--dlq", "ingest", "--json", "replay", "--reason", "invalid_event", "--force")
    assert forced.code == 0
    assert [m["body"]["uuid"] for m in drain(queues.sqs, queues.ingest)] == ["e-inv1"]


def test_replay_everything_falls_back_on_moto_and_leaves_invalid_events(queues: Queues) -> None:
    seed_mixed(queues)
    run = run_tool("--json", "replay")
    doc = run.json()
    assert run.code == 3  # the invalid ones were refused; the rest moved
    by_dlq = {q["dlq"]: q for q in doc["queues"]}
    delivery, ingest = by_dlq["kochava-local-delivery-dlq"], by_dlq["kochava-local-ingest-dlq"]
    assert delivery["moved"] == 5 and delivery["mode"] == "per_message"
    assert any("not available" in n and "fell back" in n for n in delivery["notes"])
    assert ingest["moved"] == 2 and {r["reason"] for r in ingest["refused"]} == {"invalid_event", "invalid_json"}
    assert any("non-replayable" in n for n in ingest["notes"])
    assert counts(queues.sqs, queues.delivery_dlq) == (0, 0)
    assert counts(queues.sqs, queues.ingest_dlq) == (2, 0)
    assert len(drain(queues.sqs, queues.delivery)) == 5


def test_replay_everything_uses_the_move_task_when_sqs_has_it(queues: Queues, monkeypatch: pytest.MonkeyPatch) -> None:
    put_delivery_dead(queues, "d-1", "retries_exhausted")
    started: list[tuple[str, str, int | None]] = []
    polls = iter([MoveTask("h-1", "RUNNING", moved=0, to_move=1), MoveTask("h-1", "COMPLETED", moved=1, to_move=1)])

    def start(self: DlqClient, source_arn: str, destination_arn: str, rate: int | None) -> str:
        started.append((source_arn, destination_arn, rate))
        return "h-1"

    monkeypatch.setattr(DlqClient, "start_move_task", start)
    monkeypatch.setattr(DlqClient, "move_task", lambda self, arn: next(polls))
    monkeypatch.setattr("tools.dlq.ops.MOVE_TASK_POLL_S", 0.0)
    run = run_tool("--dlq", "delivery", "--json", "replay", "--rate", "20")
    assert run.code == 0, run.err
    [q] = run.json()["queues"]
    assert (q["mode"], q["moved"], q["move_task"]["status"]) == ("move_task", 1, "COMPLETED")
    assert started == [
        (
            "arn:aws:sqs:us-east-1:123456789012:kochava-local-delivery-dlq",
            "arn:aws:sqs:us-east-1:123456789012:kochava-local-delivery",
            20,
        )
    ]


def test_interrupted_replay_duplicates_but_loses_nothing(queues: Queues, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(15):
        put_delivery_dead(queues, f"d-{i}", "retries_exhausted")
    real_delete = DlqClient.delete_batch
    deletes = []

    def delete_then_fail(self: DlqClient, url: str, messages: Any) -> Any:
        deletes.append(len(messages))
        if len(deletes) == 2:  # the second batch was sent; the process dies before deleting it
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "injected"}}, "DeleteMessageBatch")
        return real_delete(self, url, messages)

    monkeypatch.setattr(DlqClient, "delete_batch", delete_then_fail)
    run = run_tool("--dlq", "delivery", "--json", "replay", "--reason", "retries_exhausted")
    assert run.code == 1
    [q] = run.json()["queues"]
    assert q["moved"] == 10 and len(q["sent_not_deleted"]) == 5 and q["interrupted"]

    source = {m["body"]["uuid"] for m in drain(queues.sqs, queues.delivery)}
    still_dead = [m["body"]["uuid"] for m in drain(queues.sqs, queues.delivery_dlq)]  # visible again at once
    assert source == {f"d-{i}" for i in range(15)}  # nothing lost...
    assert len(still_dead) == 5 and set(still_dead) <= source  # ...5 duplicated (both queues)


def test_ctrl_c_between_send_and_delete(queues: Queues, monkeypatch: pytest.MonkeyPatch) -> None:
    put_delivery_dead(queues, "d-1", "retries_exhausted")
    put_delivery_dead(queues, "d-2", "kochava_bad_response")

    def ctrl_c(self: DlqClient, url: str, messages: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(DlqClient, "delete_batch", ctrl_c)
    run = run_tool("--dlq", "delivery", "replay", "--reason", "retries_exhausted")
    assert run.code == 130
    assert "still in the DLQ" in run.out and "nothing was lost" in run.out
    assert [m["body"]["uuid"] for m in drain(queues.sqs, queues.delivery)] == ["d-1"]
    assert sorted(m["body"]["uuid"] for m in drain(queues.sqs, queues.delivery_dlq)) == ["d-1", "d-2"]


def test_dry_run_changes_nothing(queues: Queues) -> None:
    ids = seed_mixed(queues)
    before = {url: snapshot(queues.sqs, url) for url in (queues.ingest_dlq, queues.delivery_dlq)}
    run = run_tool("--json", "replay", "--dry-run")
    assert run.code == 3  # would refuse the invalid ones
    doc = run.json()
    assert doc["dry_run"] is True
    would = {m["id"] for q in doc["queues"] for m in q["would_move"]}
    assert would == set(ids.values()) - {ids["inv1"], ids["inv2"]}
    human = run_tool("replay", "--reason", "retries_exhausted", "--dry-run")
    assert "would move 3" in human.out and "nothing changed" in human.out
    purge = run_tool("purge", "--reason", "invalid_event", "--dry-run")
    assert purge.code == 0 and "would delete 1" in purge.out
    for url, snap in before.items():
        after = snapshot(queues.sqs, url)
        assert after.messages == snap.messages and after.hidden == 0
    assert counts(queues.sqs, queues.ingest) == (0, 0) and counts(queues.sqs, queues.delivery) == (0, 0)


# --------------------------------------------------------------------------------------------------------- purge


def test_purge_refuses_without_a_terminal_or_yes(queues: Queues) -> None:
    seed_mixed(queues)
    run = run_tool("purge", "--reason", "invalid_event")
    assert run.code == 3 and "--yes" in run.err
    assert counts(queues.sqs, queues.ingest_dlq) == (4, 0)


def test_purge_needs_a_selector_or_all(queues: Queues) -> None:
    assert run_tool("purge", "--yes").code == 2


def test_purge_asks_and_respects_the_answer(queues: Queues) -> None:
    ids = seed_mixed(queues)
    no = run_tool("purge", "--reason", "invalid_json", stdin=FakeTty("n\n"), tty=True)
    assert no.code == 3 and "type 'yes'" in no.err and ids["inv2"] in no.out
    assert counts(queues.sqs, queues.ingest_dlq) == (4, 0)
    yes = run_tool("purge", "--reason", "invalid_json", stdin=FakeTty("yes\n"), tty=True)
    assert yes.code == 0 and "deleted 1" in yes.out
    assert counts(queues.sqs, queues.ingest_dlq) == (3, 0)


def test_purge_with_yes_deletes_exactly_the_selection(queues: Queues) -> None:
    ids = seed_mixed(queues)
    run = run_tool("--json", "purge", "--reason", "invalid_event", "--reason", "invalid_json", "--yes")
    assert run.code == 0
    deleted = {m["id"] for q in run.json()["queues"] for m in q["deleted_messages"]}
    assert deleted == {ids["inv1"], ids["inv2"]}
    assert ids["inv1"] in run.err  # printed what it deletes (on stderr with --json)
    assert {m["id"] for m in drain(queues.sqs, queues.ingest_dlq)} == {ids["app"], ids["redriven_in"]}
    assert counts(queues.sqs, queues.delivery_dlq) == (5, 0)


# ---------------------------------------------------------------------------------------------------------- show


def test_show_masks_personal_data_unless_reveal(queues: Queues) -> None:
    ids = seed_mixed(queues)
    run = run_tool("show", ids["retry_old"], ids["inv1"])
    assert run.code == 0
    for secret in (IDFA, IDFV, IP, TOKEN):
        assert secret not in run.out
    assert "6D92…(36)" in run.out and "first failure" in run.out and "receive count" in run.out
    assert "reason         invalid_event" in run.out and "field          device.platform" in run.out
    revealed = run_tool("--json", "show", "--id", ids["inv1"], "--reveal")
    [m] = revealed.json()["messages"]
    assert m["body"]["device"]["advertising_id"] == IDFA and m["body"]["adservices"]["token"] == TOKEN
    assert m["attributes"]["error"] == f"invalid_event: device {IDFA} from {IP}"
    masked = run_tool("--json", "show", "--id", ids["inv1"]).json()["messages"][0]
    assert IDFA not in json.dumps(masked, ensure_ascii=False) and IP not in json.dumps(masked)
    assert masked["receive_count"] >= 1 and masked["first_failure"].endswith("Z")
    assert snapshot(queues.sqs, queues.ingest_dlq).hidden == 0


def test_show_limit_and_not_found(queues: Queues) -> None:
    seed_mixed(queues)
    assert len(run_tool("--json", "show", "--limit", "3").json()["messages"]) == 3
    missing = run_tool("--json", "show", "no-such-id")
    assert missing.code == 1 and missing.json()["not_found"] == ["no-such-id"]


# ------------------------------------------------------------------------------------------------ json, discovery


@pytest.mark.parametrize(
    "argv",
    [
        ["list"],
        ["show", "--limit", "2"],
        ["replay", "--dry-run"],
        ["replay", "--reason", "kochava_rejected"],
        ["purge", "--reason", "invalid_json", "--yes"],
        ["purge", "--reason", "invalid_json"],
    ],
)
def test_json_output_is_one_document(queues: Queues, argv: list[str]) -> None:
    seed_mixed(queues)
    run = run_tool("--json", *argv)
    doc = json.loads(run.out)  # the whole stdout is one JSON document
    assert isinstance(doc, dict)


def test_options_after_the_command_and_queue_url(queues: Queues) -> None:
    put_delivery_dead(queues, "d-1", "retries_exhausted")
    out, err = io.StringIO(), io.StringIO()
    from tools.dlq.cli import main

    code = main(
        ["list", "--queue-url", queues.delivery_dlq, "--region", REGION, "--json", "--wait-time-seconds", "0"],
        stdout=out,
        stderr=err,
    )
    assert code == 0, err.getvalue()
    [q] = json.loads(out.getvalue())["queues"]
    assert (q["dlq"], q["source"], q["scanned"]) == ("kochava-local-delivery-dlq", "kochava-local-delivery", 1)


def test_stack_outputs(aws: None) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    q = create_queues(sqs, stage="prod")
    put_delivery_dead(q, "d-1", "retries_exhausted")
    outputs = {
        "IngestQueueUrl": q.ingest,
        "IngestDlqUrl": q.ingest_dlq,
        "DeliveryQueueUrl": q.delivery,
        "DeliveryDlqUrl": q.delivery_dlq,
    }
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {k: {"Value": v} for k, v in outputs.items()},
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="kochava-prod", TemplateBody=json.dumps(template)
    )
    out, err = io.StringIO(), io.StringIO()
    from tools.dlq.cli import main

    code = main(["--stack", "kochava-prod", "--region", REGION, "--json", "list"], stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    doc = json.loads(out.getvalue())
    assert [(x["dlq"], x["source"], x["scanned"]) for x in doc["queues"]] == [
        ("kochava-prod-ingest-dlq", "kochava-prod-ingest", 0),
        ("kochava-prod-delivery-dlq", "kochava-prod-delivery", 1),
    ]


def test_unknown_stage_says_what_was_tried(queues: Queues) -> None:
    run = run_tool("--stage", "nope", "list")
    assert run.code == 1 and "kochava-nope-ingest-dlq" in run.err


def test_scan_limit_counts_what_it_saw_and_says_so(queues: Queues) -> None:
    for i in range(12):
        put_delivery_dead(queues, f"d-{i}", "retries_exhausted")
    run = run_tool("--dlq", "delivery", "--json", "list", "--scan-limit", "5")
    [q] = run.json()["queues"]
    assert (q["scanned"], q["truncated"], q["approximate_messages"]) == (5, True, 12)
    assert counts(queues.sqs, queues.delivery_dlq) == (12, 0)
    human = run_tool("--dlq", "delivery", "list", "--scan-limit", "5")
    assert "--scan-limit" in human.out


def test_queue_url_of_a_source_queue_is_refused(queues: Queues) -> None:
    from tools.dlq.cli import main

    err = io.StringIO()
    code = main(["--queue-url", queues.delivery, "--region", REGION, "list"], stdout=io.StringIO(), stderr=err)
    assert code == 1 and "kochava-local-delivery-dlq" in err.getvalue() and "source queue" in err.getvalue()


def test_replay_everything_with_force_moves_invalid_events_too(queues: Queues) -> None:
    seed_mixed(queues)
    run = run_tool("--dlq", "ingest", "--json", "replay", "--force")
    assert run.code == 0, run.err
    assert run.json()["queues"][0]["moved"] == 4
    assert counts(queues.sqs, queues.ingest_dlq) == (0, 0) and counts(queues.sqs, queues.ingest) == (4, 0)


def test_messages_failing_again_during_the_replay_are_not_replayed_again(
    queues: Queues, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live consumer dead-letters a replayed message within milliseconds (cause not fixed): the tool must not
    pick the new copy up in the same run, or it would loop."""
    for i in range(3):
        put_delivery_dead(queues, f"d-{i}", "kochava_rejected")
    real_send = DlqClient.send_batch

    def send_and_fail_again(self: DlqClient, url: str, messages: Any) -> Any:
        sent, failed = real_send(self, url, messages)
        for out in sent:  # what the deliverer does when Kochava still answers 400
            put_delivery_dead(queues, json.loads(out.body)["uuid"], "kochava_rejected")
        return sent, failed

    monkeypatch.setattr(DlqClient, "send_batch", send_and_fail_again)
    run = run_tool("--dlq", "delivery", "--json", "replay", "--reason", "kochava_rejected")
    [q] = run.json()["queues"]
    assert (q["moved"], q["arrived_during_run"]) == (3, 3)
    assert any("cause is not fixed" in n for n in q["notes"])
    assert counts(queues.sqs, queues.delivery) == (3, 0) and counts(queues.sqs, queues.delivery_dlq) == (3, 0)


def test_replay_of_big_messages_splits_batches_by_size(queues: Queues) -> None:
    for i in range(5):
        body = json.dumps({"v": 1, "uuid": f"big-{i}", "kind": "event", "payload": {"pad": "x" * 300_000}})
        queues.sqs.send_message(
            QueueUrl=queues.delivery_dlq,
            MessageBody=body,
            MessageAttributes={"reason": {"DataType": "String", "StringValue": "retries_exhausted"}},
        )
    run = run_tool("--dlq", "delivery", "--json", "replay", "--reason", "retries_exhausted")
    assert run.code == 0, run.err
    assert run.json()["queues"][0]["moved"] == 5
    assert counts(queues.sqs, queues.delivery) == (5, 0) and counts(queues.sqs, queues.delivery_dlq) == (0, 0)


def test_ctrl_c_while_waiting_for_the_move_task_says_how_to_cancel_it(
    queues: Queues, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_delivery_dead(queues, "d-1", "retries_exhausted")
    monkeypatch.setattr(DlqClient, "start_move_task", lambda self, src, dst, rate: "h-42")

    def ctrl_c(self: DlqClient, arn: str) -> MoveTask:
        raise KeyboardInterrupt

    monkeypatch.setattr(DlqClient, "move_task", ctrl_c)
    run = run_tool("--dlq", "delivery", "replay")
    assert run.code == 130
    assert "cancel-message-move-task --task-handle h-42" in run.out


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_replay_into_a_queue_that_is_not_the_dlqs_source_is_refused(queues: Queues, dry_run: list[str]) -> None:
    """The issue's repro: delivery envelopes replayed into the ingest queue would be dead-lettered as invalid."""
    put_delivery_dead(queues, "d-wrong", "retries_exhausted")
    before = snapshot(queues.sqs, queues.delivery_dlq)
    from tools.dlq.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = ["--queue-url", queues.delivery_dlq, "--source-url", queues.ingest, "--region", REGION, "replay", *dry_run]
    code = main(argv, stdout=out, stderr=err)

    assert code == 3, err.getvalue()
    text = out.getvalue()
    assert "refusing to replay kochava-local-delivery-dlq into kochava-local-ingest" in text
    assert "dead-letters into kochava-local-ingest-dlq" in text
    assert snapshot(queues.sqs, queues.delivery_dlq) == before  # nothing moved, nothing left hidden
    assert counts(queues.sqs, queues.ingest) == (0, 0)


def test_replay_into_a_queue_without_redrive_policy_is_refused_unless_force(queues: Queues) -> None:
    put_delivery_dead(queues, "d-elsewhere", "retries_exhausted")
    other = queues.sqs.create_queue(QueueName="kochava-local-scratch")["QueueUrl"]
    from tools.dlq.cli import main

    def replay(*extra: str) -> tuple[int, Any]:
        out, err = io.StringIO(), io.StringIO()
        argv = ["--queue-url", queues.delivery_dlq, "--source-url", other, "--region", REGION, "--json", "replay"]
        code = main([*argv, *extra], stdout=out, stderr=err)
        return code, json.loads(out.getvalue())

    code, doc = replay()
    assert code == 3
    [q] = doc["queues"]
    assert "it has no redrive policy" in q["wrong_queue"] and q["moved"] == 0
    assert counts(queues.sqs, queues.delivery_dlq) == (1, 0)

    code, doc = replay("--force")  # on-call knows better: moved
    assert code == 0 and doc["queues"][0]["moved"] == 1
    assert counts(queues.sqs, other) == (1, 0) and counts(queues.sqs, queues.delivery_dlq) == (0, 0)
