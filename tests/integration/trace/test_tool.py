"""``python -m tools.trace`` against moto: the real idempotency records, DLQ messages and CloudWatch Logs Insights
calls (moto runs the query but ignores its filter: the tool must pick the lines about each uuid itself)."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import boto3
import pytest

from functions.names import FUNCTION_DELIVERER, FUNCTION_ENRICHER
from tests.integration.dlq.helpers import IDFA, REGION, STAGE, counts, put_delivery_dead, put_ingest_dead
from tests.integration.trace.conftest import APP, Aws
from tools.trace.cli import main


def trace(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["--stage", STAGE, "--region", REGION, "--app", APP, "--wait-time-seconds", "0", *argv], stdout=out, stderr=err
    )
    return code, out.getvalue(), err.getvalue()


def traced(*argv: str) -> tuple[int, dict[str, dict[str, Any]]]:
    code, out, err = trace("--json", *argv)
    docs = [json.loads(line) for line in out.splitlines()]
    assert len(docs) == len([a for a in argv if not a.startswith("-")]), err
    return code, {d["uuid"]: d for d in docs}


def processed(**outcomes: dict[str, list[str]]) -> dict[str, Any]:
    """The enricher's line for one SQS message: the uuids it forwarded (by kind) and filtered (by event name)."""
    return {"message": "message processed", "service": FUNCTION_ENRICHER, "level": "INFO", **outcomes}


def test_each_uuid_gets_its_one_status(stack: Aws) -> None:
    stack.deliver("u-delivered")
    put_ingest_dead(stack.queues, "u-invalid", "invalid_event")
    stack.log(FUNCTION_ENRICHER, processed(filtered={"heartbeat": ["u-heartbeat"]}, forwarded={"event": ["u-queued"]}))
    stack.log(
        FUNCTION_ENRICHER,
        {
            "message": "event dead-lettered",
            "service": "enricher",
            "correlation_id": "u-purged",
            "reason": "invalid_event",
        },
    )
    stack.log(
        FUNCTION_DELIVERER,
        {"message": "transient failure: SQS will retry", "service": "deliverer", "correlation_id": "u-retried"},
    )

    code, by_uuid = traced("u-delivered", "u-invalid", "u-heartbeat", "u-queued", "u-purged", "u-retried")

    assert code == 0
    assert {u: d["status"] for u, d in by_uuid.items()} == {
        "u-delivered": "delivered",
        "u-invalid": "dead_lettered",
        "u-heartbeat": "filtered",
        "u-queued": "pending",
        "u-purged": "rejected",
        "u-retried": "pending",
    }
    delivered = by_uuid["u-delivered"]["details"]
    assert (delivered["kind"], delivered["http_status"], delivered["attempts"], delivered["app"]) == (
        "event",
        200,
        1,
        APP,
    )
    invalid = by_uuid["u-invalid"]["details"]
    assert (invalid["dlq"], invalid["reason"], invalid["field"]) == (
        "kochava-local-ingest-dlq",
        "invalid_event",
        "device.platform",
    )
    assert by_uuid["u-heartbeat"]["details"]["event_name"] == "heartbeat"
    assert counts(stack.queues.sqs, stack.queues.ingest_dlq) == (1, 0)  # looking moved nothing


def test_lines_about_other_events_are_not_taken_for_this_one(stack: Aws) -> None:
    """moto returns every line of the time range: the tool must keep only those about the uuid asked for."""
    stack.log(
        FUNCTION_DELIVERER,
        {"message": "delivered to Kochava", "service": "deliverer", "correlation_id": "u-other-1", "kind": "event"},
    )
    stack.log(FUNCTION_ENRICHER, processed(forwarded={"event": ["u-other-2"]}))

    code, by_uuid = traced("u-other")

    assert code == 1
    assert by_uuid["u-other"]["status"] == "not_found"
    assert by_uuid["u-other"]["log"] == []


def test_not_found_says_what_was_searched_and_exits_1(stack: Aws) -> None:
    put_delivery_dead(stack.queues, "u-someone-else", "retries_exhausted")

    code, out, _ = trace("--since", "6h", "u-nowhere")

    assert code == 1
    assert "u-nowhere  not_found" in out
    assert "kochava-local-idempotency" in out
    assert "kochava-local-ingest-dlq (0 message(s) looked at)" in out
    assert "kochava-local-delivery-dlq (1 message(s) looked at)" in out
    assert "/aws/lambda/kochava-local-enricher, /aws/lambda/kochava-local-deliverer" in out
    assert "CloudWatch Logs Insights" in out


def test_personal_data_in_errors_is_masked_unless_reveal(stack: Aws) -> None:
    put_ingest_dead(stack.queues, "u-private", "invalid_event")  # its error names the IDFA and the IP

    _, masked, _ = trace("u-private")
    _, revealed, _ = trace("--reveal", "u-private")

    assert IDFA not in masked and "6D92…(36)" in masked
    assert IDFA in revealed


def test_a_source_that_fails_is_reported_and_the_others_still_answer(stack: Aws) -> None:
    stack.dynamodb.delete_table(TableName=stack.table)
    put_ingest_dead(stack.queues, "u-still", "invalid_event")

    code, by_uuid = traced("u-still")

    assert by_uuid["u-still"]["status"] == "dead_lettered"
    assert "error" in by_uuid["u-still"]["searched"]["idempotency"]
    assert code == 1  # found, but maybe delivered since: the answer is incomplete


def test_no_stack_given_is_an_error(stack: Aws) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["--region", REGION, "u-1"], stdout=out, stderr=err) == 1
    assert "--stack kochava-<stage>" in err.getvalue()


@pytest.mark.parametrize("argv", [[], ["--since", "soon", "u-1"]])
def test_bad_arguments_exit_2(argv: list[str]) -> None:
    assert main(argv, stdout=io.StringIO(), stderr=io.StringIO()) == 2


def test_without_app_the_deployed_deliverers_app_guids_are_used(stack: Aws) -> None:
    role = boto3.client("iam").create_role(RoleName="deliverer", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def lambda_handler(event, context): pass")
    env = {"KOCHAVA_APP_ID_IOS": "ios-guid", "KOCHAVA_APP_IDS_BY_BUNDLE": '{"com.example": "bundle-guid"}'}
    boto3.client("lambda", region_name=REGION).create_function(
        FunctionName=f"kochava-{STAGE}-deliverer",
        Runtime="python3.11",
        Role=role,
        Handler="handler.lambda_handler",
        Code={"ZipFile": code.getvalue()},
        Environment={"Variables": env},
    )
    out = io.StringIO()
    argv = ["--stage", STAGE, "--region", REGION, "--wait-time-seconds", "0", "--json", "u-x"]
    assert main(argv, stdout=out, stderr=io.StringIO()) == 1
    searched = json.loads(out.getvalue())["searched"]["idempotency"]["text"]
    assert "apps bundle-guid, ios-guid" in searched


def test_unknown_app_guids_are_a_note_not_a_failure(stack: Aws) -> None:
    stack.deliver("u-known")
    out = io.StringIO()
    argv = ["--stage", STAGE, "--region", REGION, "--wait-time-seconds", "0", "--json", "u-known"]
    assert main(argv, stdout=out, stderr=io.StringIO()) == 0  # no deployed deliverer in moto: today's key needs none
    doc = json.loads(out.getvalue())
    assert doc["status"] == "delivered"
    assert "use --app" in doc["searched"]["idempotency"]["text"]
