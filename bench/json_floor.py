"""The JSON floor of the throughput benchmark: what plain ``json.loads`` + ``json.dumps`` cost on the same input.

Reads the same JSON lines as ``python -m tools.transform`` from stdin, parses each line with the standard
library, and writes every event (each element of a ``{"batch": [...]}`` body) back as one JSON line, buffered
the same way. Nothing else: no validation, no mapping. ``bench.transform_throughput`` runs it as a child process,
pinned to the same core, next to the transform, and divides. With ``--orjson`` the same with ``orjson.loads`` and
``orjson.dumps`` (issue 27's floor: the fastest JSON in and out at hand).
"""

from __future__ import annotations

import json
import sys

import orjson


def orjson_floor() -> int:
    out: list[bytes] = []
    write = sys.stdout.buffer.write
    for line in sys.stdin.buffer.read().splitlines():
        if not line.strip():
            continue
        document = orjson.loads(line)
        events = document["batch"] if isinstance(document, dict) and "batch" in document else [document]
        for event in events:
            out.append(orjson.dumps(event))
            if len(out) >= 512:
                write(b"\n".join(out) + b"\n")
                out.clear()
    if out:
        write(b"\n".join(out) + b"\n")
    sys.stdout.flush()
    return 0


def main() -> int:
    if "--orjson" in sys.argv[1:]:
        return orjson_floor()
    out: list[str] = []
    write = sys.stdout.write
    for line in sys.stdin.buffer.read().splitlines():
        if not line.strip():
            continue
        document = json.loads(line)
        events = document["batch"] if isinstance(document, dict) and "batch" in document else [document]
        for event in events:
            out.append(json.dumps(event))
            if len(out) >= 512:
                write("\n".join(out) + "\n")
                out.clear()
    if out:
        write("\n".join(out) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
