"""The context keys -> PipelineConfig."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.names import INGEST_QUEUE
from infra.config import ConfigError, PipelineConfig


def test_defaults_without_context() -> None:
    config = PipelineConfig.from_context({}.get)
    assert config == PipelineConfig()
    assert config.stage == "dev" and config.auth_mode == "apiKey"
    assert config.max_receive_count == INGEST_QUEUE.max_receive_count
    assert (config.profile_ttl_days, config.profile_backup_days) == (180, 35)


def test_strings_from_the_command_line_and_json_from_cdk_json_are_both_accepted() -> None:
    from_cli = PipelineConfig.from_context(
        {
            "stage": "prod",
            "kochavaAppIdsByBundle": '{"com.a": "g1"}',
            "adservicesResolve": "false",
            "throttleRateLimit": "50.5",
            "quotaLimit": "1000",
            "maxReceiveCount": "3",
        }.get
    )
    from_json = PipelineConfig.from_context(
        {
            "stage": "prod",
            "kochavaAppIdsByBundle": {"com.a": "g1"},
            "adservicesResolve": False,
            "throttleRateLimit": 50.5,
            "quotaLimit": 1000,
            "maxReceiveCount": 3,
        }.get
    )
    assert from_cli == from_json
    assert from_cli.kochava_app_ids_by_bundle == {"com.a": "g1"} and from_cli.adservices_resolve is False


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("authMode", "cognito", "authMode"),
        ("maxReceiveCount", "0", "maxReceiveCount"),
        ("delivererMaxConcurrency", "1", "delivererMaxConcurrency"),
        ("kochavaAppIdsByBundle", "[1]", "kochavaAppIdsByBundle"),
        ("kochavaAppIdsByBundle", "{not json", "kochavaAppIdsByBundle"),
        ("stage", "Prod_1", "stage"),
        ("logRetentionDays", "31", "logRetentionDays"),
        ("adservicesResolve", "maybe", "adservicesResolve"),
        ("profileTtlDays", "0", "profileTtlDays"),
        ("profileBackupDays", "36", "profileBackupDays"),
    ],
)
def test_bad_values_name_the_key(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PipelineConfig.from_context({key: value}.get)


def context_keys() -> list[str]:
    """Every key ``from_context`` asks for, recorded by a getter that answers nothing."""
    asked: list[str] = []

    def record(key: str) -> None:
        asked.append(key)

    PipelineConfig.from_context(record)
    return sorted(set(asked))


def test_every_key_is_documented() -> None:
    """docs/deploy.md lists every context key the config reads."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "deploy.md").read_text()
    keys = context_keys()
    assert "stage" in keys and "authMode" in keys
    assert [key for key in keys if f"`{key}`" not in docs] == []
