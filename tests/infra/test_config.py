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
        ("kochavaUrl", "http://control.kochava.com/track/json", "kochavaUrl.*https://"),
        ("adservicesUrl", "http://api-adservices.apple.com/api/v1/", "adservicesUrl"),
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


def test_a_bound_bundle_id_without_a_guid_fails_with_a_clear_message() -> None:
    """The README's own example binding with per-platform GUIDs only: the bundle reaches no GUID of its own, so the
    key would be judged by a bundle id events can claim on any platform. Synth refuses it (issue 22)."""
    context = {
        "kochavaAppIdIos": "ko-ios",
        "kochavaAppIdAndroid": "ko-android",
        "sourceApps": {"ios-backend": ["com.example.ios"]},
    }
    with pytest.raises(ConfigError) as caught:
        PipelineConfig.from_context(context.get)
    message = str(caught.value)
    assert "context 'sourceApps': key 'ios-backend': 'com.example.ios' is neither a bundle id of" in message
    assert "kochavaAppIdsByBundle" in message and "ko-android, ko-ios" in message


def test_bindings_resolve_to_configured_guids() -> None:
    config = PipelineConfig.from_context(
        {
            "kochavaAppIdIos": "ko-ios",
            "kochavaAppIdsByBundle": {"com.example.ios": "ko-bundle"},
            "sourceApps": '{"ios-backend": ["com.example.ios"], "platform": ["ko-ios"]}',
        }.get
    )
    assert config.source_apps == {"ios-backend": ["com.example.ios"], "platform": ["ko-ios"]}
    assert config.require_bound_keys is True  # the default: once a key is bound, every key must be
    with pytest.raises(ConfigError, match="'ko-typo' is neither"):
        PipelineConfig.from_context({"kochavaAppIdIos": "ko-ios", "sourceApps": {"k": ["ko-typo"]}}.get)
    assert PipelineConfig.from_context({"requireBoundKeys": "false"}.get).require_bound_keys is False
    with pytest.raises(ConfigError, match="requireBoundKeys"):
        PipelineConfig.from_context({"requireBoundKeys": "sometimes"}.get)
