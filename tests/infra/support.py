"""Helpers of the infra tests: the synthesized-stack wrapper and the in-process synth (used by conftest.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import assertions

from infra.app import build_app
from infra.bundling import LambdaAssetBuilder
from infra.config import PipelineConfig
from infra.stack import PipelineStack

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Synthesized:
    """One synthesized stack: the construct tree, its CloudFormation template and its annotations."""

    stack: PipelineStack
    template: assertions.Template
    annotations: assertions.Annotations
    config: PipelineConfig

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = self.template.find_resources(resource_type)
        return found

    def logical_id(self, construct: Any) -> str:
        return str(self.stack.get_logical_id(construct.node.default_child))


def _cdk_json_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    return context


def synthesize(tmp: Path, extra_context: dict[str, Any], assets: LambdaAssetBuilder) -> Synthesized:
    # Staging is skipped in-process: the assets stay in .build/ (the CLI test checks a real synth). A stack without
    # a Kochava app GUID per platform may be synthesized, with the deploy guard's warning (infra/deploy_guard.py).
    context = {
        **_cdk_json_context(),
        "aws:cdk:disable-asset-staging": True,
        "allowMissingAppIds": True,
        **extra_context,
    }
    app, stack = build_app(context, outdir=str(tmp), assets=assets)
    template = assertions.Template.from_stack(stack)
    config = PipelineConfig.from_context(app.node.try_get_context)
    return Synthesized(stack, template, assertions.Annotations.from_stack(stack), config)
