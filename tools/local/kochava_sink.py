"""A local stand-in for Kochava's server-to-server API, for tests, benchmarks and ``make local``.

Serves ``POST /track/json`` (install / event) and ``POST /v1/cpi/identityLink.php`` (IdentityLink), records every
request (path, headers, parsed JSON, time, TCP connection), answers Kochava's success ``{"success":"1"}`` and
**enforces Kochava's documented rules** (docs/kochava.md, "What the local sink refuses"): a request that breaks one
is recorded with its violations and answered ``400`` with them in the body, as Kochava refuses a payload it cannot
use, so every end-to-end test is also a conformance test (the deliverer dead-letters it ``kochava_rejected``, the
local report counts it as a payload problem, and a test can assert ``sink.violations == []`` after a whole run).

The rules, each checked by :func:`track_payload_violations` / :func:`identitylink_payload_violations`:

* ``action``, ``kochava_app_id``, ``kochava_device_id`` present; at least one device id;
* ``usertime`` an integer in epoch **seconds** (not milliseconds);
* ``device_ua`` percent-encoded (no raw space, ``/``, ``;``...); without it, the HTTP header ``User-Agent: Unknown``
  (Kochava's "S2S without Device UA");
* ``app_tracking_transparency`` on every iOS payload of iOS 14 or later (or of an unknown OS), never on Android;
* ``event_data`` one level deep; its ``sum`` a number;
* ``gdpr_privacy_consent`` an object of 0/1 flags and a string ``tc_string``;
* IdentityLink: ``data`` flat strings.

It can be told to misbehave, deterministically:

* a scripted sequence for the next requests: ``sink.script([500, 200])`` or ``[Reply.hanging(), 200]``;
* a rule for the requests that match a predicate: ``sink.add_rule(lambda r: r.uuid == "bad", [400])``;
* a share of failures from a seeded generator: ``KochavaSink(fail_share=0.3, fail_status=429, seed=7)``;
* a fixed latency for every answer: ``KochavaSink(latency_s=0.05)``.

Example:
    >>> import requests
    >>> good = {"action": "event", "kochava_app_id": "g", "kochava_device_id": "d",
    ...         "data": {"device_ids": {"adid": "a"}, "usertime": 1700000000, "event_name": "x"}}
    >>> unknown = {"User-Agent": "Unknown"}  # the payload has no device_ua
    >>> with KochavaSink() as sink:
    ...     sink.script([500])
    ...     first = requests.post(sink.track_url, json=good, headers=unknown, timeout=2).status_code
    ...     second = requests.post(sink.track_url, json=good, headers=unknown, timeout=2).json()
    ...     refused = requests.post(sink.track_url, json={"action": "event"}, timeout=2).status_code
    >>> first, second, refused, len(sink.requests)
    (500, {'success': '1'}, 400, 3)

Run alone (``python -m tools.local.kochava_sink --port 8700``) it serves until interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from tools.local.stub_http import RecordedRequest, Reply, StubServer

TRACK_PATH = "/track/json"
IDENTITYLINK_PATH = "/v1/cpi/identityLink.php"
SUCCESS_BODY = {"success": "1"}
TRACK_ACTIONS = frozenset({"install", "event"})
# Kochava's "S2S without Device UA": the User-Agent header of a request whose payload has no device_ua.
NO_DEVICE_UA_USER_AGENT = "Unknown"
ATT_DETAILS = frozenset({"authorized", "denied", "restricted", "not_determined"})
CONSENT_FLAGS = ("gdpr_applies", "ad_user_data", "ad_personalization")
# What encodeURIComponent leaves as is, plus the escapes themselves: anything else in device_ua was not encoded.
_RAW_UA_CHAR = re.compile(r"[^A-Za-z0-9\-_.!~*'()%]")
# The iOS version in a device_ver ("iPhone15,2-iOS-17.1") or a decoded user agent ("iPhone OS 17_1", "CPU OS 16_0",
# or the "iPhone-iOS-9.3.4" of Kochava's own install example).
_DEVICE_VER_IOS = re.compile(r"-iOS-(\d+)")
_UA_IOS = re.compile(r"(?:\bOS |\biOS[- ])(\d+)[_.]\d")

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
        """Path check, then Kochava's rules (400 with the violations), then the test's rules, then the script, then
        the seeded failure share, then success."""
        if request.path.split("?", 1)[0] not in (TRACK_PATH, IDENTITYLINK_PATH):
            return Reply.json(404, {"error": f"sink: no route {request.path}"})
        if request.violations:
            return Reply.json(400, {"success": "0", "error": "sink: " + "; ".join(request.violations)})
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
            return track_payload_violations(request.json) + user_agent_violations(request.json, request.headers)
        if path == IDENTITYLINK_PATH:
            return identitylink_payload_violations(request.json)
        return []

    @property
    def delivered(self) -> list[RecordedRequest]:
        """Requests answered with the success body."""
        return [r for r in self.requests if r.reply_status == 200 and _is_success_body(r.reply_body)]

    @property
    def violations(self) -> list[tuple[str, str]]:
        """``(path, problem)`` for every rule broken (each such request was answered 400)."""
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
    """Problems with a ``/track/json`` payload (install or event): Kochava's documented rules (module docstring)."""
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
    device_ua = data.get("device_ua")
    if isinstance(device_ua, str) and _RAW_UA_CHAR.search(device_ua):
        problems.append("data.device_ua is not URL-encoded")
    problems.extend(att_violations(data))
    problems.extend(consent_violations(data.get("gdpr_privacy_consent")))
    if action == "event":
        problems.extend(_event_violations(data))
    return problems


