"""What the on-call tools share: where the stack is (flags, AWS sessions), exit codes, argument types.

``python -m tools.dlq``, ``python -m tools.trace`` and ``python -m tools.privacy`` take the same stack flags, before
their command arguments: ``--stack NAME``, ``--stage S``, ``--endpoint-url URL`` (the local stack), ``--region R``,
``--profile P``. Against a local endpoint with no AWS credentials configured they bring dummy ones (moto accepts
anything), so ``--endpoint-url`` alone just works.

Example:
    >>> stage_of(stack="kochava-prod", stage=None, endpoint_url=None)
    'prod'
    >>> stage_of(stack=None, stage=None, endpoint_url="http://127.0.0.1:4566")
    'local'
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from infra.resources import PROJECT
from tools.oncall.durations import parse_duration

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_REFUSED: Final = 3
EXIT_INTERRUPTED: Final = 130

LOCAL_STAGE: Final = "local"  # the stage of `make local` (tools.local), the default with --endpoint-url
DUMMY_CREDENTIALS: Final = ("testing", "testing")  # for a local endpoint when no credentials are configured
DEFAULT_REGION: Final = "us-east-1"

AWS_ERRORS = (ClientError, BotoCoreError)


class DiscoveryError(Exception):
    """The stack's resources could not be found; the message says what was tried."""


# ------------------------------------------------------------------------------------------------------- flags


def add_stack_options(group: argparse._ActionsContainer) -> None:
    """The stack flags both tools take (with ``argument_default=SUPPRESS`` parsers: see :func:`stack_defaults`)."""
    group.add_argument("--stack", metavar="NAME", help="CloudFormation stack of the pipeline (kochava-<stage>)")
    group.add_argument("--region", metavar="R", help="AWS region (default: the AWS CLI's)")
    group.add_argument("--profile", metavar="P", help="AWS CLI profile")
    group.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="an AWS-compatible endpoint (the local stack's moto); dummy credentials when none are set",
    )
    group.add_argument("--stage", metavar="S", help="find the resources by the project's names for this stage")


STACK_DEFAULTS: Final[dict[str, Any]] = {
    "stack": None,
    "region": None,
    "profile": None,
    "endpoint_url": None,
    "stage": None,
}


def parse_with_defaults(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, defaults: Mapping[str, Any]
) -> argparse.Namespace:
    """Parse ``argv`` with a parser built with ``argument_default=SUPPRESS`` (so a flag given before or after the
    command is kept), then set ``defaults`` for every flag that was not given.

    >>> parser = argparse.ArgumentParser(argument_default=argparse.SUPPRESS)
    >>> add_stack_options(parser)
    >>> args = parse_with_defaults(parser, ["--stage", "dev"], STACK_DEFAULTS)
    >>> args.stage, args.stack
    ('dev', None)
    """
    args = parser.parse_args(argv)
    for name, default in defaults.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    return args


def stage_of(*, stack: str | None, stage: str | None, endpoint_url: str | None) -> str | None:
    """The stage whose resources to use: ``--stage``, else the one in the stack name ``kochava-<stage>``, else
    ``local`` against an endpoint; None when nothing says."""
    if stage:
        return stage
    if stack and stack.startswith(f"{PROJECT}-") and len(stack) > len(PROJECT) + 1:
        return stack[len(PROJECT) + 1 :]
    return LOCAL_STAGE if endpoint_url else None


# ---------------------------------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class AwsOptions:
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None

    @classmethod
    def of(cls, args: argparse.Namespace) -> AwsOptions:
        return cls(region=args.region, endpoint_url=args.endpoint_url, profile=args.profile)


def make_session(opts: AwsOptions) -> boto3.session.Session:
    """A boto3 session with the AWS CLI's usual credentials; against a local endpoint with none configured,
    dummy ones (moto accepts anything), so ``--endpoint-url`` alone just works."""
    session = boto3.session.Session(profile_name=opts.profile, region_name=opts.region)
    if opts.endpoint_url and session.get_credentials() is None:
        session = boto3.session.Session(
            aws_access_key_id=DUMMY_CREDENTIALS[0],
            aws_secret_access_key=DUMMY_CREDENTIALS[1],
            region_name=opts.region or session.region_name or DEFAULT_REGION,
        )
    return session


def make_client(session: boto3.session.Session, service: str, opts: AwsOptions) -> Any:
    region = opts.region or session.region_name or (DEFAULT_REGION if opts.endpoint_url else None)
    if region is None and "AWS_DEFAULT_REGION" not in os.environ:
        raise DiscoveryError("no AWS region: pass --region or set AWS_REGION / AWS_DEFAULT_REGION")
    return session.client(
        service,
        region_name=region,
        endpoint_url=opts.endpoint_url,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )


# ---------------------------------------------------------------------------------------------- argument types


def duration(text: str) -> float:
    """argparse type: ``30m``, ``2h``, ``3d``, ``1h30m`` -> seconds."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value
