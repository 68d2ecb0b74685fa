"""What the e2e tests share: the events they post and the drained run the ``run`` fixture yields."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tools.local.kochava_sink import KochavaSink
from tools.local.report import Report
from tools.local.stack import LocalStack

# A key of the session stack bound to one app (LocalConfig.source_apps); locally its value is its name.
BOUND_KEY = "bound-source"
BOUND_APP = "com.example.bound"
BOUND_GUID = "ko-e2e-bound-guid"  # its Kochava app GUID (KOCHAVA_APP_IDS_BY_BUNDLE): the binding is decided on it

NATIVE_EVENT: dict[str, Any] = {
    "uuid": "e2e-native-0001",
    "type": "track",
    "event": "level_up",
    "timestamp": 1795175990,
    "properties": {"level": 7},
    "device": {"platform": "android", "id": "9774d56d682e549c"},
}
SEGMENT_EVENT: dict[str, Any] = {
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
    lambda_log: Path  # the Lambdas' JSON log lines (INFO and up), as CloudWatch would hold them

    @property
    def sink(self) -> KochavaSink:
        assert self.stack.sink is not None, "the e2e stack runs with the local Kochava sink"
        return self.stack.sink
