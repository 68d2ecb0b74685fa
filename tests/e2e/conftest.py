"""One local stack for the whole e2e session: moto, local API, sink, Apple stub, the real handlers.

Started in-process on ephemeral ports; every sample of ``events/`` is posted once, plus the requests the tests
need, and the pipeline is drained before any test looks. moto keeps its state per process, so there is one stack
for the package.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from tools.local.report import Report
from tools.local.stack import LocalConfig, LocalStack

NATIVE_EVENT = {
    "uuid": "e2e-native-0001",
    "type": "track",
    "event": "level_up",
    "timestamp": 1795175990,
    "properties": {"level": 7},
    "device": {"platform": "android", "id": "9774d56d682e549c"},
}
SEGMENT_EVENT = {
    "type": "track",
    "event": "Level Up",
    "messageId": "e2e-segment-0001",
    "timestamp": "2026-11-20T11:59:30.120Z",
    "userId": "user-e2e",
    "properties": {"level": 8},
    "context": {"device": {"type": "android", "id": "9774d56d682e549c"}},
}


@dataclass
class Run:
    """The drained session stack and what the setup posted."""

    stack: LocalStack
    report: Report
    samples: dict[str, requests.Response]  # sample file name -> the API's answer
    without_key: requests.Response
    wrong_key: requests.Response
    native: requests.Response
    segment: requests.Response


@pytest.fixture(scope="package")  # stopped after tests/e2e: its pollers must not outlive it
def run() -> Iterator[Run]:
    with LocalStack(LocalConfig()) as stack:
        samples = {path.name: response for path, response in stack.post_samples()}
        without_key = stack.post("native", {**NATIVE_EVENT, "uuid": "e2e-no-key"}, api_key="")
        wrong_key = stack.post("segment", {**SEGMENT_EVENT, "messageId": "e2e-wrong-key"}, api_key="not-the-key")
        native = stack.post("native", NATIVE_EVENT)
        segment = stack.post("segment", SEGMENT_EVENT)
        assert stack.wait_drained(timeout_s=45), f"not drained: {stack.queue_depths()}"
        yield Run(stack, stack.report(), samples, without_key, wrong_key, native, segment)
