"""Every command in docs/runbook.md runs (issue 23: the runbook asked SQS for ``ApproximateAgeOfOldestMessage``,
a CloudWatch metric, and the command failed).

* each ``python -m tools.X`` line of the runbook's code blocks runs in-process against moto, the stack named by
  stage (``--stack kochava-prod`` -> ``--stage local``; placeholders filled with seeded ids): it must parse (exit
  code 2 is a usage error) and answer without an exception;
* each inline ``aws sqs get-queue-attributes`` command is run as the same boto3 call with the attribute names it
  asks for (an unknown name is an error, as on AWS);
* every other inline ``aws ...`` command is marked "AWS only" with its reason next to it.
"""

from __future__ import annotations

import io
import re
import shlex
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions.names import DELIVERY_QUEUE
from infra.resources import ResourceNames
from tests.integration.dlq.conftest import aws  # noqa: F401 (fixture: moto with test credentials)
from tests.integration.dlq.helpers import NOW_MS, REGION, STAGE, put_delivery_dead, put_ingest_dead
from tests.integration.privacy.conftest import Pipeline, enricher, pipeline  # noqa: F401 (fixtures)
from tools.dlq.cli import main as dlq_main
from tools.privacy.cli import main as privacy_main
from tools.trace.cli import main as trace_main

RUNBOOK = Path(__file__).resolve().parents[3] / "docs" / "runbook.md"
MAINS: dict[str, Any] = {"tools.dlq": dlq_main, "tools.trace": trace_main, "tools.privacy": privacy_main}
DEVICE = "3B2F8C1E-1111-2222-3333-444455556666"


def _fenced_tool_commands(text: str) -> list[str]:
    blocks = re.findall(r"```\n(.*?)```", text, flags=re.DOTALL)
    lines = [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("python -m tools.")]


def _inline_aws_commands(text: str) -> list[tuple[str, str]]:
    """(command, the text right after it) for each inline ``aws ...`` span (spans may wrap lines)."""
    return [
        (" ".join(m.group(1).split()), text[m.end() : m.end() + 160])
        for m in re.finditer(r"`(aws [^`]+)`", text, flags=re.DOTALL)
    ]


def _argv(command: str, message_id: str) -> tuple[Any, list[str]]:
    words = shlex.split(command)[2:]  # drop "python -m"
    tool, args = words[0], words[1:]
    out: list[str] = (
        ["--stage", STAGE, "--region", REGION, "--wait-time-seconds", "0"] if tool != "tools.privacy" else []
    )
    if tool == "tools.privacy":
        out = ["--stage", STAGE, "--region", REGION, "--wait-time-seconds", "0"]
    skip = False
    for word in args:
        if skip:
            skip = False
            continue
        if word == "--stack":
            skip = True
            continue
        if word in ("<MessageId>", "[<MessageId>", "...]"):
            word = message_id if word == "<MessageId>" else ""
        word = word.replace("3B2F8C1E-...", DEVICE)
        if word:
            out.append(word)
    if "--help" in out:
        out = [w for w in out if w == "--help" or (not w.startswith("--") and w not in (STAGE, REGION, "0"))]
    return MAINS[tool], out


def test_the_runbook_has_commands_to_check() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    assert len(_fenced_tool_commands(text)) >= 12
    assert any(cmd.startswith("aws sqs get-queue-attributes") for cmd, _ in _inline_aws_commands(text))


def test_every_tool_command_of_the_runbook_runs_against_the_local_stack(
    pipeline: Pipeline,  # noqa: F811
    enricher: str,  # noqa: F811
) -> None:
    queues = pipeline.queues
    put_ingest_dead(queues, "u-rb-1", "invalid_event")
    put_delivery_dead(queues, "u-rb-2", "retries_exhausted")
    message_id = put_delivery_dead(queues, "u-rb-3", "kochava_rejected")
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    from functions.names import IDEMPOTENCY_TABLE
    from tools.local.aws import create_table

    create_table(dynamodb, ResourceNames(STAGE), IDEMPOTENCY_TABLE)
    logs = boto3.client("logs", region_name=REGION)
    for function in ("enricher", "deliverer"):
        logs.create_log_group(logGroupName=f"/aws/lambda/{ResourceNames(STAGE).function(function)}")
    failures = []
    for command in _fenced_tool_commands(RUNBOOK.read_text(encoding="utf-8")):
        main, argv = _argv(command, message_id)
        out, err = io.StringIO(), io.StringIO()
        kwargs: dict[str, Any] = {"stdout": out, "stderr": err}
        if main is dlq_main:
            kwargs |= {"stdin": io.StringIO(), "now_ms": NOW_MS}
        try:
            code = main(argv, **kwargs)
        except SystemExit as exc:  # --help
            code = int(exc.code or 0)
        said = (out.getvalue() + err.getvalue()).strip() or "--help" in argv  # argparse prints help to sys.stdout
        if code not in (0, 1, 3) or not said:  # 2: a usage error
            failures.append((command, argv, code, err.getvalue()[-300:]))
    assert failures == []


def test_every_aws_cli_command_runs_or_is_marked_aws_only(pipeline: Pipeline) -> None:  # noqa: F811
    sqs = pipeline.queues.sqs
    url = sqs.get_queue_url(QueueName=ResourceNames(STAGE).queue(DELIVERY_QUEUE))["QueueUrl"]
    unchecked = []
    for command, after in _inline_aws_commands(RUNBOOK.read_text(encoding="utf-8")):
        if command.startswith("aws sqs get-queue-attributes"):
            names = re.search(r"--attribute-names ((?:\w+\s*)+)", command)
            assert names is not None, command
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names.group(1).split())["Attributes"]
            assert set(attributes) == set(names.group(1).split()), command
        elif "AWS only" not in " ".join(after.split()):
            unchecked.append(command)
    assert unchecked == []


def test_asking_sqs_for_the_age_of_the_oldest_message_is_an_error(pipeline: Pipeline) -> None:  # noqa: F811
    """What the runbook used to say: the attribute does not exist (it is a CloudWatch metric)."""
    sqs = pipeline.queues.sqs
    url = sqs.get_queue_url(QueueName=ResourceNames(STAGE).queue(DELIVERY_QUEUE))["QueueUrl"]
    with pytest.raises(Exception, match=r"InvalidAttributeName|ApproximateAgeOfOldestMessage"):
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateAgeOfOldestMessage"])
