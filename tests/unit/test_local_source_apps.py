"""``python -m tools.local --source-apps``: a binding that names no app the local stack sends to is refused before
anything starts, with the message the stack's synth gives (issue 22)."""

from __future__ import annotations

import json

import pytest

from functions.names import ENV_KOCHAVA_APP_ID_IOS, ENV_KOCHAVA_APP_IDS_BY_BUNDLE
from tools.local.__main__ import main
from tools.local.stack import LocalConfig, LocalStack


def test_a_bound_bundle_id_without_a_guid_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_KOCHAVA_APP_IDS_BY_BUNDLE, raising=False)
    assert main(["--once", "--source-apps", json.dumps({"ios-backend": ["com.example.ios"]})]) == 2
    err = capsys.readouterr().err
    assert "--source-apps: key 'ios-backend': 'com.example.ios' is neither a bundle id of" in err
    assert ENV_KOCHAVA_APP_IDS_BY_BUNDLE in err


def test_a_bundle_with_its_guid_in_the_shell_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_KOCHAVA_APP_IDS_BY_BUNDLE, json.dumps({"com.example.ios": "ko-ios-bundle"}))
    monkeypatch.setenv(ENV_KOCHAVA_APP_ID_IOS, "ko-ios")
    config = LocalConfig(source_apps={"ios-backend": ["com.example.ios", "ko-ios"]})
    assert config.binding_problems() == []
    assert LocalConfig(source_apps={"k": ["ko-typo"]}).binding_problems() != []


def test_the_stack_refuses_to_start_with_an_unresolved_binding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_KOCHAVA_APP_IDS_BY_BUNDLE, raising=False)
    with pytest.raises(ValueError, match=r"'com\.example\.ios' is neither"):
        LocalStack(LocalConfig(source_apps={"ios-backend": ["com.example.ios"]})).start()
