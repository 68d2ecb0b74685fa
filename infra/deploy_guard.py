"""The deploy guard: a stack without a Kochava app GUID would accept every event and dead-letter it.

An event is sent to the GUID of its bundle id (``kochavaAppIdsByBundle``), else of its platform
(``kochavaAppIdIos`` / ``kochavaAppIdAndroid``); with neither, the enricher dead-letters it ``missing_app_id``.
So a deploy is refused unless each platform has a GUID, or GUIDs are given per bundle id (then an event of another
bundle still needs its platform's; #22's check in infra/config.py makes sure every bundle bound by ``sourceApps``
resolves to one). The refusal is a CDK *error annotation* on the stack: ``cdk deploy`` (and ``cdk synth``) stop
after synthesis, before anything is created in the account, printing the message, which names the context keys
to give; an in-process ``App.synth()`` raises it too. ``-c allowMissingAppIds=true`` turns it into a warning the
CDK prints (a one-platform stage, a synth to look at the template, the tests).

Example:
    >>> from infra.config import PipelineConfig
    >>> missing_app_ids(PipelineConfig(kochava_app_id_ios="ko-ios"))  # doctest: +ELLIPSIS
    ['no Kochava app GUID for android events: give -c kochavaAppIdAndroid=<guid> (or -c kochavaAppIdsByBundle=...
    >>> missing_app_ids(PipelineConfig(kochava_app_id_ios="ko-ios", kochava_app_id_android="ko-android"))
    []
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.config import PipelineConfig

if TYPE_CHECKING:
    from constructs import IConstruct

ALLOW_CONTEXT_KEY = "allowMissingAppIds"
_PLATFORM_KEYS = (("ios", "kochavaAppIdIos"), ("android", "kochavaAppIdAndroid"))


def _platform_ids(config: PipelineConfig) -> dict[str, str]:
    return {"ios": config.kochava_app_id_ios, "android": config.kochava_app_id_android}


def missing_app_ids(config: PipelineConfig) -> list[str]:
    """Why this configuration would dead-letter events ``missing_app_id``, one message per gap, naming the keys."""
    ids = _platform_ids(config)
    missing = [(platform, key) for platform, key in _PLATFORM_KEYS if not ids[platform]]
    if not missing:
        return []
    problems = []
    if not config.kochava_app_ids_by_bundle:  # per-bundle GUIDs: the operator chose which apps this stage serves
        platforms = " and ".join(platform for platform, _ in missing)
        flags = " ".join(f"-c {key}=<guid>" for _, key in missing)
        problems.append(
            f"no Kochava app GUID for {platforms} events: give {flags} (or -c kochavaAppIdsByBundle="
            '\'{"<bundle id>": "<guid>"}\'); without one every such event is dead-lettered missing_app_id'
        )
    return problems


def guard_app_ids(stack: IConstruct, config: PipelineConfig) -> list[str]:
    """Annotate ``stack``: an error (the CDK CLI then refuses to deploy) per gap, or a warning when
    ``config.allow_missing_app_ids``."""
    from aws_cdk import Annotations  # here: importing aws_cdk starts jsii, the doctest above does not need it

    problems = missing_app_ids(config)
    for problem in problems:
        if config.allow_missing_app_ids:
            Annotations.of(stack).add_warning_v2(
                "kochava:missingAppId", f"{problem} (allowed by -c {ALLOW_CONTEXT_KEY}=true)"
            )
        else:
            Annotations.of(stack).add_error(
                f"deploy refused: {problem}. To deploy anyway (a one-platform stage), add -c {ALLOW_CONTEXT_KEY}=true"
            )
    return problems
