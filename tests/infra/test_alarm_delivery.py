"""Every alarm can reach on-call: each alarm action is walked to its SNS topic, the topic's policy and its KMS key,
and both policies are evaluated for the request CloudWatch makes when that alarm fires.

A topic policy in CloudFormation replaces SNS's default policy, so an encrypted topic whose policy only denies
non-TLS requests silently drops every alarm ("... is not authorized to perform: SNS:Publish ... because no
resource-based policy allows"). The small evaluator below knows the parts of IAM policy evaluation these
documents use (explicit deny wins, an allow is needed; Principal, Action, Resource with wildcards; the condition
operators StringEquals, StringLike, ArnLike, ArnEquals, Bool) and refuses anything else, so the test fails rather
than guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import pytest

from tests.infra.support import Synthesized

ACCOUNT, REGION, PARTITION = "111122223333", "eu-west-1", "aws"
PSEUDO = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": PARTITION}
CLOUDWATCH = "cloudwatch.amazonaws.com"


@dataclass(frozen=True)
class Request:
    """What CloudWatch asks when alarm ``source_arn`` fires: ``action`` on ``resource``."""

    action: str
    resource: str
    source_arn: str
    source_account: str = ACCOUNT
    service: str = CLOUDWATCH
    context: dict[str, str] = field(default_factory=dict)

    def key(self, name: str) -> str | None:
        values = {
            "aws:sourcearn": self.source_arn,
            "aws:sourceaccount": self.source_account,
            "aws:securetransport": "true",  # CloudWatch calls SNS and KMS over TLS
        }
        return values.get(name.lower(), self.context.get(name))


def resolve(value: Any, template: dict[str, Any]) -> Any:
    """Resolve Ref / Fn::GetAtt Arn / Fn::Join with the pseudo parameters above."""
    if isinstance(value, list):
        return [resolve(v, template) for v in value]
    if not isinstance(value, dict):
        return value
    if "Ref" in value:
        ref = value["Ref"]
        if ref in PSEUDO:
            return PSEUDO[ref]
        resource = template["Resources"][ref]
        if resource["Type"] == "AWS::SNS::Topic":
            return f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:{resource['Properties']['TopicName']}"
        raise AssertionError(f"cannot resolve Ref {ref}")
    if "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        resource = template["Resources"][logical_id]
        if resource["Type"] == "AWS::KMS::Key" and attribute == "Arn":
            return f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/{logical_id}"
        raise AssertionError(f"cannot resolve GetAtt {value}")
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(str(resolve(part, template)) for part in parts)
    return {k: resolve(v, template) for k, v in value.items()}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _condition_holds(operator: str, key: str, expected: Any, request: Request) -> bool:
    actual = request.key(key)
    if actual is None:
        return False
    wanted = [str(v) for v in _as_list(expected)]
    if operator in ("StringEquals", "ArnEquals"):
        return actual in wanted
    if operator in ("StringLike", "ArnLike"):
        return any(fnmatchcase(actual, pattern) for pattern in wanted)
    if operator == "Bool":
        return actual.lower() in (w.lower() for w in wanted)
    raise AssertionError(f"condition operator {operator} not understood by this test: extend it")


def _matches(statement: dict[str, Any], request: Request) -> bool:
    principal = statement.get("Principal")
    if principal != "*" and not (
        isinstance(principal, dict)
        and (principal.get("AWS") == "*" or request.service in _as_list(principal.get("Service", [])))
    ):
        return False
    if not any(fnmatchcase(request.action.lower(), a.lower()) for a in _as_list(statement["Action"])):
        return False
    if not any(fnmatchcase(request.resource, r) for r in _as_list(statement.get("Resource", "*"))):
        return False
    for operator, pairs in statement.get("Condition", {}).items():
        for key, expected in pairs.items():
            if not _condition_holds(operator, key, expected, request):
                return False
    return True


def allowed(policy: dict[str, Any], request: Request) -> bool:
    """IAM's rule for one resource policy: any matching Deny refuses; otherwise a matching Allow is needed."""
    statements = _as_list(policy["Statement"])
    if any(s["Effect"] == "Deny" and _matches(s, request) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and _matches(s, request) for s in statements)


