"""The CDK app: ``cdk synth`` / ``cdk deploy`` run ``.venv/bin/python -m infra.app`` (see cdk.json).

Reads the configuration from the CDK context (``cdk.json`` and ``-c key=value``, docs/deploy.md), builds one
:class:`~infra.stack.PipelineStack` named after the stage, and runs the cdk-nag AwsSolutions checks on it: an
unsuppressed finding fails ``cdk synth``. Without a Kochava app GUID per platform the CLI refuses to deploy
(infra/deploy_guard.py).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import App, Aspects, Tags
from cdk_nag import AwsSolutionsChecks

from infra.bundling import LambdaAssetBuilder
from infra.config import PipelineConfig
from infra.deploy_guard import guard_app_ids
from infra.resources import PROJECT, ResourceNames
from infra.stack import PipelineStack


def build_app(
    context: dict[str, Any] | None = None,
    *,
    outdir: str | None = None,
    assets: LambdaAssetBuilder | None = None,
) -> tuple[App, PipelineStack]:
    """The app and its stack; ``context`` adds to (and overrides) what ``cdk.json`` / ``-c`` give."""
    app = App(context=context, outdir=outdir)
    config = PipelineConfig.from_context(app.node.try_get_context)
    stack = PipelineStack(
        app,
        ResourceNames(stage=config.stage).stack,
        config=config,
        assets=assets,
        description=f"Kochava event pipeline ({config.stage}): API Gateway -> SQS -> Lambda -> Kochava",
    )
    guard_app_ids(stack, config)  # no Kochava app GUID: the CLI refuses to deploy (an error annotation)
    Tags.of(stack).add("project", PROJECT)
    Tags.of(stack).add("stage", config.stage)
    Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return app, stack


def main() -> None:
    app, _ = build_app()
    app.synth()


if __name__ == "__main__":
    main()
