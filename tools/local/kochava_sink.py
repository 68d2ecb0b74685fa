"""A local stand-in for Kochava's server-to-server API, for tests, benchmarks and ``make local``.

Serves ``POST /track/json`` (install / event) and ``POST /v1/cpi/identityLink.php`` (IdentityLink), records every
request (path, headers, parsed JSON, time, TCP connection), answers Kochava's success ``{"success":"1"}`` and
checks each payload against the shape of the spec (``shared/spec/contract.md`` section 3), recording violations
instead of failing the request, so a test can assert ``sink.violations == []`` after a whole run.

It can be told to misbehave, deterministically:

* a scripted sequence for the next requests: ``sink.script([500, 200])`` or ``[Reply.hanging(), 200]``;
* a rule for the requests that match a predicate: ``sink.add_rule(lambda r: r.uuid == "bad", [400])``;
* a share of failures from a seeded generator: ``KochavaSink(fail_share=0.3, fail_status=429, seed=7)``;
* a fixed latency for every answer: ``KochavaSink(latency_s=0.05)``.

Example:
    >>> import requests
    >>> with KochavaSink() as sink:
    ...     sink.script([500])
    ...     first = requests.post(sink.track_url, json={"action": "event"}, timeout=2).status_code
    ...     second = requests.post(sink.track_url, json={"action": "event"}, timeout=2).json()
    >>> first, second, len(sink.requests)
    (500, {'success': '1'}, 2)

Run alone (``python -m tools.local.kochava_sink --port 8700``) it serves until interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tools.local.stub_http import RecordedRequest, Reply, StubServer

TRACK_PATH = "/track/json"
IDENTITYLINK_PATH = "/v1/cpi/identityLink.php"
SUCCESS_BODY = {"success": "1"}
TRACK_ACTIONS = frozenset({"install", "event"})

RequestPredicate = Callable[[RecordedRequest], bool]
ReplySpec = Reply | int


def success() -> Reply:
    """Kochava's success answer."""
    return Reply.json(200, SUCCESS_BODY)


def as_reply(spec: ReplySpec) -> Reply:
    """An int status becomes a plausible Kochava answer: 200 -> success, others -> a JSON error body."""
    if isinstance(spec, Reply):
        return spec
    if spec == 200:
        return success()
    return Reply.json(spec, {"success": "0", "error": f"sink: scripted {spec}"})


@dataclass
class _Rule:
    predicate: RequestPredicate
    replies: deque[Reply]
    repeat_last: bool


class KochavaSink(StubServer):
    """The Kochava stand-in; see the module docstring."""

    def __init__(
        self,
        port: int = 0,
        *,
        seed: int = 0,
        fail_share: float = 0.0,
        fail_status: int = 500,
        fail_headers: Mapping[str, str] | None = None,
        latency_s: float = 0.0,
    ) -> None:
        super().__init__(port)
        self.fail_share = fail_share
        self.fail_status = fail_status
        self.fail_headers = dict(fail_headers or {})
        self.latency_s = latency_s
        self._random = random.Random(seed)
        self._script: deque[Reply] = deque()
        self._rules: list[_Rule] = []
        self._settings_lock = threading.Lock()

    # Where to send ------------------------------------------------------------------------------------------

    @property
    def track_url(self) -> str:
        """The ``KOCHAVA_URL`` to configure."""
        return self.url + TRACK_PATH

    @property
    def identitylink_url(self) -> str:
        """The ``KOCHAVA_IDENTITYLINK_URL`` to configure."""
        return self.url + IDENTITYLINK_PATH

    # Behaviour ----------------------------------------------------------------------------------------------

    def script(self, replies: Iterable[ReplySpec]) -> None:
        """Answer the next requests (any path, any payload) with these, in order, then behave normally."""
        with self._settings_lock:
            self._script.extend(as_reply(reply) for reply in replies)

    def add_rule(self, predicate: RequestPredicate, replies: Iterable[ReplySpec], *, repeat_last: bool = True) -> None:
        """Answer requests matching ``predicate`` with ``replies`` in order; the last one repeats by default."""
        queue = deque(as_reply(reply) for reply in replies)
        if not queue:
            raise ValueError("a rule needs at least one reply")
        with self._settings_lock:
            self._rules.append(_Rule(predicate, queue, repeat_last))

    def clear_behaviour(self) -> None:
        """Drop scripts and rules, and stop failing or slowing down."""
        with self._settings_lock:
            self._script.clear()
            self._rules.clear()
            self.fail_share = 0.0
            self.latency_s = 0.0

    def choose_reply(self, request: RecordedRequest) -> Reply:
        """Path check, then rules, then the script, then the seeded failure share, then success."""
        if request.path.split("?", 1)[0] not in (TRACK_PATH, IDENTITYLINK_PATH):
            return Reply.json(404, {"error": f"sink: no route {request.path}"})
        with self._settings_lock:
            reply = self._next_scripted(request)
            if reply is None and self.fail_share > 0 and self._random.random() < self.fail_share:
                reply = Reply.json(self.fail_status, {"error": "sink: random failure"}, self.fail_headers)
        reply = reply or success()
        if self.latency_s > 0 and reply.delay_s == 0 and not reply.hang:
            reply = Reply(reply.status, reply.body, reply.headers, reply.content_type, delay_s=self.latency_s)
        return reply

    def _next_scripted(self, request: RecordedRequest) -> Reply | None:
        for rule in self._rules:
            if not rule.replies or not _safe_match(rule.predicate, request):
                continue
            if len(rule.replies) == 1 and rule.repeat_last:
                return rule.replies[0]
            return rule.replies.popleft()
        if self._script:
            return self._script.popleft()
        return None

    # What arrived -------------------------------------------------------------------------------------------

    def inspect(self, request: RecordedRequest) -> list[str]:
        """Check the payload against the spec's shape."""
        path = request.path.split("?", 1)[0]
        if request.method != "POST":
            return [f"method {request.method}, expected POST"]
        if "application/json" not in request.headers.get("content-type", ""):
            return [f"content-type {request.headers.get('content-type')!r}, expected application/json"]
        if path == TRACK_PATH:
            return track_payload_violations(request.json)
        if path == IDENTITYLINK_PATH:
            return identitylink_payload_violations(request.json)
        return []

    @property
    def delivered(self) -> list[RecordedRequest]:
        """Requests answered with the success body."""
        return [r for r in self.requests if r.reply_status == 200 and _is_success_body(r.reply_body)]

    @property
    def violations(self) -> list[tuple[str, str]]:
        """``(path, problem)`` for every shape problem seen."""
        return [(r.path, problem) for r in self.requests for problem in r.violations]

    def payloads(self, path: str | None = None) -> list[Any]:
        """The parsed JSON bodies received (optionally only those for ``path``)."""
        return [r.json for r in self.requests if path is None or r.path.split("?", 1)[0] == path]


