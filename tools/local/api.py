"""The local API Gateway: the REST API's contract on ``http://127.0.0.1:PORT``, in front of the ingest queue.

What the deployed API does, and so what this does, in order:

1. ``POST`` on a path of ``functions.names.INGEST_PATHS``: ``/v1/events`` (route ``native``), ``/v1/segment``
   (route ``segment``) and the Segment HTTP Tracking API paths (``/v1/batch``, ``/v1/import``, ``/v1/track``,
   ``/v1/screen``, ``/v1/identify``, ``/v1/page``, ``/v1/group``, ``/v1/alias``; route ``segment``). Any other
   path or method answers ``403 {"message": "Missing Authentication Token"}`` as API Gateway does.
2. The API key: the ``x-api-key`` header on the native paths, HTTP Basic auth with the key as the user name on the
   Segment paths (``functions.authorizer.core``, the deployed authorizer's own rules). No key in that header:
   ``401`` with ``names.MISSING_KEY_MESSAGE`` (how to send the key; a ``writeKey`` in the body is not read); not
   Basic auth: ``403`` (the authorizer's Deny); an unknown key: ``403 Forbidden``. Each key has an id, sent along as
   the ``api_key_id`` message attribute (API Gateway's ``$context.identity.apiKeyId``).
3. Body at most ``MAX_BODY_BYTES`` (1 MiB) as sent: otherwise ``413`` (checked early, to avoid reading a huge body).
4. ``Content-Encoding: gzip`` / ``deflate`` is decompressed (``content_encoding``; API Gateway does it since the
   REST API has ``minimumCompressionSize``): an unknown coding or a corrupt body ``415``; the 1 MiB limit applies to
   the decompressed body, a gzip bomb gets ``413`` after at most 1 MiB of output.
   The ``Content-Type`` must be one the path has a request template for (``names.body_media_types``: on the
   Segment HTTP API paths also ``application/x-www-form-urlencoded`` and ``text/plain``, as some libraries send
   them; missing means ``application/json``, as on API Gateway): otherwise ``415``. Whatever the type, the body is
   read as JSON.
5. The body must be JSON and valid against the path's request model ``infra/schemas/<model>_body.schema.json``
   (the very files API Gateway validates with, JSON schema draft 4): otherwise ``400 {"message": "Invalid request
   body", "errors": [...]}``. The Segment paths' models check only the envelope (the enricher judges each call).
6. On a single-call path (``/v1/track``...) the body's ``type`` is set to the path's call type
   (:func:`with_call_type`, the same edit as the deployed mapping template).
7. ``SendMessage`` to the ingest queue, with the attributes ``request_id`` (String), ``received_at_ms`` (Number),
   ``route`` (String) and ``api_key_id`` (String); answer ``202 {"message_id", "request_id"}``, or on the Segment
   paths ``200 {"success": true, "message_id", "request_id"}`` (the libraries count only 2xx, RudderStack's only
   200, as success). SQS counts those attributes toward its 1 MiB too (moto does not): when body + attributes are
   over it (``names.sqs_message_bytes``), ``413`` as the deployed API answers when SQS refuses the message. When SQS
   fails, ``500`` - never a success for a message that is not in the queue.

Every error body carries ``code`` and ``message`` (what the Segment libraries log).
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator, ValidationError
from jsonschema.exceptions import best_match

from functions.authorizer.config import AuthorizerConfig
from functions.authorizer.core import request_key
from functions.names import (
    API_KEY_HEADER,
    API_MESSAGE_ATTRIBUTES,
    ATTR_API_KEY_ID,
    ATTR_RECEIVED_AT_MS,
    ATTR_REQUEST_ID,
    ATTR_ROUTE,
    BASIC_AUTH_HEADER,
    BODY_MODELS,
    BODY_TOO_LARGE_ERROR,
    INGEST_PATHS,
    INGEST_PATHS_BY_PATH,
    JSON_MEDIA_TYPE,
    MAX_BODY_BYTES,
    MISSING_KEY_MESSAGE,
    MISSING_KEY_STATUS,
    SQS_MAX_MESSAGE_BYTES,
    IngestPath,
    body_media_types,
    sqs_message_bytes,
)
from infra.resources import BODY_SCHEMA_FILE
from tools.local.content_encoding import DecodedTooLarge, UnsupportedEncoding, decode_body

log = logging.getLogger("tools.local.api")

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "infra" / "schemas"
# The deployed authorizer's path table (infra/constructs/authorizer.py builds the same from INGEST_PATHS).
AUTHORIZER = AuthorizerConfig.for_paths(INGEST_PATHS)
LOCAL_DEFAULT_KEY_ID = "local-default"  # the id of the local API's default key (API Gateway ids look like a1b2c3d4e5)
MAX_ERRORS = 10  # how many schema errors a 400 lists


def load_validators(schema_dir: Path = SCHEMA_DIR) -> dict[str, Draft4Validator]:
    """One draft-4 validator per request model, from the schema files API Gateway uses."""
    validators = {}
    for model in BODY_MODELS:
        path = schema_dir / BODY_SCHEMA_FILE.format(route=model)
        schema = json.loads(path.read_text(encoding="utf-8"))
        Draft4Validator.check_schema(schema)
        validators[model] = Draft4Validator(schema)
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
    """One request the API accepted (put on the ingest queue); ``body`` is what was queued."""

    route: str
    body: bytes
    message_id: str
    request_id: str
    received_at_ms: int
    api_key_id: str = ""
    content_encoding: str = ""  # as sent (the body above is decoded)
    content_type: str = ""  # as sent


@dataclass(frozen=True)
class Answer:
    status: int
    document: dict[str, Any]


def error(status: int, code: str, message: str, **extra: Any) -> Answer:
    """An error answer: ``{"code", "message", ...}`` (``code`` is machine-readable; the libraries log both)."""
    return Answer(status, {"code": code, "message": message, **extra})


def with_call_type(text: str, call_type: str) -> str:
    """A single call's JSON object text with ``"type"`` set to ``call_type``, appended last so it wins.

    The deployed mapping template does the same edit with the same steps (``ingest_api.call_template``): trim, cut
    at the last ``}``, append. JSON parsers keep the last of repeated keys, so a ``type`` in the body is overridden.

    >>> with_call_type('{"event": "x"} ', "track")
    '{"event": "x","type":"track"}'
    >>> with_call_type("{ }", "page")
    '{"type":"page"}'
    """
    head = text.strip()
    head = head[: head.rindex("}")].strip()
    separator = "" if head == "{" else ","
    return f'{head}{separator}"type":"{call_type}"}}'


class IngestApi:
    """The request logic, independent of the HTTP server (see the module docstring for the contract).

    ``api_keys`` maps each key to its id (a plain string: that one key, id :data:`LOCAL_DEFAULT_KEY_ID`).
    """

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        api_keys: Mapping[str, str] | str,
        validators: dict[str, Draft4Validator],
        on_accepted: Callable[[Accepted], None] | None = None,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.api_keys = {api_keys: LOCAL_DEFAULT_KEY_ID} if isinstance(api_keys, str) else dict(api_keys)
        self.validators = validators
        self.on_accepted = on_accepted
        self.answers: dict[int, int] = {}  # status -> count
        self._lock = threading.Lock()

    def handle(self, method: str, path: str, headers: Any, body: bytes | None, length: int | None) -> Answer:
        answer = self._handle(method, path, headers, body, length)
        with self._lock:
            self.answers[answer.status] = self.answers.get(answer.status, 0) + 1
        return answer

    def key_id(self, spec: IngestPath, headers: Any) -> str | Answer:
        """The id of the request's API key, or the 403 the deployed API answers (authorizer, then key check)."""
        sent = {name: headers.get(name) for name in (API_KEY_HEADER, BASIC_AUTH_HEADER)}
        key, problem = request_key(sent, spec.path, AUTHORIZER)
        if key is None:
            if problem.startswith("no "):  # API Gateway: an identity source is missing, the authorizer is not called
                return error(MISSING_KEY_STATUS, "unauthorized", MISSING_KEY_MESSAGE)
            return error(403, "access_denied", "User is not authorized to access this resource with an explicit deny")
        for candidate, key_id in self.api_keys.items():
            if hmac.compare_digest(key.encode(), candidate.encode()):
                return key_id
        return error(403, "invalid_api_key", "Forbidden")

    def _handle(self, method: str, path: str, headers: Any, body: bytes | None, length: int | None) -> Answer:
        spec = INGEST_PATHS_BY_PATH.get(path.split("?", 1)[0].rstrip("/") or "/")
        if spec is None or method != "POST":
            return error(403, "missing_authentication_or_unknown_route", "Missing Authentication Token")
        key_id = self.key_id(spec, headers)
        if isinstance(key_id, Answer):
            return key_id
        if length is None or length > MAX_BODY_BYTES or body is None:
            return too_large()
        try:
            body = decode_body(body, headers.get("content-encoding"), limit=MAX_BODY_BYTES)
        except DecodedTooLarge:
            return too_large()
        except UnsupportedEncoding as exc:
            return error(415, "unsupported_media_type", "Unsupported Media Type", error=str(exc))
        content_type = headers.get("content-type") or ""
        accepted_types = body_media_types(spec)
        if (content_type.strip() or JSON_MEDIA_TYPE) not in accepted_types:  # no request template for it: 415
            allowed = ", ".join(dict.fromkeys(media.split(";", 1)[0] for media in accepted_types))
            problem = f"Content-Type must be {allowed}"
            return error(415, "unsupported_media_type", "Unsupported Media Type", error=problem)
        try:
            text = body.decode("utf-8")
            document = json.loads(text)
            errors = schema_errors(self.validators[spec.body_model], document)
        except (UnicodeDecodeError, ValueError) as exc:
            return error(400, "invalid_body", "Invalid request body", errors=[f"(body): not valid JSON: {exc}"])
        except RecursionError:
            return error(400, "invalid_body", "Invalid request body", errors=["(body): nested too deeply"])
        if errors:
            return error(400, "invalid_body", "Invalid request body", errors=errors)
        if spec.call_type is not None:
            text = with_call_type(text, spec.call_type)
        return self._enqueue(spec, text, key_id, (headers.get("content-encoding") or "", content_type))

    def _enqueue(self, spec: IngestPath, text: str, key_id: str, sent_as: tuple[str, str]) -> Answer:
        """SendMessage with the API's attributes; the success answer of the path, or the deployed API's error."""
        request_id = str(uuid.uuid4())
        received_at_ms = int(time.time() * 1000)
        values = {
            ATTR_REQUEST_ID: request_id,
            ATTR_RECEIVED_AT_MS: str(received_at_ms),
            ATTR_ROUTE: spec.route,
            ATTR_API_KEY_ID: key_id,
        }
        attributes = [(name, data_type, values[name]) for name, data_type in API_MESSAGE_ATTRIBUTES]
        if sqs_message_bytes(text, attributes) > SQS_MAX_MESSAGE_BYTES:  # SQS would refuse it: the API says 413
            return too_large(request_id)
        try:
            sent = self.sqs.send_message(
                QueueUrl=self.queue_url,
                MessageBody=text,
                MessageAttributes={
                    name: {"DataType": data_type, "StringValue": value} for name, data_type, value in attributes
                },
            )
        except Exception as exc:  # any SQS failure: never answer success for a message that is not queued
            log.error("SendMessage failed for request %s: %s", request_id, exc)
            return error(500, "server_error", "Internal server error", request_id=request_id)
        encoding, content_type = sent_as
        accepted = Accepted(
            spec.route, text.encode(), sent["MessageId"], request_id, received_at_ms, key_id, encoding, content_type
        )
        if self.on_accepted is not None:
            self.on_accepted(accepted)
        ids = {"message_id": accepted.message_id, "request_id": request_id}
        return Answer(200, {"success": True, **ids}) if spec.segment_api else Answer(202, ids)


def too_large(request_id: str | None = None) -> Answer:
    """The 413 of the deployed API (``infra/constructs/ingest_api.py``: SQS refused the message as too long)."""
    extra = {} if request_id is None else {"request_id": request_id}
    return error(413, "request_too_large", "Request Entity Too Large", error=BODY_TOO_LARGE_ERROR, **extra)


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
