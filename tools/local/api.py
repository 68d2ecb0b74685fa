"""The local API Gateway: the REST API's contract on ``http://127.0.0.1:PORT``, in front of the ingest queue.

What the deployed API does, and so what this does, in order:

1. ``POST /v1/events`` (route ``native``) and ``POST /v1/segment`` (route ``segment``); any other path or method
   answers ``403 {"message": "Missing Authentication Token"}`` as API Gateway does.
2. ``x-api-key`` must match: otherwise ``403 {"message": "Forbidden"}``.
3. Body at most ``MAX_BODY_BYTES`` (1 MiB): otherwise ``413`` (checked early, to avoid reading a huge body).
4. The body must be JSON and valid against ``infra/schemas/<route>_body.schema.json`` (the very files API Gateway
   validates with, JSON schema draft 4): otherwise ``400 {"message": "Invalid request body", "errors": [...]}``.
5. ``SendMessage`` to the ingest queue, body exactly as received, with the attributes ``request_id`` (String),
   ``received_at_ms`` (Number) and ``route`` (String); answer ``202 {"message_id", "request_id"}``. SQS counts
   those attributes toward its 1 MiB too (moto does not): when body + attributes are over it
   (``resources.sqs_message_bytes``), ``413`` as the deployed API answers when SQS refuses the message. When SQS
   fails, ``500`` - never a 202 for a message that is not in the queue.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator, ValidationError
from jsonschema.exceptions import best_match

from functions.names import (
    API_MESSAGE_ATTRIBUTES,
    ATTR_RECEIVED_AT_MS,
    ATTR_REQUEST_ID,
    ATTR_ROUTE,
    BODY_TOO_LARGE_ERROR,
    MAX_BODY_BYTES,
    ROUTE_PATHS,
    ROUTES,
    SQS_MAX_MESSAGE_BYTES,
    sqs_message_bytes,
)
from infra.resources import BODY_SCHEMA_FILE

log = logging.getLogger("tools.local.api")

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "infra" / "schemas"
PATHS = {path: route for route, path in ROUTE_PATHS.items()}
MAX_ERRORS = 10  # how many schema errors a 400 lists
JSON_MEDIA_TYPE = "application/json"  # the only request template of the deployed integration


def load_validators(schema_dir: Path = SCHEMA_DIR) -> dict[str, Draft4Validator]:
    """One draft-4 validator per route, from the schema files API Gateway uses."""
    validators = {}
    for route in ROUTES:
        path = schema_dir / BODY_SCHEMA_FILE.format(route=route)
        schema = json.loads(path.read_text(encoding="utf-8"))
        Draft4Validator.check_schema(schema)
        validators[route] = Draft4Validator(schema)
    return validators


def _leaf_errors(errors: list[ValidationError], document: Any) -> list[ValidationError]:
    """Replace a failed ``oneOf`` (one event | a batch) by the errors of the branch the body meant."""
    out: list[ValidationError] = []
    for error in errors:
        if error.validator in ("oneOf", "anyOf") and error.context:
            instance = error.instance
            meant_batch = isinstance(instance, dict) and "batch" in instance
            branches = {sub.schema_path[0] for sub in error.context if sub.schema_path}
            if error.validator == "oneOf" and branches == {0, 1} and error.absolute_path == error.path == deque():
                chosen = [sub for sub in error.context if sub.schema_path and sub.schema_path[0] == int(meant_batch)]
            else:
                chosen = [best_match(error.context)]
            out.extend(_leaf_errors(chosen, document) if chosen else [error])
        else:
            out.append(error)
    return out


def _problem(error: ValidationError) -> str:
    """What is wrong, without echoing a whole (possibly huge, possibly personal) value back to the caller."""
    limit = error.validator_value
    if error.validator in ("maxItems", "minItems"):
        return f"must have {'at most' if error.validator == 'maxItems' else 'at least'} {limit} item(s)"
    if error.validator in ("maxLength", "minLength"):
        return f"must be {'at most' if error.validator == 'maxLength' else 'at least'} {limit} character(s) long"
    if error.validator == "type":
        return f"must be of type {' or '.join(limit) if isinstance(limit, list) else limit}"
    if error.validator == "pattern" and isinstance(error.instance, str) and len(error.instance) > 40:
        return f"does not match {limit!r}"
    return str(error.message)[:300]


def schema_errors(validator: Draft4Validator, document: Any) -> list[str]:
    """Readable validation errors, ``"<json path>: <problem>"``, most specific first, at most ``MAX_ERRORS``."""
    errors = _leaf_errors(list(validator.iter_errors(document)), document)
    errors.sort(key=lambda e: (-len(e.absolute_path), [str(p) for p in e.absolute_path]))
    lines: list[str] = []
    for error in errors:
        where = ".".join(str(part) for part in error.absolute_path) or "(body)"
        line = f"{where}: {_problem(error)}"
        if line not in lines:
            lines.append(line)
    return lines[:MAX_ERRORS]


@dataclass(frozen=True)
class Accepted:
    """One request the API answered 202 for."""

    route: str
    body: bytes
    message_id: str
    request_id: str
    received_at_ms: int


@dataclass(frozen=True)
class Answer:
    status: int
    document: dict[str, Any]


class IngestApi:
    """The request logic, independent of the HTTP server (see the module docstring for the contract)."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        api_key: str,
        validators: dict[str, Draft4Validator],
        on_accepted: Callable[[Accepted], None] | None = None,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.api_key = api_key
        self.validators = validators
        self.on_accepted = on_accepted
        self.answers: dict[int, int] = {}  # status -> count
        self._lock = threading.Lock()

    def handle(self, method: str, path: str, headers: Any, body: bytes | None, length: int | None) -> Answer:
        answer = self._handle(method, path, headers, body, length)
        with self._lock:
            self.answers[answer.status] = self.answers.get(answer.status, 0) + 1
        return answer

    def _handle(self, method: str, path: str, headers: Any, body: bytes | None, length: int | None) -> Answer:
        route = PATHS.get(path.split("?", 1)[0].rstrip("/") or "/")
        if route is None or method != "POST":
            return Answer(403, {"message": "Missing Authentication Token"})
        key = headers.get("x-api-key") or ""
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return Answer(403, {"message": "Forbidden"})
        if length is None or length > MAX_BODY_BYTES or body is None:
            return _too_large()
        media_type = (headers.get("content-type") or JSON_MEDIA_TYPE).split(";", 1)[0].strip().lower()
        if media_type != JSON_MEDIA_TYPE:  # the deployed integration has only an application/json template
            return Answer(415, {"message": "Unsupported Media Type", "error": "Content-Type must be application/json"})
        try:
            text = body.decode("utf-8")
            document = json.loads(text)
            errors = schema_errors(self.validators[route], document)
        except (UnicodeDecodeError, ValueError) as exc:
            return Answer(400, {"message": "Invalid request body", "errors": [f"(body): not valid JSON: {exc}"]})
        except RecursionError:
            return Answer(400, {"message": "Invalid request body", "errors": ["(body): nested too deeply"]})
        if errors:
            return Answer(400, {"message": "Invalid request body", "errors": errors})
        request_id = str(uuid.uuid4())
        received_at_ms = int(time.time() * 1000)
        values = {ATTR_REQUEST_ID: request_id, ATTR_RECEIVED_AT_MS: str(received_at_ms), ATTR_ROUTE: route}
        attributes = [(name, data_type, values[name]) for name, data_type in API_MESSAGE_ATTRIBUTES]
        if sqs_message_bytes(body, attributes) > SQS_MAX_MESSAGE_BYTES:  # SQS would refuse it: the API says 413
            return _too_large(request_id)
        try:
            sent = self.sqs.send_message(
                QueueUrl=self.queue_url,
                MessageBody=text,
                MessageAttributes={
                    name: {"DataType": data_type, "StringValue": value} for name, data_type, value in attributes
                },
            )
        except Exception as exc:  # any SQS failure: never answer 202 for a message that is not queued
            log.error("SendMessage failed for request %s: %s", request_id, exc)
            return Answer(500, {"message": "Internal server error", "request_id": request_id})
        accepted = Accepted(route, body, sent["MessageId"], request_id, received_at_ms)
        if self.on_accepted is not None:
            self.on_accepted(accepted)
        return Answer(202, {"message_id": accepted.message_id, "request_id": request_id})


