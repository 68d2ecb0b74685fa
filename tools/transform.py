"""What will Kochava receive? Events on stdin -> one JSON line per event on stdout, through the real mapping.

Reads one event object, a JSON array of events, a ``{"batch": [...]}`` object, or JSON lines; writes, in input
order, one line per event::

    {"uuid": ..., "status": "ok"|"rejected"|"filtered", "kind": "install"|"event"|"identityLink",
     "payload": {...exactly the body that would be POSTed...}, "reason": ..., "warnings": [...]}

Rejected lines also carry ``field`` and ``error``; a Segment call the pipeline does not map (``page``,
``group``, ``alias``, or one whose ``integrations`` switch Kochava off) is ``filtered`` with ``type`` and
``detail``. With ``--api-key-id ID`` the key's app binding (``SOURCE_APPS``) applies as in the enricher
(``app_not_allowed``). It reads the same ``KOCHAVA_APP_ID_*`` settings as the
Lambdas (``--app-id-ios`` / ``--app-id-android`` override them) and never touches the network. Exit status: 0
when nothing was rejected, 1 otherwise, 2 on a usage error.

Example::

    KOCHAVA_APP_ID_IOS=kotest-ios python -m tools.transform --now 2024-05-01T12:00:00Z < events/ios_install.json
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import orjson

from functions.pipeline.contract import parse_timestamp
from functions.pipeline.events import (
    FilteredCall,
    Parsed,
    ParsedValues,
    Rejection,
    Route,
    parse_body_values,
    parse_event_values,
    parse_warnings,
)
from functions.pipeline.kochava import to_kochava
from functions.pipeline.segment import Received
from functions.pipeline.settings import Settings, SettingsError
from functions.pipeline.sources import check_event, unresolved_bindings
from tools import add_version_option

WRITE_CHUNK = 512  # lines buffered per write
READ_BLOCK = 256 * 1024  # bytes read at a time from JSON-lines input


def rejection_line(rejection: Rejection) -> dict[str, Any]:
    """The output line for an event that failed validation."""
    return {
        "uuid": rejection.uuid,
        "status": "rejected",
        "kind": None,
        "payload": None,
        "reason": rejection.reason,
        "warnings": [],
        "field": rejection.field,
        "error": rejection.message,
    }


def filtered_line(call: FilteredCall) -> dict[str, Any]:
    """The output line for a Segment call accepted but not mapped (``page``, ``group``, ``alias``...)."""
    return {
        "uuid": call.uuid,
        "status": "filtered",
        "kind": None,
        "payload": None,
        "reason": call.reason,
        "warnings": [],
        "type": call.call_type,
        "detail": call.message,
    }


def read_events(data: bytes, route: Route, received: Received | None = None) -> Iterator[ParsedValues]:
    """Every accepted stdin form -> parsed events in order (a bad line is a rejection, not a crash), each event as
    plain data (``events.EventValues``: the enricher's hot path).

    ``received``: what a Segment call without ``timestamp`` is timed against, as the enricher does with the API's
    received time (a JSON array of calls is parsed call by call, without it)."""
    stripped = data.strip()
    if not stripped:
        return
    try:
        document = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        document = None
        if b"\n" not in stripped:  # one malformed document: report it as such
            yield from parse_body_values(stripped, route, received)
            return
    if document is not None:
        if isinstance(document, list):
            yield from (parse_event_values(raw, route) for raw in document)
        else:
            yield from parse_body_values(stripped, route, received)
        return
    for line in stripped.splitlines():  # JSON lines
        if line.strip():
            yield from parse_body_values(line, route, received)


def read_stream(stdin: BinaryIO, route: Route, received: Received | None = None) -> Iterator[ParsedValues]:
    """Exactly ``read_events(stdin.read(), route, received)``, but JSON lines are parsed as they are read.

    Holding a large input whole (plus its stripped copy and a list of every line) cost more in page faults than
    the JSON parsing did (profiled: 100 MB of JSON lines, 0.85 s of system time). When the first non-blank line is
    a JSON document on its own and another non-blank line follows, the input cannot be one JSON document, so it is
    JSON lines: those are streamed, split and stripped as ``read_events`` splits and strips them. Anything else
    (one document, pretty-printed or not, or garbage) is read whole and goes through ``read_events``.
    """
    head: list[bytes] = []
    first = _next_nonblank(stdin, head)
    if first is None:
        yield from read_events(b"".join(head), route, received)
        return
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        yield from read_events(b"".join(head) + stdin.read(), route, received)
        return
    if _next_nonblank(stdin, head) is None:
        yield from read_events(b"".join(head), route, received)
        return
    pending: bytes | None = None  # the last non-blank line seen: stripped at its end only if it is the last one
    for line in _split_lines(head, stdin):
        if not line.strip():
            continue
        if pending is None:  # the input's first line: read_events strips the input's leading whitespace
            pending = line.lstrip()
            continue
        yield from parse_body_values(pending, route, received)
        pending = line
    if pending is not None:
        yield from parse_body_values(pending.rstrip(), route, received)


def _next_nonblank(stdin: BinaryIO, seen: list[bytes]) -> bytes | None:
    """Read lines into ``seen`` up to and including the next one with something else than whitespace."""
    for line in stdin:
        seen.append(line)
        if line.strip():
            return line
    return None


def _split_lines(head: list[bytes], rest: BinaryIO) -> Iterator[bytes]:
    """The lines of ``head`` then of ``rest`` as ``bytes.splitlines`` cuts them (at ``\n``, ``\r\n`` and ``\r``),
    read in 256 KiB blocks: a ``readline`` per line cost 7% of a run (py-spy)."""
    for line in head:
        yield from line.splitlines()
    carry = b""
    while block := rest.read(READ_BLOCK):
        pieces = (carry + block).split(b"\n") if carry else block.split(b"\n")
        carry = pieces.pop()
        for piece in pieces:
            if b"\r" in piece:
                yield from piece.splitlines()
            else:
                yield piece
    yield from carry.splitlines()


def transform(
    items: Iterable[ParsedValues | Parsed],
    settings: Settings,
    now: float,
    api_key_id: str | None = None,
    route: Route = "native",
) -> Iterator[dict[str, Any]]:
    """Parsed events (plain data, or the models) -> output lines; ``api_key_id``: apply that key's app binding
    (``SOURCE_APPS``) as the enricher does."""
    for item in items:
        if isinstance(item, Rejection):
            yield rejection_line(item)
        elif isinstance(item, FilteredCall):
            yield filtered_line(item)
        else:
            denied = check_event(settings, api_key_id, item, route) if api_key_id else None
            if denied is None:
                outcome = to_kochava(item, settings, now)
                outcome.warnings[:0] = parse_warnings(item)  # a Segment call's derived timestamp, as the enricher
                yield outcome.to_line()
            else:
                uuid = item["uuid"] if isinstance(item, dict) else item.uuid
                yield rejection_line(Rejection(denied.reason, denied.message, denied.field, None, uuid=uuid))


def run(
    stdin: BinaryIO, stdout: BinaryIO, settings: Settings, route: Route, now: float, api_key_id: str | None = None
) -> int:
    """Transform stdin to stdout; returns the exit status (0: nothing rejected, 1: something was)."""
    rejected = False
    buffer: list[bytes] = []
    received = Received(None, int(now * 1000))  # --now stands for the API's received time (no request id here)
    for line in transform(read_stream(stdin, route, received), settings, now, api_key_id, route):
        rejected = rejected or line["status"] == "rejected"
        buffer.append(orjson.dumps(line))
        if len(buffer) >= WRITE_CHUNK:
            stdout.write(b"\n".join(buffer) + b"\n")
            buffer.clear()
    if buffer:
        stdout.write(b"\n".join(buffer) + b"\n")
    stdout.flush()
    return 1 if rejected else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.transform",
        description="Show exactly what Kochava would receive for the events on stdin (no network).",
        epilog=(
            'stdin: one event, a JSON array, {"batch": [...]}, or JSON lines. '
            "Settings come from the same environment variables as the Lambdas "
            "(KOCHAVA_APP_ID_IOS, KOCHAVA_APP_ID_ANDROID, KOCHAVA_APP_IDS_BY_BUNDLE, FILTERED_EVENTS, "
            "EVENT_NAME_MAP, SOURCE_APPS). Segment page, group and alias calls are reported filtered. "
            "Exit 0 when nothing was rejected, 1 otherwise."
        ),
    )
    add_version_option(parser)
    parser.add_argument(
        "--format",
        choices=("native", "segment"),
        default="native",
        help="shape of the input events: native (POST /v1/events) or segment (POST /v1/segment)",
    )
    parser.add_argument(
        "--now",
        metavar="TIME",
        help="the clock for the AdServices 24 h window, and the received time a Segment call without timestamp is "
        "timed against (ISO-8601, 'YYYY-MM-DD HH:MM:SS' or epoch); default: now",
    )
    parser.add_argument("--app-id-ios", metavar="GUID", help="Kochava app GUID for iOS (overrides the environment)")
    parser.add_argument("--app-id-android", metavar="GUID", help="Kochava app GUID for Android (overrides env)")
    parser.add_argument(
        "--api-key-id",
        metavar="ID",
        help="the API key id the events come with: its app binding in SOURCE_APPS applies (app_not_allowed)",
    )
    return parser


M_TOP_PAD = -2  # glibc mallopt(3) parameter: bytes kept at the top of the heap when it grows or shrinks
HEAP_TOP_PAD = 16 * 1024 * 1024


def _keep_heap_top() -> None:
    """Ask glibc to keep 16 MiB at the top of the heap instead of giving it back to the OS after every batch.

    Each event's objects are freed as soon as its line is written, so the heap top shrinks and grows thousands of
    times per run (strace: a ``brk`` per ~35 events), and every regrowth page-faults: 170,000 minor faults and
    0.5 s of system time per 150,000 events, against 6,000 faults with the pad; peak RSS unchanged. A no-op
    where the C library has no ``mallopt`` (macOS, Windows).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return
    mallopt(M_TOP_PAD, HEAP_TOP_PAD)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.app_id_ios:
        env["KOCHAVA_APP_ID_IOS"] = args.app_id_ios
    if args.app_id_android:
        env["KOCHAVA_APP_ID_ANDROID"] = args.app_id_android
    try:
        settings = Settings.from_env(env)
        now = parse_timestamp(args.now) if args.now else time.time()
    except (SettingsError, ValueError) as exc:
        parser.error(str(exc))
    for problem in unresolved_bindings(
        settings.source_apps,
        app_ids_by_bundle=settings.kochava_app_ids_by_bundle,
        platform_app_ids=[g for g in (settings.kochava_app_id_ios, settings.kochava_app_id_android) if g],
        label="SOURCE_APPS",
        bundles_label="KOCHAVA_APP_IDS_BY_BUNDLE",
    ):  # the stack's synth refuses such a binding; here it only reaches nothing
        print(f"warning: {problem}", file=sys.stderr)
    # Everything imported so far lives as long as the process: move it out of the collector's sight, so the
    # collections that the events' allocations trigger do not walk it again and again (about 4% of the run).
    gc.freeze()
    _keep_heap_top()
    return run(sys.stdin.buffer, sys.stdout.buffer, settings, args.format, now, args.api_key_id)


if __name__ == "__main__":
    sys.exit(main())
