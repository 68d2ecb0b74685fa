"""The pinned CDK CLI, on the pinned Node.js 22, synthesizes the app from the repo root without Docker, and refuses
to deploy a stack without Kochava app GUIDs before anything is created.

The two CLI runs (a synth, a refused deploy: each runs the whole CDK app, about 25 s of CPU on one core) are
started together by the module's fixture and each test reads its own run's result: on two cores they take the
time of one. The deploy starts once the Lambda dependencies exist (``.build/deps-*``, which the first synth of a
fresh clone builds with pip), so that pip does not build them twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra.support import REPO_ROOT

PINNED_CLI = REPO_ROOT / "node_modules" / ".bin" / "cdk"
PINNED_NODE = REPO_ROOT / "node_modules" / ".bin" / "node"
NODE_MAJOR = int((REPO_ROOT / ".nvmrc").read_text().strip())

# A run's limit, and the tests' (the first waits for its run, which shares the cores with the other run): limits for
# a run that hangs, far above the ~25 s of an idle machine (a synth took 254 s on the shared VM at load 20-30).
CLI_TIMEOUT_S = 480
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(CLI_TIMEOUT_S + 60),
    pytest.mark.skipif(not PINNED_CLI.exists(), reason="pinned CDK CLI not installed (make install)"),
]


def _cdk(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PINNED_CLI), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_the_cli_runs_on_the_pinned_node_22() -> None:
    assert PINNED_NODE.exists(), "package.json's node-linux-* package for this machine"
    version = subprocess.run([str(PINNED_NODE), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith(f"v{NODE_MAJOR}."), version
    engines = json.loads((REPO_ROOT / "package.json").read_text())["engines"]["node"]
    assert engines == f">={NODE_MAJOR}"


# Credentials that cannot work and an endpoint nothing listens on: had the CLI got as far as AWS, it would fail with a
# connection or credentials error instead of the guard's message.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "AKIAGUARDTEST",
    "AWS_SECRET_ACCESS_KEY": "guard-test",
    "AWS_REGION": "eu-west-1",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _deploy_once_dependencies_exist(
    out: Path, synth: Future[subprocess.CompletedProcess[str]]
) -> subprocess.CompletedProcess[str]:
    """The refused deploy, started once the synth built the Lambda dependencies (or ended)."""
    while not any((REPO_ROOT / ".build").glob("deps-*")) and not synth.done():
        time.sleep(0.5)
    return _cdk("deploy", "--require-approval", "never", "--output", str(out), "-c", "stage=guardtest", env=FAKE_AWS)


@dataclass(frozen=True)
class CliRuns:
    synth: Future[subprocess.CompletedProcess[str]]
    synth_out: Path  # the synth's cloud assembly
    deploy: Future[subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliRuns]:
    """Both CLI runs, started together (see the module docstring)."""
    synth_out = tmp_path_factory.mktemp("cli-synth") / "cdk.out"
    deploy_out = tmp_path_factory.mktemp("cli-deploy") / "cdk.out"
    with ThreadPoolExecutor(max_workers=2) as pool:
        synth = pool.submit(
            _cdk, "synth", "--quiet", "--output", str(synth_out), "-c", "stage=clitest", "-c", "allowMissingAppIds=true"
        )
        yield CliRuns(synth, synth_out, pool.submit(_deploy_once_dependencies_exist, deploy_out, synth))
        # leaving the block waits for both runs: none is left behind when a test failed early


def test_pinned_cli_synthesizes_the_stack(cli_runs: CliRuns) -> None:
    result, out = cli_runs.synth.result(), cli_runs.synth_out
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


def test_a_deploy_without_kochava_app_guids_is_refused_before_anything_is_created(cli_runs: CliRuns) -> None:
    result = cli_runs.deploy.result()
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert (
        "deploy refused: no Kochava app GUID for ios and android events: give -c kochavaAppIdIos=<guid> "
        "-c kochavaAppIdAndroid=<guid> (or -c kochavaAppIdsByBundle=" in output
    ), output[-3000:]
    assert "Synthesis finished with errors" in output, "the CLI stopped on the error annotation, after synthesis"
    for sign_of_aws in ("127.0.0.1:9", "ECONNREFUSED", "credentials", "CREATE_IN_PROGRESS", "publishing"):
        assert sign_of_aws not in output, f"{sign_of_aws!r}: the CLI went on towards AWS"
