"""``python -m tools.smoke``: after a deploy, prove the front half of the stack end to end, sending nothing to Kochava.

Through each kind of route it posts one call the enricher filters on purpose (a ``heartbeat``: ``FILTERED_EVENTS``'
default), then traces each one (``tools.trace``: the enricher's log line) until it says ``filtered``:

- ``/v1/events``, a native event with ``x-api-key``;
- ``/v1/batch``, a Segment batch with HTTP Basic auth, as the Segment and RudderStack libraries send it;
- ``/v1/track``, a single Segment call with Basic auth (the path's mapping template sets its ``type``);
- ``/v1/batch`` again, gzip-compressed (``Content-Encoding: gzip``).

A wrong key must be refused (401 or 403) on ``/v1/events`` and on ``/v1/batch``. So it covers the authorizer, the
mapping templates, gzip, the queue and the enricher, not the deliverer (nothing reaches it). Exit 0 only when every
check passed; 1 when one failed; 2 bad arguments.

``--alarm [NAME]`` also proves paging: it sets one alarm (default ``kochava-<stage>-IngestDlqNotEmpty``) to ALARM
with ``SetAlarmState``, so its actions publish to the alarm topic (on-call gets the e-mail), then back to OK (a
second, "resolved" message). It checks the alarm has actions and that CloudWatch took each state.

Where: the stack flags of the other on-call tools (``--stack``, ``--stage``, ``--endpoint-url``, ``--region``,
``--profile``; ``--lambda-log`` with ``--endpoint-url``), plus ``--api-url`` and ``--api-key``. With ``--stack`` both
come from the stack's outputs (``ApiUrl``, ``ApiKeyId`` and the key's value); the local stack's defaults are
``tools.local``'s. A stack deployed with a different ``filteredEvents`` needs ``--event NAME`` (a name it filters).

Example:
    >>> [check.name for check in posts("smoke-1", "heartbeat", now_iso="2026-12-07T12:00:00Z")]
    ['native /v1/events', 'segment batch /v1/batch (Basic auth)', 'segment call /v1/track (Basic auth)', \
'segment batch /v1/batch (Basic auth, gzip)']
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import sys
import time
import uuid as uuid_module
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

import requests

from functions.names import API_KEY_HEADER
from infra.resources import OUTPUT_API_KEY_ID, OUTPUT_API_URL, ResourceNames
from tools import add_version_option
from tools.oncall import (
    AWS_ERRORS,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    STACK_DEFAULTS,
    AwsOptions,
    DiscoveryError,
    add_stack_options,
    make_client,
    make_session,
    parse_with_defaults,
    stage_of,
)
from tools.trace import cli as trace_cli

DEFAULT_EVENT = "heartbeat"
LOCAL_API_URL = "http://127.0.0.1:8080"  # tools.local's default port
LOCAL_API_KEY = "local-dev-key"  # tools.local's default key
REFUSED = (401, 403)
DEVICE = {"platform": "android", "id": "5m0k3-7e57-d3v1ce"}


@dataclass
class Check:
    """One request and what it must get; ``uuid`` when the call must then be traced to ``filtered``."""

    name: str
    path: str
    body: Any
    basic_auth: bool
    expect: tuple[int, ...]
    uuid: str | None = None
    gzip: bool = False
    wrong_key: bool = False
    status: int | None = None
    problems: list[str] = field(default_factory=list)


def _segment_call(message_id: str, event: str, now_iso: str, *, typed: bool = True) -> dict[str, Any]:
    call = {
        "messageId": message_id,
        "event": event,
        "timestamp": now_iso,
        "properties": {"smoke": True},
        "context": {"device": {"type": DEVICE["platform"], "id": DEVICE["id"]}},
    }
    return {"type": "track", **call} if typed else call


def posts(run_id: str, event: str, *, now_iso: str) -> list[Check]:
    """The four calls that must be accepted and end ``filtered``, one uuid each."""
    native_uuid = f"{run_id}-native"
    native = {"uuid": native_uuid, "type": "track", "event": event, "timestamp": now_iso, "device": DEVICE}
    batch = {"batch": [_segment_call(f"{run_id}-batch", event, now_iso)], "sentAt": now_iso}
    zipped = {"batch": [_segment_call(f"{run_id}-gzip", event, now_iso)], "sentAt": now_iso}
    single = _segment_call(f"{run_id}-track", event, now_iso, typed=False)
    return [
        Check("native /v1/events", "/v1/events", native, False, (202,), native_uuid),
        Check("segment batch /v1/batch (Basic auth)", "/v1/batch", batch, True, (200,), f"{run_id}-batch"),
        Check("segment call /v1/track (Basic auth)", "/v1/track", single, True, (200,), f"{run_id}-track"),
        Check("segment batch /v1/batch (Basic auth, gzip)", "/v1/batch", zipped, True, (200,), f"{run_id}-gzip", True),
    ]


def refusals(run_id: str, event: str, *, now_iso: str) -> list[Check]:
    """A wrong key on each kind of auth: refused, and nothing to trace (the call never reaches the queue)."""
    native = {"uuid": f"{run_id}-wrong-key", "type": "track", "event": event, "timestamp": now_iso, "device": DEVICE}
    batch = {"batch": [_segment_call(f"{run_id}-wrong-basic", event, now_iso)]}
    return [
        Check("wrong x-api-key on /v1/events", "/v1/events", native, False, REFUSED, wrong_key=True),
        Check("wrong Basic auth on /v1/batch", "/v1/batch", batch, True, REFUSED, wrong_key=True),
    ]


def send(check: Check, api_url: str, api_key: str, session: requests.Session) -> None:
    """POST the check's body; record the status and any problem."""
    key = f"smoke-wrong-{uuid_module.uuid4().hex[:12]}" if check.wrong_key else api_key
    headers = {"content-type": "application/json"}
    if check.basic_auth:
        headers["authorization"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    else:
        headers[API_KEY_HEADER] = key
    data = json.dumps(check.body).encode()
    if check.gzip:
        data = gzip.compress(data)
        headers["content-encoding"] = "gzip"
    try:
        response = session.post(api_url.rstrip("/") + check.path, data=data, headers=headers, timeout=30)
    except requests.RequestException as exc:
        check.problems.append(f"no answer: {exc}")
        return
    check.status = response.status_code
    if response.status_code not in check.expect:
        wanted = " or ".join(map(str, check.expect))
        check.problems.append(f"HTTP {response.status_code}, expected {wanted}: {response.text[:300]}")


def trace_until_filtered(checks: list[Check], trace_argv: list[str], timeout_s: float) -> None:
    """Trace every accepted call until all say ``filtered`` or ``timeout_s`` passed; record what each said last."""
    pending = {c.uuid: c for c in checks if c.uuid and not c.problems}
    deadline = time.monotonic() + timeout_s
    last: dict[str, str] = {}
    while pending:
        args = trace_cli.parse_args([*trace_argv, *pending])
        sources = trace_cli.build_sources(args, int(time.time() * 1000))
        for trace in trace_cli.trace_all(sources, list(pending), scan_limit=args.scan_limit, reveal=False):
            last[trace.uuid] = f"{trace.status}: {trace.summary}"
            if trace.status == "filtered":
                del pending[trace.uuid]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(2)
    for uuid, check in pending.items():
        check.problems.append(f"not filtered after {timeout_s:.0f} s; tools.trace says {last.get(uuid, 'nothing')}")


ALARM_DEFAULT = "IngestDlqNotEmpty"  # infra/constructs/monitoring.py: "<prefix>-<queue>DlqNotEmpty"


def page_alarm(cloudwatch: Any, name: str, *, hold_s: float = 5.0) -> list[str]:
    """Set alarm ``name`` to ALARM, then back to OK; the problems found (none: its actions were triggered)."""
    found = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    if not found:
        return [f"no alarm named {name}"]
    problems = [] if found[0].get("AlarmActions") else [f"{name} has no alarm actions: nobody would be paged"]
    for state in ("ALARM", "OK"):
        reason = f"tools.smoke: paging test ({'set' if state == 'ALARM' else 'cleared'} by hand)"
        cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason=reason)
        now = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"]
        if now != state:
            problems.append(f"{name} is {now} after SetAlarmState {state}")
        if state == "ALARM":
            time.sleep(hold_s)
    return problems


