"""``python -m tools.local`` (``make local``): the whole pipeline on this machine, no AWS account.

Starts moto (the AWS endpoint), creates the queues, DLQs and tables from ``infra/resources.py``, starts the local
API, the Kochava sink, the Apple stub and the pollers running the real Lambda handlers, posts every sample in
``events/``, waits until the pipeline is drained and prints a report. ``--once`` then exits (0 when every
accepted event was delivered, filtered or dead-lettered with a reason); otherwise it keeps serving until Ctrl-C.
See docs/local.md.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shlex
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from infra.config import ConfigError, parse_source_apps
from tools import add_version_option
from tools.local import aws, default_lambda_log, default_sink_log
from tools.local.stack import DEFAULT_API_KEY, EVENTS_DIR, LocalConfig, LocalStack

DEFAULT_API_PORT = 8080
DEFAULT_AWS_PORT = 4566  # the port AWS emulators conventionally use


def port_or_ephemeral(preferred: int) -> int:
    """``preferred`` when it is free on 127.0.0.1, else a free one the OS picks now (printed at start; the
    stack's log files are named by it, so it is known before the stack starts)."""
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.local",
        description="The whole pipeline on this machine, no AWS account: moto, a local API Gateway, the real "
        "Lambda handlers, a Kochava sink and an Apple stub. Posts the samples of events/, prints a report "
        "and keeps serving (or exits with --once). See docs/local.md.",
    )
    add_version_option(parser)
    parser.add_argument(
        "--port", type=int, metavar="PORT", help=f"local API port (default {DEFAULT_API_PORT}, or any free one)"
    )
    parser.add_argument(
        "--api-key", default=DEFAULT_API_KEY, metavar="KEY", help="the x-api-key the local API requires"
    )
    parser.add_argument(
        "--source-apps",
        metavar="JSON",
        help='bind keys to apps, as the stack\'s sourceApps: \'{"ios-backend": ["com.example.ios"]}\' adds the key '
        "ios-backend (its value is its name here) that may send only to com.example.ios's Kochava app GUID (from "
        "KOCHAVA_APP_IDS_BY_BUNDLE; an app that resolves to no GUID is refused)",
    )
    parser.add_argument(
        "--allow-unbound-keys",
        action="store_true",
        help="with --source-apps: let keys that are not bound (--api-key) send to any app, as the stack's "
        "requireBoundKeys=false (default: once a key is bound, the others send nothing)",
    )
    parser.add_argument("--kochava-url", metavar="URL", help="deliver to this URL instead of the local Kochava sink")
    parser.add_argument(
        "--identitylink-url", metavar="URL", help="IdentityLink URL (default: --kochava-url's host, Kochava's path)"
    )
    parser.add_argument("--adservices-url", metavar="URL", help="Apple AdServices URL instead of the local stub")
    parser.add_argument(
        "--aws-port",
        type=int,
        metavar="PORT",
        help=f"port of the emulated AWS endpoint (default {DEFAULT_AWS_PORT}, or any free one)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        metavar="X",
        default=aws.TIME_SCALE,
        help="local time runs X times faster than on AWS: visibility timeouts, retry backoff, the Kochava breaker's "
        "probe interval and hold (default %(default)s)",
    )
    parser.add_argument("--once", action="store_true", help="exit after the report (0: nothing lost)")
    parser.add_argument("--no-samples", action="store_true", help="do not post the samples from events/")
    parser.add_argument(
        "--timeout", type=float, metavar="S", default=120.0, help="seconds to wait for the pipeline to drain"
    )
    parser.add_argument("--quiet", action="store_true", help="print the report only")
    parser.add_argument("--verbose", action="store_true", help="show the Lambdas' logs (INFO) on the terminal")
    parser.add_argument(
        "--lambda-log",
        metavar="PATH",
        help="where the Lambdas' JSON logs go (default: one file per stack in the temp directory, named by the AWS "
        f"port: {default_lambda_log('http://127.0.0.1:PORT')})",
    )
    args = parser.parse_args(argv)
    if not args.time_scale >= 1:
        parser.error(f"--time-scale: must be >= 1, got {args.time_scale}")
    return args


def curl_command(stack: LocalStack, api_key: str) -> str:
    samples = sorted(p for p in EVENTS_DIR.glob("*.json") if not p.name.startswith(("segment_", "invalid_")))
    data = f"@{samples[0].relative_to(EVENTS_DIR.parent)}" if samples else '{"batch": []}'
    return (
        f"curl -sS -X POST {stack.api_url}/v1/events -H {shlex.quote('x-api-key: ' + api_key)} "
        f"-H 'content-type: application/json' --data {shlex.quote(data)}"
    )


