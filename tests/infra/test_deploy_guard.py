"""No Kochava app GUID, no deploy: the guard's rules (infra/deploy_guard.py) and the annotation the CLI acts on.

The CLI side (a real ``cdk deploy`` refused before it reaches AWS) is in test_cdk_cli.py.
"""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, CfnWaitConditionHandle, Stack, assertions

from infra.config import PipelineConfig
from infra.deploy_guard import guard_app_ids, missing_app_ids
from tests.infra.support import REPO_ROOT, Synthesized


def _config(**context: object) -> PipelineConfig:
    return PipelineConfig.from_context(context.get)


def test_no_guid_at_all_names_both_platform_keys_and_the_bundle_key() -> None:
    [problem] = missing_app_ids(_config())
    assert "no Kochava app GUID for ios and android events" in problem
    assert "-c kochavaAppIdIos=<guid> -c kochavaAppIdAndroid=<guid>" in problem
    assert "kochavaAppIdsByBundle" in problem and "missing_app_id" in problem


def test_one_platform_missing_names_only_its_key() -> None:
    [problem] = missing_app_ids(_config(kochavaAppIdIos="ko-ios"))
    assert "for android events: give -c kochavaAppIdAndroid=<guid> (" in problem
    assert "kochavaAppIdIos" not in problem


@pytest.mark.parametrize(
    "context",
    [
        {"kochavaAppIdIos": "ko-ios", "kochavaAppIdAndroid": "ko-android"},
        {"kochavaAppIdsByBundle": '{"com.example.app": "ko-app"}'},
        {"kochavaAppIdIos": "ko-ios", "kochavaAppIdsByBundle": {"com.a": "ko-a"}},
    ],
)
def test_a_guid_per_platform_or_per_bundle_is_enough(context: dict[str, object]) -> None:
    assert missing_app_ids(_config(**context)) == []


def test_the_test_stacks_with_guids_per_bundle_are_not_refused(
    default_stack: Synthesized, iam_stack: Synthesized
) -> None:
    """Both test stacks give GUIDs per bundle (the default one an iOS GUID too): neither error nor warning."""
    anything = assertions.Match.string_like_regexp(".*Kochava app GUID.*")
    for synth in (default_stack, iam_stack):
        assert synth.annotations.find_warning("*", anything) == []
        assert synth.annotations.find_error("*", anything) == []


def _guarded(**context: object) -> Stack:
    """A stack guarded with ``context``, in an app with the repo's feature flags (cdk.json) as ``cdk`` runs it."""
    flags = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    stack = Stack(App(context=flags), "guarded")
    CfnWaitConditionHandle(stack, "Placeholder")  # CloudFormation refuses a template without resources
    guard_app_ids(stack, _config(**context))
    return stack


def test_without_a_guid_the_synth_stops_with_the_message_naming_the_keys() -> None:
    stack = _guarded(kochavaAppIdIos="ko-ios")
    with pytest.raises(RuntimeError) as refused:
        assertions.Template.from_stack(stack)
    message = str(refused.value)
    assert "Resources section" not in message, "only the guard's refusal"
    assert "deploy refused: no Kochava app GUID for android events: give -c kochavaAppIdAndroid=<guid>" in message
    assert "add -c allowMissingAppIds=true" in message


def test_allow_missing_app_ids_turns_the_refusal_into_a_warning() -> None:
    annotations = assertions.Annotations.from_stack(_guarded(kochavaAppIdIos="ko-ios", allowMissingAppIds="true"))
    message = assertions.Match.string_like_regexp(".*no Kochava app GUID for android events.*")
    assert annotations.find_error("*", message) == []
    assert len(annotations.find_warning("*", message)) == 1