def alarm_check(args: argparse.Namespace) -> Check:
    """The ``--alarm`` check against the stack the other flags name."""
    stage = stage_of(stack=args.stack, stage=args.stage, endpoint_url=args.endpoint_url) or "dev"
    name = args.alarm if args.alarm != ALARM_DEFAULT else f"{ResourceNames(stage).prefix}-{ALARM_DEFAULT}"
    check = Check(f"alarm {name} to ALARM and back (paging)", "", None, False, ())
    opts = AwsOptions.of(args)
    check.problems = page_alarm(make_client(make_session(opts), "cloudwatch", opts), name)
    return check


def discover_api(args: argparse.Namespace) -> tuple[str, str]:
    """The API's base URL and key: the flags, the stack's outputs, or the local stack's defaults."""
    url, key = args.api_url, args.api_key
    if (url and key) or not args.stack:
        if args.endpoint_url:
            return url or LOCAL_API_URL, key or LOCAL_API_KEY
        if not (url and key):
            raise DiscoveryError("give --stack NAME (the API from its outputs) or --api-url and --api-key")
        return url, key
    opts = AwsOptions.of(args)
    session = make_session(opts)
    stacks = make_client(session, "cloudformation", opts).describe_stacks(StackName=args.stack)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in (stacks[0].get("Outputs") or [])}
    if not url:
        url = outputs.get(OUTPUT_API_URL) or ""
    if not key:
        key_id = outputs.get(OUTPUT_API_KEY_ID)
        if not key_id:
            raise DiscoveryError(f"stack {args.stack!r} has no {OUTPUT_API_KEY_ID} output (authMode=iam?): --api-key")
        apigateway = make_client(session, "apigateway", opts)
        key = apigateway.get_api_key(apiKey=key_id, includeValue=True)["value"]
    if not url:
        raise DiscoveryError(f"stack {args.stack!r} has no {OUTPUT_API_URL} output: give --api-url")
    return url, key


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.smoke",
        description=(__doc__ or "").split("\n\n")[0],
        argument_default=argparse.SUPPRESS,
    )
    add_version_option(parser)
    add_stack_options(parser.add_argument_group("where the stack is (as tools.trace)"))
    parser.add_argument("--lambda-log", metavar="PATH", help="with --endpoint-url: the local Lambdas' log file")
    parser.add_argument("--api-url", metavar="URL", help="the API's base URL (default: the stack output ApiUrl)")
    parser.add_argument("--api-key", metavar="KEY", help="a valid API key (default: the stack's ApiKeyId's value)")
    parser.add_argument("--event", default=DEFAULT_EVENT, metavar="NAME", help="an event name the stack filters")
    parser.add_argument("--timeout", type=float, default=120.0, metavar="S", help="seconds to wait for the traces")
    parser.add_argument("--json", action="store_true", default=False, help="one JSON document on stdout")
    parser.add_argument(
        "--alarm",
        nargs="?",
        const=ALARM_DEFAULT,
        default=None,
        metavar="NAME",
        help=f"also set one alarm (default <prefix>-{ALARM_DEFAULT}) to ALARM and back, to prove paging",
    )
    return parser