def aws_hints(stack: LocalStack, lambda_log: Path | None) -> list[str]:
    """The commands to look at this stack, with every flag they need (each one is run by tests/e2e)."""
    creds = (
        f"AWS_ACCESS_KEY_ID={aws.ACCESS_KEY_ID} AWS_SECRET_ACCESS_KEY={aws.SECRET_ACCESS_KEY} "
        f"AWS_DEFAULT_REGION={aws.REGION}"
    )
    log = f" --lambda-log {shlex.quote(str(lambda_log))}" if lambda_log is not None else ""
    return [
        f"  python -m tools.dlq --endpoint-url {stack.endpoint_url} --region {aws.REGION} list",
        f"  python -m tools.trace --endpoint-url {stack.endpoint_url} --region {aws.REGION}{log} <uuid>",
        f"  {creds} aws --endpoint-url {stack.endpoint_url} sqs list-queues",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        bound = LocalConfig(source_apps=parse_source_apps(args.source_apps, "--source-apps"))
        problems = bound.binding_problems()
        if problems:  # as the stack's synth refuses it
            raise ConfigError("; ".join(problems))
    except ConfigError as exc:
        print(f"python -m tools.local: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = sys.stdout
    # The Lambdas log JSON lines (and EMF metrics) to stdout as they would to CloudWatch: into a file here, so the
    # terminal shows the report; --verbose keeps them on the terminal.
    if not args.aws_port:  # chosen now (also for 0): the stack's default log files are named by it
        args.aws_port = port_or_ephemeral(DEFAULT_AWS_PORT if args.aws_port is None else 0)
    lambda_log = Path(args.lambda_log) if args.lambda_log else default_lambda_log(f"http://127.0.0.1:{args.aws_port}")
    with contextlib.ExitStack() as cleanup:
        if not args.verbose:
            log_file = cleanup.enter_context(lambda_log.open("w", encoding="utf-8"))
            cleanup.enter_context(contextlib.redirect_stdout(log_file))
        try:
            return run(args, out, None if args.verbose else lambda_log)
        except KeyboardInterrupt:
            print("interrupted", file=out, flush=True)
            return 130


def run(args: argparse.Namespace, out: TextIO, lambda_log: Path | None) -> int:
    def say(text: str) -> None:
        if not args.quiet:
            print(text, file=out, flush=True)

    config = LocalConfig(
        api_port=args.port if args.port is not None else port_or_ephemeral(DEFAULT_API_PORT),
        aws_port=args.aws_port if args.aws_port is not None else port_or_ephemeral(DEFAULT_AWS_PORT),
        api_key=args.api_key,
        kochava_url=args.kochava_url,
        identitylink_url=args.identitylink_url,
        adservices_url=args.adservices_url,
        log_level="INFO",  # as deployed: the file is their CloudWatch, and tools.trace reads their INFO lines
        source_apps=parse_source_apps(args.source_apps, "--source-apps"),
        require_bound_keys=not args.allow_unbound_keys,
        time_scale=args.time_scale,
        sink_log=None if args.kochava_url else default_sink_log(f"http://127.0.0.1:{args.aws_port}"),
    )
    with LocalStack(config) as stack:
        say(f"AWS endpoint (moto)  {stack.endpoint_url}   queues and tables: {stack.names.prefix}-*")
        say(f"local API            {stack.api_url}   x-api-key: {config.api_key}")
        say(f"Segment HTTP API     {stack.api_url}/v1/batch ...   write key: {config.api_key} (HTTP Basic user name)")
        for name, apps in config.source_apps.items():
            say(f"bound key            {name}   may send to: {', '.join(apps)}")
        if config.source_apps:
            unbound = "send nothing (--allow-unbound-keys: any app)" if config.require_bound_keys else "any app"
            say(f"unbound keys         {config.api_key}   may {unbound}")
        say(f"Kochava              {stack.kochava_url}{' (local sink)' if stack.sink else ''}")
        if config.sink_log is not None:
            say(f"Kochava sink got     {config.sink_log}   (one JSON line per request: tail -f it)")
        say(f"Kochava IdentityLink {stack.identitylink_url}")
        say(f"Apple AdServices     {stack.adservices_url}{' (local stub)' if stack.apple else ''}")
        if lambda_log is not None:
            say(f"Lambda logs          {lambda_log}")
        if not args.no_samples:
            answers = stack.post_samples()
            say(f"posted {len(answers)} samples from {EVENTS_DIR.name}/, waiting for the pipeline to drain...")
        drained = stack.wait_drained(timeout_s=args.timeout)
        report = stack.report()
        print(report.text(), file=out, flush=True)
        if not drained:
            print(f"NOT DRAINED after {args.timeout:.0f} s: queue depths {stack.queue_depths()}", file=out, flush=True)
        if args.once:
            return 0 if drained and report.ok else 1
        say("")
        say(f"Serving: API {stack.api_url}, x-api-key {config.api_key}. Post an event:")
        say(f"  {curl_command(stack, config.api_key)}")
        say("Inspect the DLQs and queues:")
        for line in aws_hints(stack, lambda_log):
            say(line)
        say("Ctrl-C to stop.")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        last = stack.summary()
        try:
            while not stop.wait(1.0):
                now = stack.summary()  # queued, in flight and parked: a changed line each time something moved
                if now != last:
                    say(f"[{time.strftime('%H:%M:%S')}] {now}")
                    last = now
        except KeyboardInterrupt:
            pass
        say("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