def _event_violations(data: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    if not _is_nonempty_str(data.get("event_name")):
        problems.append("data.event_name must be a non-empty string")
    event_data = data.get("event_data")
    if event_data is None:
        return problems
    if not isinstance(event_data, dict):
        return [*problems, "data.event_data must be an object"]
    problems.extend(
        f"data.event_data.{key} is nested ({type(value).__name__}); Kochava takes one level"
        for key, value in event_data.items()
        if isinstance(value, dict | list)
    )
    if "sum" in event_data and not _is_number(event_data["sum"]):
        problems.append(f"data.event_data.sum must be a number, got {event_data['sum']!r}")
    return problems


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def ios_major(data: dict[str, Any]) -> int | None:
    """The iOS major version a payload names (``device_ver``, else the decoded ``device_ua``), or None."""
    device_ver = data.get("device_ver")
    found = _DEVICE_VER_IOS.search(device_ver) if isinstance(device_ver, str) else None
    if found is None and isinstance(data.get("device_ua"), str):
        found = _UA_IOS.search(unquote(data["device_ua"]))
    return int(found.group(1)) if found else None


def att_violations(data: dict[str, Any]) -> list[str]:
    """Kochava's iOS 14+ rule (install and post-install docs): ``app_tracking_transparency`` on every payload of
    an iOS device on 14 or later (an unknown version may be 14+), a boolean ``att`` and a known ``att_detail``;
    never on Android."""
    device_ids = data.get("device_ids")
    ids = device_ids if isinstance(device_ids, dict) else {}
    ios = "idfa" in ids or "idfv" in ids
    block = data.get("app_tracking_transparency")
    if not ios:
        return ["data.app_tracking_transparency on a payload without an iOS id"] if block is not None else []
    major = ios_major(data)
    if block is None:
        if major is None or major >= 14:
            version = "an unknown iOS version" if major is None else f"iOS {major}"
            return [f"data.app_tracking_transparency missing on {version} (Kochava drops the IDFA)"]
        return []
    if not isinstance(block, dict):
        return ["data.app_tracking_transparency must be an object"]
    problems = []
    if not isinstance(block.get("att"), bool):
        problems.append("data.app_tracking_transparency.att must be true or false")
    if block.get("att_detail") not in ATT_DETAILS:
        problems.append(f"data.app_tracking_transparency.att_detail must be one of {sorted(ATT_DETAILS)}")
    for key in ("att_time", "att_duration"):
        value = block.get(key)
        if key in block and (not isinstance(value, int) or isinstance(value, bool)):
            problems.append(f"data.app_tracking_transparency.{key} must be an integer (seconds)")
    return problems


def consent_violations(consent: Any) -> list[str]:
    """Kochava's Google DMA object: 0/1 flags, a string ``tc_string``."""
    if consent is None:
        return []
    if not isinstance(consent, dict) or not consent:
        return ["data.gdpr_privacy_consent must be a non-empty object"]
    problems = [
        f"data.gdpr_privacy_consent.{key} must be 0 or 1"
        for key in CONSENT_FLAGS
        if key in consent and (consent[key] not in (0, 1) or isinstance(consent[key], bool))
    ]
    if "tc_string" in consent and not isinstance(consent["tc_string"], str):
        problems.append("data.gdpr_privacy_consent.tc_string must be a string")
    return problems


def user_agent_violations(payload: Any, headers: Mapping[str, str]) -> list[str]:
    """Kochava's "S2S without Device UA": no ``data.device_ua`` -> the header ``User-Agent: Unknown``."""
    data = payload.get("data") if isinstance(payload, dict) else None
    device_ua = data.get("device_ua") if isinstance(data, dict) else None
    if isinstance(device_ua, str) and device_ua.strip():
        return []
    agent = headers.get("user-agent")
    if agent != NO_DEVICE_UA_USER_AGENT:
        return [f"no data.device_ua but User-Agent {agent!r}, expected {NO_DEVICE_UA_USER_AGENT!r}"]
    return []


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
