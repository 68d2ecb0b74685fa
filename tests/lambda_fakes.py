"""Test doubles for what the Lambda runtime hands a handler, shared by the handler tests.

``FakeContext`` answers a fixed remaining time (tests choose it, so deadline logic is deterministic);
``tools.local.pollers.LambdaContext`` is the real-clock one the local stack uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FakeContext:
    """What Powertools reads from a Lambda context; ``remaining_ms`` is fixed for the call."""

    remaining_ms: int = 30_000
    function_name: str = "kochava-test-function"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "lambda-req-1"
    invoked_function_arn: str = field(init=False)

    def __post_init__(self) -> None:
        self.invoked_function_arn = f"arn:aws:lambda:eu-west-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Clock:
    """A controllable clock: handlers call it, tests move ``now``."""

    now: float

    def __call__(self) -> float:
        return self.now
