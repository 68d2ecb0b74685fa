"""The flags every on-call tool takes before its command to find the pipeline: ``--stack``, ``--stage``,
``--endpoint-url``, ``--region``, ``--profile`` (as ``tools.dlq`` takes them), in one place.

Added to a parent parser built with ``argument_default=argparse.SUPPRESS`` (so they may also follow the command,
without the sub-command's defaults overwriting what came before it); :func:`fill_defaults` then sets the absent ones.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(argument_default=argparse.SUPPRESS)
    >>> add_stack_flags(parser.add_argument_group("where"))
    >>> args = parser.parse_args(["--stage", "prod"])
    >>> fill_defaults(args, STACK_DEFAULTS)
    >>> args.stage, args.stack, args.endpoint_url
    ('prod', None, None)
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any, Final

STACK_DEFAULTS: Final[Mapping[str, Any]] = {
    "stack": None,
    "stage": None,
    "endpoint_url": None,
    "region": None,
    "profile": None,
}


def add_stack_flags(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--stack", metavar="NAME", help="CloudFormation stack of the pipeline (its outputs, resources)")
    group.add_argument("--stage", metavar="S", help="find the resources by the project's names for this stage")
    group.add_argument("--endpoint-url", metavar="URL", help="an AWS-compatible endpoint (the local stack's moto)")
    group.add_argument("--region", metavar="R", help="AWS region (default: the AWS CLI's)")
    group.add_argument("--profile", metavar="P", help="AWS CLI profile")


def fill_defaults(args: argparse.Namespace, defaults: Mapping[str, Any]) -> None:
    """Set every option absent from ``args`` to its default."""
    for name, default in defaults.items():
        if not hasattr(args, name):
            setattr(args, name, default)
