"""The AWS side of the privacy tool: where the profile table, the enricher and the DLQs are, and the table calls.

The DLQs are found exactly as ``tools.dlq`` finds them (its :mod:`tools.dlq.sqs` is reused: stack outputs, or the
project's names for a stage); the profile table and the enricher function are found among the stack's resources
(``--stack``) or by the project's names for the stage (``--stage`` / ``--endpoint-url``). The Kochava app GUIDs,
which are part of every profile key, are read from the deployed enricher's environment (the same variables the
Lambda reads), so an erase covers exactly the apps the pipeline writes profiles for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from functions.adapters.profiles_dynamodb import PK, from_item
from functions.names import (
    ENV_KOCHAVA_APP_ID_ANDROID,
    ENV_KOCHAVA_APP_ID_IOS,
    ENV_KOCHAVA_APP_IDS_BY_BUNDLE,
    FUNCTION_ENRICHER,
    PROFILE_TABLE,
)
from functions.pipeline.profiles import Profile
from functions.pipeline.settings import Settings, SettingsError
from infra.resources import ResourceNames
from tools.dlq.sqs import QueuePair, discover_from_names, discover_from_stack
from tools.oncall import DiscoveryError
from tools.samples import DEMO_ENV

APP_ID_VARIABLES = (ENV_KOCHAVA_APP_ID_IOS, ENV_KOCHAVA_APP_ID_ANDROID, ENV_KOCHAVA_APP_IDS_BY_BUNDLE)


@dataclass(frozen=True)
class Targets:
    """What an erase works on."""

    table: str
    function: str | None  # the enricher, whose environment names the Kochava app GUIDs
    pairs: list[QueuePair]


def discover_from_stack_resources(cloudformation: Any, sqs: Any, stack: str) -> Targets:
    """The DLQs from the stack's outputs, the profile table and the enricher from its resources."""
    pairs = discover_from_stack(cloudformation, stack)
    table = function = None
    try:
        pages = cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack)
        for page in pages:
            for resource in page.get("StackResourceSummaries") or []:
                kind, physical = resource.get("ResourceType"), str(resource.get("PhysicalResourceId") or "")
                if kind == "AWS::DynamoDB::Table" and physical.endswith(f"-{PROFILE_TABLE.key}"):
                    table = physical
                elif kind == "AWS::Lambda::Function" and physical.endswith(f"-{FUNCTION_ENRICHER}"):
                    function = physical
    except ClientError as exc:
        raise DiscoveryError(f"stack {stack!r}: {exc}") from exc
    if table is None:
        raise DiscoveryError(f"stack {stack!r} has no table named *-{PROFILE_TABLE.key} (pass --table NAME)")
    return Targets(table=table, function=function, pairs=pairs)


def discover_from_stage(sqs: Any, stage: str) -> Targets:
    names = ResourceNames(stage)
    return Targets(
        table=names.table(PROFILE_TABLE),
        function=names.function(FUNCTION_ENRICHER),
        pairs=discover_from_names(sqs, stage),
    )


# --------------------------------------------------------------------------------------------------- app GUIDs


@dataclass(frozen=True)
class AppIds:
    """The Kochava app GUIDs of the deployment, and where they were read."""

    source: str
    settings: Settings = field(default_factory=Settings)
    explicit: tuple[str, ...] = ()  # --app-id: exactly these, for every platform

    def for_platform(self, platform: str) -> list[str]:
        """Every GUID a profile of this platform can be keyed by: the platform's and every per-bundle one."""
        if self.explicit:
            return list(self.explicit)
        platform_id = self.settings.app_id_for(platform, None)
        guids = [platform_id] if platform_id else []
        return list(dict.fromkeys([*guids, *self.settings.kochava_app_ids_by_bundle.values()]))

    def for_bundle(self, platform: str, bundle: str) -> list[str]:
        """The one GUID the enricher keys this bundle's profiles by (the bundle's, else the platform's)."""
        app_id = self.settings.app_id_for(platform, bundle)
        return [app_id] if app_id else []


def function_environment(lambda_client: Any, function: str) -> Mapping[str, str] | None:
    """The deployed function's environment variables; None when there is no such function (e.g. the local stack,
    whose handlers run in-process)."""
    try:
        config = lambda_client.get_function_configuration(FunctionName=function)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise
    return dict((config.get("Environment") or {}).get("Variables") or {})


def resolve_app_ids(
    explicit: list[str],
    read_function: Callable[[], Mapping[str, str] | None],
    function: str | None,
    *,
    local: bool,
    environ: Mapping[str, str] = os.environ,
) -> AppIds:
    """The GUIDs, first found of: ``--app-id`` flags; the deployed enricher's environment; on the local stack, what
    ``make local`` runs with (this shell's ``KOCHAVA_APP_ID_*`` variables, else the demo GUIDs); elsewhere this
    shell's ``KOCHAVA_APP_ID_*`` variables (as ``tools.transform`` reads them)."""
    if explicit:
        return AppIds("--app-id", explicit=tuple(dict.fromkeys(explicit)))
    env = read_function() if function else None
    if env is not None and any(env.get(name) for name in APP_ID_VARIABLES):
        return AppIds(f"the environment of function {function}", _settings(env, f"function {function}"))
    shell = {name: environ[name] for name in APP_ID_VARIABLES if environ.get(name)}
    if local:  # tools.local gives its handlers these variables, else the demo GUIDs
        source = "the local stack's: this shell's KOCHAVA_APP_ID_* variables, else the demo GUIDs"
        return AppIds(source, _settings({**DEMO_ENV, **shell}, "this shell"))
    if shell:
        return AppIds("this shell's KOCHAVA_APP_ID_* variables", _settings(shell, "this shell"))
    raise DiscoveryError(
        "no Kochava app GUIDs known (they are part of every profile key): pass --app-id GUID for each app, "
        f"or set {', '.join(APP_ID_VARIABLES)}"
    )


def _settings(env: Mapping[str, str], where: str) -> Settings:
    try:
        return Settings.from_env({name: env[name] for name in APP_ID_VARIABLES if name in env})
    except SettingsError as exc:
        raise DiscoveryError(f"{where}: {exc}") from exc


# ------------------------------------------------------------------------------------------------ the table


class ProfileTable:
    """The device-profile table, through the low-level client (the item format is the enricher adapter's)."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    def check(self) -> None:
        """Fail early, naming the table, when it does not exist or cannot be read."""
        try:
            self.client.describe_table(TableName=self.name)
        except ClientError as exc:
            raise DiscoveryError(f"profile table {self.name}: {exc}") from exc

    def get(self, key: str) -> Profile | None:
        item = self.client.get_item(TableName=self.name, Key={PK: {"S": key}}, ConsistentRead=True).get("Item")
        return from_item(item)[1] if item else None

    def delete(self, key: str) -> Profile | None:
        """Delete one item; returns what it held (None: there was none)."""
        old = self.client.delete_item(TableName=self.name, Key={PK: {"S": key}}, ReturnValues="ALL_OLD")
        item = old.get("Attributes")
        return from_item(item)[1] if item else None

    def scan(self) -> Iterator[tuple[str, Profile]]:
        """Every item of the table (a full read: see docs/privacy.md for what it costs)."""
        for page in self.client.get_paginator("scan").paginate(TableName=self.name):
            for item in page.get("Items") or []:
                yield from_item(item)
