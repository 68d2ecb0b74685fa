"""``python -m tools.transform`` on Segment input and with a source binding, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from functions.names import ENV_KOCHAVA_APP_IDS_BY_BUNDLE, ENV_SOURCE_APPS
from tools.samples import DEMO_ENV, GOLDEN_NOW, SAMPLES_DIR

ROOT = Path(__file__).resolve().parents[2]


def run(stdin: bytes, *args: str, **env: str) -> tuple[int, list[dict[str, Any]], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.transform", "--now", GOLDEN_NOW, *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, **DEMO_ENV, **env},
        timeout=120,
        check=False,
    )
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr.decode()


def test_page_group_and_alias_are_reported_filtered_with_their_type() -> None:
    status, lines, _ = run((SAMPLES_DIR / "segment_library_batch.json").read_bytes(), "--format", "segment")
    assert status == 0
    filtered = [(line["uuid"], line["status"], line["reason"], line["type"]) for line in lines[-3:]]
    assert filtered == [
        ("seg-0034-page", "filtered", "filtered_event", "page"),
        ("seg-0035-group", "filtered", "filtered_event", "group"),
        ("seg-0036-alias", "filtered", "filtered_event", "alias"),
    ]
    assert all(line["payload"] is None for line in lines[-3:])
    assert [line["status"] for line in lines[:4]] == ["ok"] * 4


def test_a_bound_key_id_rejects_events_for_other_apps() -> None:
    body = (SAMPLES_DIR / "segment_library_batch.json").read_bytes()
    bindings = json.dumps({"key-other": ["com.example.other"], "key-game": ["com.example.game"]})
    status, lines, _ = run(body, "--format", "segment", "--api-key-id", "key-other", **{ENV_SOURCE_APPS: bindings})
    assert status == 1
    assert [line["reason"] for line in lines] == ["app_not_allowed"] * 4 + ["filtered_event"] * 3
    assert lines[0]["field"] == "context.app.namespace"
    assert "key-other may send only to com.example.other" in lines[0]["error"]
    # A bound bundle id stands for its GUID: without one in KOCHAVA_APP_IDS_BY_BUNDLE it reaches no app.
    status, lines, stderr = run(body, "--format", "segment", "--api-key-id", "key-game", **{ENV_SOURCE_APPS: bindings})
    assert status == 1 and [line["reason"] for line in lines[:4]] == ["app_not_allowed"] * 4
    assert "warning: SOURCE_APPS: key 'key-game': 'com.example.game' is neither a bundle id of" in stderr
    by_bundle = json.dumps({"com.example.game": "ko-game-guid"})
    env = {ENV_SOURCE_APPS: bindings, ENV_KOCHAVA_APP_IDS_BY_BUNDLE: by_bundle}
    status, lines, _ = run(body, "--format", "segment", "--api-key-id", "key-game", **env)
    assert status == 0 and [line["status"] for line in lines[:4]] == ["ok"] * 4
    assert {line["payload"]["kochava_app_id"] for line in lines[:4]} == {"ko-game-guid"}


def test_a_malformed_binding_is_a_usage_error_naming_the_variable() -> None:
    status, lines, stderr = run(b"{}", **{ENV_SOURCE_APPS: '{"key": []}'})
    assert status == 2 and lines == []
    assert "SOURCE_APPS: key 'key': lists no app" in stderr
