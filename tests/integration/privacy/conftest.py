"""Fixtures for the privacy tool's tests: moto with test credentials, the project's queues and the profile table
(stage ``local``), and the enricher function deployed with its app GUIDs (moto stores it; nothing runs)."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from functions.adapters.profiles_dynamodb import DynamoDbProfileStore
from functions.names import (
    ENV_KOCHAVA_APP_ID_ANDROID,
    ENV_KOCHAVA_APP_ID_IOS,
    ENV_KOCHAVA_APP_IDS_BY_BUNDLE,
    FUNCTION_ENRICHER,
    HANDLER_ENRICHER,
    PROFILE_TABLE,
)
from functions.pipeline.profiles import Profile
from infra.resources import ResourceNames
from tests.integration.dlq.conftest import aws  # noqa: F401 (the fixture: moto with test credentials)
from tests.integration.dlq.helpers import REGION, STAGE, Queues, create_queues
from tools.local.aws import create_table

IOS_APP = "koios-guid"
ANDROID_APP = "koandroid-guid"
SHOP_APP = "koshop-guid"  # the per-bundle GUID of com.example.shop
SHOP_BUNDLE = "com.example.shop"
FUNCTION_ENV = {
    ENV_KOCHAVA_APP_ID_IOS: IOS_APP,
    ENV_KOCHAVA_APP_ID_ANDROID: ANDROID_APP,
    ENV_KOCHAVA_APP_IDS_BY_BUNDLE: json.dumps({SHOP_BUNDLE: SHOP_APP}),
}


@dataclass
class Pipeline:
    queues: Queues
    dynamodb: Any
    table: str

    def put_profiles(self, profiles: dict[str, Profile]) -> None:
        """Write profiles as the enricher does (its adapter, its item format)."""
        DynamoDbProfileStore(self.dynamodb, self.table).put_many(profiles, expires_at=2_000_000_000)

    def profile_keys(self) -> set[str]:
        return {item["pk"]["S"] for item in self.dynamodb.scan(TableName=self.table)["Items"]}


@pytest.fixture
def pipeline(aws: None, monkeypatch: pytest.MonkeyPatch) -> Pipeline:  # noqa: F811 (aws: the imported fixture)
    for name in FUNCTION_ENV:  # the tool would take this shell's app GUIDs
        monkeypatch.delenv(name, raising=False)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    table = create_table(dynamodb, ResourceNames(STAGE), PROFILE_TABLE)
    return Pipeline(create_queues(boto3.client("sqs", region_name=REGION)), dynamodb, table)


@pytest.fixture
def enricher(pipeline: Pipeline) -> str:
    """The enricher function as the stack deploys it, with its app GUID variables."""
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(
        RoleName="enricher-role",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("functions/enricher/handler.py", "def lambda_handler(event, context):\n    return None\n")
    name = ResourceNames(STAGE).function(FUNCTION_ENRICHER)
    boto3.client("lambda", region_name=REGION).create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role,
        Handler=HANDLER_ENRICHER,
        Code={"ZipFile": code.getvalue()},
        Environment={"Variables": FUNCTION_ENV},
    )
    return name