def _too_large(request_id: str | None = None) -> Answer:
    """The 413 of the deployed API (``infra/constructs/ingest_api.py``: SQS refused the message as too long)."""
    document = {"message": "Request Entity Too Large", "error": BODY_TOO_LARGE_ERROR}
    if request_id is not None:
        document["request_id"] = request_id
    return Answer(413, document)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients of the real API get
    server: _Server

    def _serve(self) -> None:
        raw_length = self.headers.get("content-length")
        length: int | None
        try:
            length = int(raw_length) if raw_length is not None else 0
        except ValueError:
            length = None
        body: bytes | None = None
        if length is not None and 0 <= length <= MAX_BODY_BYTES:
            body = self.rfile.read(length)
        elif length is not None and length > MAX_BODY_BYTES:
            self._drain(length)
        answer = self.server.api.handle(self.command, self.path, self.headers, body, length)
        payload = json.dumps(answer.document).encode()
        self.send_response(answer.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        if "request_id" in answer.document:
            self.send_header("x-amzn-requestid", str(answer.document["request_id"]))
        if length is None or body is None:
            self.send_header("connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)

    def _drain(self, length: int) -> None:
        """Read (and drop) an oversized body so the client sees the 413 rather than a reset connection."""
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                break
            remaining -= len(chunk)

    do_POST = _serve
    do_GET = _serve
    do_PUT = _serve
    do_DELETE = _serve
    do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: IngestApi) -> None:
        self.api = api
        super().__init__(address, _Handler)


class ApiServer:
    """Serves an :class:`IngestApi` on ``127.0.0.1:port`` (``0``: ephemeral) from a background thread."""

    def __init__(self, api: IngestApi, port: int = 0) -> None:
        self.api = api
        self._server = _Server(("127.0.0.1", port), api)
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-api", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