def _safe_match(predicate: RequestPredicate, request: RecordedRequest) -> bool:
    try:
        return bool(predicate(request))
    except (KeyError, TypeError, AttributeError, IndexError):
        return False


def _is_success_body(body: bytes) -> bool:
    try:
        return bool(json.loads(body) == SUCCESS_BODY)
    except ValueError:
        return False


def _is_nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _device_ids_violations(device_ids: Any, where: str) -> list[str]:
    if not isinstance(device_ids, dict) or not device_ids:
        return [f"{where} must be a non-empty object"]
    return [
        f"{where}.{key} must be a non-empty string" for key, value in device_ids.items() if not _is_nonempty_str(value)
    ]


def track_payload_violations(payload: Any) -> list[str]:
    """Problems with a ``/track/json`` payload (install or event), per spec section 3."""
    if not isinstance(payload, dict):
        return ["body is not a JSON object"]
    problems: list[str] = []
    action = payload.get("action")
    if action not in TRACK_ACTIONS:
        problems.append(f"action {action!r} not in {sorted(TRACK_ACTIONS)}")
    for key in ("kochava_app_id", "kochava_device_id"):
        if not _is_nonempty_str(payload.get(key)):
            problems.append(f"{key} must be a non-empty string")
    data = payload.get("data")
    if not isinstance(data, dict):
        return [*problems, "data must be an object"]
    problems.extend(_device_ids_violations(data.get("device_ids"), "data.device_ids"))
    usertime = data.get("usertime")
    if not isinstance(usertime, int) or isinstance(usertime, bool):
        problems.append(f"data.usertime must be an integer (epoch seconds), got {usertime!r}")
    elif usertime > 10**11:
        problems.append("data.usertime looks like milliseconds")
    for key in ("origination_ip", "device_ua", "device_ver", "app_version"):
        if key in data and not isinstance(data[key], str):
            problems.append(f"data.{key} must be a string")
    if action == "event":
        if not _is_nonempty_str(data.get("event_name")):
            problems.append("data.event_name must be a non-empty string")
        event_data = data.get("event_data")
        if event_data is not None:
            if not isinstance(event_data, dict):
                problems.append("data.event_data must be an object")
            else:
                problems.extend(
                    f"data.event_data.{key} is nested ({type(value).__name__}); Kochava takes one level"
                    for key, value in event_data.items()
                    if isinstance(value, dict | list)
                )
    return problems


def identitylink_payload_violations(payload: Any) -> list[str]:
    """Problems with an IdentityLink payload, per spec section 3."""
    if not isinstance(payload, dict):
        return ["body is not a JSON object"]
    problems: list[str] = []
    if not _is_nonempty_str(payload.get("kochava_app_id")):
        problems.append("kochava_app_id must be a non-empty string")
    problems.extend(_device_ids_violations(payload.get("device_id"), "device_id"))
    data = payload.get("data")
    if not isinstance(data, dict) or not data:
        problems.append("data must be a non-empty object")
    else:
        problems.extend(
            f"data.{key} must be a flat string" for key, value in data.items() if not isinstance(value, str)
        )
    return problems


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted (print the URLs to configure); behaviour flags as in :class:`KochavaSink`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fail-share", type=float, default=0.0)
    parser.add_argument("--fail-status", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sink = KochavaSink(
        args.port, seed=args.seed, fail_share=args.fail_share, fail_status=args.fail_status, latency_s=args.latency
    )
    with sink:
        print(f"Kochava sink on {sink.track_url} and {sink.identitylink_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
