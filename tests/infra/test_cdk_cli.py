"""The pinned CDK CLI, on the pinned Node.js 22, synthesizes the app from the repo root without Docker, and refuses
to deploy a stack without Kochava app GUIDs before anything is created."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.infra.support import REPO_ROOT

PINNED_CLI = REPO_ROOT / "node_modules" / ".bin" / "cdk"
PINNED_NODE = REPO_ROOT / "node_modules" / ".bin" / "node"
NODE_MAJOR = int((REPO_ROOT / ".nvmrc").read_text().strip())

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not PINNED_CLI.exists(), reason="pinned CDK CLI not installed (make install)"),
]


def _cdk(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PINNED_CLI), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_the_cli_runs_on_the_pinned_node_22() -> None:
    assert PINNED_NODE.exists(), "package.json's node-linux-* package for this machine"
    version = subprocess.run([str(PINNED_NODE), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith(f"v{NODE_MAJOR}."), version
    engines = json.loads((REPO_ROOT / "package.json").read_text())["engines"]["node"]
    assert engines == f">={NODE_MAJOR}"


def test_pinned_cli_synthesizes_the_stack(tmp_path: Path) -> None:
    out = tmp_path / "cdk.out"
    result = _cdk("synth", "--quiet", "--output", str(out), "-c", "stage=clitest", "-c", "allowMissingAppIds=true")
    assert result.returncode == 0, result.stderr[-3000:]
    template = json.loads((out / "kochava-clitest.template.json").read_text())
    assert len(template["Resources"]) > 30
    assert list(out.glob("AwsSolutions-*NagReport.csv")), "cdk-nag ran during the CLI synth"
    staged = [p for p in out.iterdir() if p.name.startswith("asset.")]
    assert len(staged) == 3, "one asset folder per function (enricher, deliverer, API key authorizer)"
    # Allowed without GUIDs: the CDK prints the warning; and jsii has nothing to say about the Node.js version.
    assert "no Kochava app GUID for ios and android events" in result.stderr
    assert "allowMissingAppIds" in result.stderr
    assert "end-of-life" not in result.stderr and "not supported" not in result.stderr, result.stderr[-2000:]


def test_a_deploy_without_kochava_app_guids_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    # Credentials that cannot work and an endpoint nothing listens on: had the CLI got as far as AWS, it would fail
    # with a connection or credentials error instead of the guard's message.
    fake_aws = {
        "AWS_ACCESS_KEY_ID": "AKIAGUARDTEST",
        "AWS_SECRET_ACCESS_KEY": "guard-test",
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = _cdk(
        "deploy", "--require-approval", "never", "--output", str(tmp_path / "cdk.out"), "-c", "stage=guardtest",
        env=fake_aws,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert (
        "deploy refused: no Kochava app GUID for ios and android events: give -c kochavaAppIdIos=<guid> "
        "-c kochavaAppIdAndroid=<guid> (or -c kochavaAppIdsByBundle=" in output
    ), output[-3000:]
    assert "Synthesis finished with errors" in output, "the CLI stopped on the error annotation, after synthesis"
    for sign_of_aws in ("127.0.0.1:9", "ECONNREFUSED", "credentials", "CREATE_IN_PROGRESS", "publishing"):
        assert sign_of_aws not in output, f"{sign_of_aws!r}: the CLI went on towards AWS"