def alarm_arn(name: str) -> str:
    return f"arn:{PARTITION}:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"


@dataclass(frozen=True)
class Route:
    """One alarm action resolved: the topic, its policy, its key's policy."""

    alarm: str
    topic_arn: str
    topic_policy: dict[str, Any]
    key_arn: str
    key_policy: dict[str, Any]


def routes(synth: Synthesized) -> list[Route]:
    template = synth.template.to_json()
    resources = template["Resources"]
    policies = {
        topic["Ref"]: resolve(r["Properties"]["PolicyDocument"], template)
        for r in resources.values()
        if r["Type"] == "AWS::SNS::TopicPolicy"
        for topic in r["Properties"]["Topics"]
    }
    out = []
    for alarm in (r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"):
        actions = [*alarm.get("AlarmActions", []), *alarm.get("OKActions", [])]
        assert actions, f"alarm {alarm['AlarmName']} notifies nobody"
        for action in actions:
            topic_id = action["Ref"]
            topic = resources[topic_id]
            assert topic["Type"] == "AWS::SNS::Topic", f"{alarm['AlarmName']}: action is not an SNS topic"
            assert topic_id in policies, f"topic {topic_id} has no topic policy"
            key_ref = topic["Properties"]["KmsMasterKeyId"]
            key_id = key_ref["Fn::GetAtt"][0]
            key_policy = resolve(resources[key_id]["Properties"]["KeyPolicy"], template)
            out.append(
                Route(
                    alarm["AlarmName"],
                    resolve(action, template),
                    policies[topic_id],
                    resolve(key_ref, template),
                    key_policy,
                )
            )
    return out


def can_publish(route: Route, source_arn: str, source_account: str = ACCOUNT) -> bool:
    """Both halves of an alarm notification: sns:Publish on the topic, the data key from the topic's KMS key."""
    publish = Request("sns:Publish", route.topic_arn, source_arn, source_account)
    data_key = Request("kms:GenerateDataKey", route.key_arn, source_arn, source_account)
    decrypt = Request("kms:Decrypt", route.key_arn, source_arn, source_account)
    return (
        allowed(route.topic_policy, publish)
        and allowed(route.key_policy, data_key)
        and allowed(route.key_policy, decrypt)
    )


@pytest.mark.parametrize("variant", ["default_stack", "iam_stack"])
def test_every_alarm_can_publish_to_its_topic_and_use_its_key(variant: str, request: pytest.FixtureRequest) -> None:
    synth: Synthesized = request.getfixturevalue(variant)
    found = routes(synth)
    assert len({r.alarm for r in found}) == len(synth.resources("AWS::CloudWatch::Alarm"))
    refused = [r.alarm for r in found if not can_publish(r, alarm_arn(r.alarm))]
    assert not refused, f"these alarms could not notify on-call: {refused}"


def test_only_this_stages_alarms_in_this_account_may_publish(default_stack: Synthesized) -> None:
    route = routes(default_stack)[0]
    prefix = default_stack.stack.names.prefix
    assert can_publish(route, alarm_arn(f"{prefix}-Anything"))
    assert not can_publish(route, alarm_arn("someone-else-Alarm")), "another stack's alarm"
    assert not can_publish(route, alarm_arn(f"{prefix}-Anything"), source_account="999999999999"), "other account"
    assert not can_publish(route, f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:rule/{prefix}-x"), "not an alarm"


def test_the_evaluator_refuses_a_topic_policy_that_only_denies_plain_http(default_stack: Synthesized) -> None:
    """The policy this stack used to have: TLS-only, no allow. The walk must call it a failure."""
    route = routes(default_stack)[0]
    deny_only = {
        "Statement": [s for s in route.topic_policy["Statement"] if s["Effect"] == "Deny"],
    }
    assert deny_only["Statement"], "the TLS-only deny is still there"
    broken = Route(route.alarm, route.topic_arn, deny_only, route.key_arn, route.key_policy)
    assert not can_publish(broken, alarm_arn(route.alarm))
