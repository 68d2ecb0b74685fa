"""IAM least privilege: no `*` actions, each role writes only where its stage of the pipeline writes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.infra.support import Synthesized

WRITE_ACTIONS = {"sqs:SendMessage", "sqs:SendMessageBatch", "sqs:*"}


def _statements_of(synth: Synthesized, role: Any) -> list[dict[str, Any]]:
    role_id = synth.logical_id(role)
    statements: list[dict[str, Any]] = []
    for policy in synth.resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    inline = synth.template.to_json()["Resources"][role_id]["Properties"].get("Policies", [])
    for policy in inline:
        statements += policy["PolicyDocument"]["Statement"]
    return statements


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _resources_allowed(synth: Synthesized, role: Any, action: str) -> list[Any]:
    return [
        resource
        for statement in _statements_of(synth, role)
        if statement["Effect"] == "Allow" and action in _as_list(statement["Action"])
        for resource in _as_list(statement["Resource"])
    ]


def _arn(synth: Synthesized, construct: Any) -> dict[str, Any]:
    return {"Fn::GetAtt": [synth.logical_id(construct), "Arn"]}


def test_no_wildcard_actions_anywhere(default_stack: Synthesized) -> None:
    for policy in default_stack.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            for action in _as_list(statement["Action"]):
                assert "*" not in action.split(":", 1)[1], f"wildcard action {action}"


def test_lambda_roles_have_no_managed_policies(default_stack: Synthesized) -> None:
    for function in default_stack.stack.functions.all:
        role = default_stack.template.to_json()["Resources"][default_stack.logical_id(function.role)]
        assert "ManagedPolicyArns" not in role["Properties"]


def test_wildcard_resources_only_for_xray(default_stack: Synthesized) -> None:
    for policy in default_stack.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "*" in _as_list(statement["Resource"]):
                assert all(action.startswith("xray:") for action in _as_list(statement["Action"]))


def test_enricher_writes_only_to_the_delivery_queue_the_ingest_dlq_and_requeues_to_ingest(
    default_stack: Synthesized,
) -> None:
    stack = default_stack.stack
    sends = _resources_allowed(default_stack, stack.functions.enricher.role, "sqs:SendMessage")
    assert sorted(map(str, sends)) == sorted(
        map(
            str,
            [
                _arn(default_stack, stack.queues.delivery.queue),
                _arn(default_stack, stack.queues.ingest.dlq),
                # the documented amendment: delayed re-queue of installs waiting for Apple attribution
                _arn(default_stack, stack.queues.ingest.queue),
            ],
        )
    )
    assert _arn(default_stack, stack.queues.delivery.dlq) not in sends


def test_deliverer_writes_only_to_its_dlq_and_never_to_the_ingest_queue(default_stack: Synthesized) -> None:
    stack = default_stack.stack
    statements = _statements_of(default_stack, stack.functions.deliverer.role)
    sends = _resources_allowed(default_stack, stack.functions.deliverer.role, "sqs:SendMessage")
    assert sends == [_arn(default_stack, stack.queues.delivery.dlq)]
    ingest = {str(_arn(default_stack, stack.queues.ingest.queue)), str(_arn(default_stack, stack.queues.ingest.dlq))}
    for statement in statements:
        assert not ingest & {str(r) for r in _as_list(statement["Resource"])}, "deliverer touches the ingest queues"
    consume = _resources_allowed(default_stack, stack.functions.deliverer.role, "sqs:ChangeMessageVisibility")
    assert consume == [_arn(default_stack, stack.queues.delivery.queue)]


def test_table_access_is_item_level_only(default_stack: Synthesized) -> None:
    stack = default_stack.stack
    expected = {
        stack.functions.enricher: {(stack.tables.profiles, a) for a in ("BatchGetItem", "BatchWriteItem")},
        stack.functions.deliverer: {
            *((stack.tables.idempotency, a) for a in ("GetItem", "PutItem", "UpdateItem", "DeleteItem")),
            *((stack.tables.delivery_state, a) for a in ("GetItem", "UpdateItem")),
        },
    }
    for function, allowed in expected.items():
        dynamodb = {
            (str(statement["Resource"]), action.removeprefix("dynamodb:"))
            for statement in _statements_of(default_stack, function.role)
            for action in _as_list(statement["Action"])
            if action.startswith("dynamodb:")
        }
        assert dynamodb == {(str(_arn(default_stack, table)), action) for table, action in allowed}


def test_api_gateway_may_only_send_to_the_ingest_queue(default_stack: Synthesized) -> None:
    stack = default_stack.stack
    statements = _statements_of(default_stack, stack.ingest_api.integration_role)
    assert statements == [
        {"Action": "sqs:SendMessage", "Effect": "Allow", "Resource": _arn(default_stack, stack.queues.ingest.queue)}
    ]


# boto3 calls the Lambda code makes -> the IAM action that authorizes each.
_CALL_TO_ACTION = {
    "batch_get_item": "dynamodb:BatchGetItem",
    "batch_write_item": "dynamodb:BatchWriteItem",
    "get_item": "dynamodb:GetItem",
    "put_item": "dynamodb:PutItem",
    "update_item": "dynamodb:UpdateItem",
    "delete_item": "dynamodb:DeleteItem",
    "send_message": "sqs:SendMessage",
    "send_message_batch": "sqs:SendMessage",
    "change_message_visibility": "sqs:ChangeMessageVisibility",
    "change_message_visibility_batch": "sqs:ChangeMessageVisibility",
    "delete_message": "sqs:DeleteMessage",
    "delete_message_batch": "sqs:DeleteMessage",
}
_FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"


def _actions_called_by(*relative_files: str) -> set[str]:
    pattern = re.compile(r"\.(" + "|".join(sorted(_CALL_TO_ACTION, key=len, reverse=True)) + r")\(")
    called = set()
    for relative in relative_files:
        for path in sorted(_FUNCTIONS_DIR.glob(relative)):
            called |= {_CALL_TO_ACTION[name] for name in pattern.findall(path.read_text())}
    return called


def _all_allowed(synth: Synthesized, role: Any) -> set[str]:
    return {action for statement in _statements_of(synth, role) for action in _as_list(statement["Action"])}


def test_every_aws_call_in_the_lambda_code_is_allowed(default_stack: Synthesized) -> None:
    """Given the boto3 calls written in each function's code, the role allows every one (moto never checks IAM)."""
    stack = default_stack.stack
    enricher_calls = _actions_called_by("enricher/*.py", "adapters/sqs.py", "adapters/profiles_dynamodb.py")
    deliverer_calls = _actions_called_by("deliverer/*.py", "adapters/kochava_http.py")
    assert "dynamodb:BatchGetItem" in enricher_calls, "the scan must see the profile store's calls"
    assert enricher_calls <= _all_allowed(default_stack, stack.functions.enricher.role)
    assert deliverer_calls <= _all_allowed(default_stack, stack.functions.deliverer.role)
