"""The pinned CDK CLI synthesizes the app from the repo root, without Docker."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.infra.support import REPO_ROOT

PINNED_CLI = REPO_ROOT / "node_modules" / ".bin" / "cdk"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npx") is None or not PINNED_CLI.exists(), reason="pinned CDK CLI not installed")
def test_pinned_cli_synthesizes_the_stack(tmp_path: Path) -> None:
    out = tmp_path / "cdk.out"
    result = subprocess.run(
        ["npx", "--no-install", "cdk", "synth", "--quiet", "--output", str(out), "-c", "stage=clitest"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    template = json.loads((out / "kochava-clitest.template.json").read_text())
    assert len(template["Resources"]) > 30
    assert list(out.glob("AwsSolutions-*NagReport.csv")), "cdk-nag ran during the CLI synth"
    staged = [p for p in out.iterdir() if p.name.startswith("asset.")]
    assert len(staged) == 3, "one asset folder per function (enricher, deliverer, API key authorizer)"
