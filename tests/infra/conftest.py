"""Synthesizes the stack once per test session (two variants) for every infra test.

The context is the repo's ``cdk.json`` (feature flags) plus the test's own keys, so the in-process synth matches
what ``cdk synth`` produces. Lambda assets come from the same cached builder as a real synth (``.build/``).
"""

from __future__ import annotations

import pytest

from infra.bundling import LambdaAssetBuilder
from infra.constructs.functions import LAMBDA_RUNTIME, runtime_python_version
from tests.infra.support import Synthesized, synthesize


@pytest.fixture(scope="session")
def asset_builder() -> LambdaAssetBuilder:
    return LambdaAssetBuilder(runtime_python_version(LAMBDA_RUNTIME))


@pytest.fixture(scope="session")
def default_stack(tmp_path_factory: pytest.TempPathFactory, asset_builder: LambdaAssetBuilder) -> Synthesized:
    """The stack as `cdk deploy` builds it with an iOS app GUID, an alarm email and one key bound to an app."""
    context = {
        "kochavaAppIdIos": "koios-test-guid",
        "alarmEmail": "oncall@example.com",
        "kochavaAppIdsByBundle": {"com.example.ios": "koios-test-guid"},
        "sourceApps": {"ios-backend": ["com.example.ios", "koios-test-guid"]},
    }
    return synthesize(tmp_path_factory.mktemp("cdk-default"), context, asset_builder)


@pytest.fixture(scope="session")
def iam_stack(tmp_path_factory: pytest.TempPathFactory, asset_builder: LambdaAssetBuilder) -> Synthesized:
    """A stage with IAM (SigV4) authorization and non-default redrive and concurrency settings."""
    context = {
        "stage": "test",
        "authMode": "iam",
        "maxReceiveCount": "3",
        "delivererMaxConcurrency": "7",
        "kochavaAppIdsByBundle": '{"com.example.app": "guid-bundle"}',
        "profileTtlDays": "90",
        "profileBackupDays": "7",
    }
    return synthesize(tmp_path_factory.mktemp("cdk-iam"), context, asset_builder)