def _trace_argv(args: argparse.Namespace) -> list[str]:
    argv = [f"--{name.replace('_', '-')}={getattr(args, name)}" for name in STACK_DEFAULTS if getattr(args, name)]
    if args.lambda_log:
        argv.append(f"--lambda-log={args.lambda_log}")
    return [*argv, "--since=1h"]


def report(checks: list[Check], out: TextIO, *, as_json: bool) -> None:
    if as_json:
        rows = [{"check": c.name, "status": c.status, "uuid": c.uuid, "problems": c.problems} for c in checks]
        out.write(json.dumps({"ok": not any(c.problems for c in checks), "checks": rows}) + "\n")
        return
    for check in checks:
        verdict = "FAIL" if check.problems else "ok"
        traced = " -> filtered" if check.uuid and not check.problems else ""
        answer = f": HTTP {check.status}{traced}" if check.path else ""
        print(f"{verdict:<5}{check.name}{answer}", file=out)
        for problem in check.problems:
            print(f"       {problem}", file=out)


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        args = parse_with_defaults(build_parser(), argv, {**STACK_DEFAULTS, "api_url": None, "api_key": None})
        args.lambda_log = getattr(args, "lambda_log", None)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        api_url, api_key = discover_api(args)
        run_id = f"smoke-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid_module.uuid4().hex[:8]}"
        now_iso = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        checks = posts(run_id, args.event, now_iso=now_iso) + refusals(run_id, args.event, now_iso=now_iso)
        with requests.Session() as session:
            for check in checks:
                send(check, api_url, api_key, session)
        trace_until_filtered(checks, _trace_argv(args), args.timeout)
        if args.alarm:
            checks.append(alarm_check(args))
    except (DiscoveryError, *AWS_ERRORS) as exc:
        print(f"error: {exc}", file=err)
        return EXIT_ERROR
    report(checks, out, as_json=args.json)
    return EXIT_ERROR if any(check.problems for check in checks) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
