"""The OpenAPI 3.1 document of the ingest API, for backend teams that do not use Segment's libraries.

Generated (``make schemas`` -> ``docs/openapi.json``), never written by hand, from what the stack itself is built
from, so it follows every change: the paths, routes and request media types of ``functions/names.py``
(``INGEST_PATHS``, ``body_media_types``), the request bodies from the pydantic models of
``functions/pipeline/contract.py`` (a native event or batch; a Segment call or batch), the authentication of each
path (``x-api-key`` or HTTP Basic, or SigV4 with ``authMode=iam``), the success answers and the JSON error bodies
of ``infra/constructs/ingest_api.py`` (its gateway responses and queue answers). ``tests/infra/test_openapi.py``
validates it with openapi-spec-validator and fails when the file drifts from the generator.

Example:
    >>> document = build_document()
    >>> document["openapi"], sorted(document["paths"])[:3]
    ('3.1.0', ['/v1/alias', '/v1/batch', '/v1/events'])
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any, get_args

from functions.names import (
    API_KEY_HEADER,
    INGEST_PATHS,
    MAX_BODY_BYTES,
    MISSING_KEY_MESSAGE,
    MISSING_KEY_STATUS,
    SEGMENT_CALL_TYPES,
    IngestPath,
    body_media_types,
)
from functions.pipeline.contract import MAX_BATCH_EVENTS, NativeEvent, SegmentEvent
from functions.version import __version__

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"
# The Segment call types the enricher maps (SegmentEvent.type); the others are accepted and filtered on purpose.
MAPPED_CALLS: tuple[str, ...] = get_args(SegmentEvent.model_fields["type"].annotation)
FILTERED_CALLS = tuple(call for call in SEGMENT_CALL_TYPES if call not in MAPPED_CALLS)
REF = "#/components/schemas/{model}"
# The answers of infra/constructs/ingest_api.py, status -> (error codes, what it means). Its gateway responses
# (GATEWAY_RESPONSES) and queue answers are checked against this table by tests/infra/test_openapi.py.
ERRORS: dict[str, tuple[tuple[str, ...], str]] = {
    "400": (
        ("invalid_body", "invalid_parameters"),
        "the body is not valid JSON or does not match the request model (`errors` says where), or holds characters "
        "SQS refuses",
    ),
    str(MISSING_KEY_STATUS): (("unauthorized",), f"no API key at all: {MISSING_KEY_MESSAGE}"),
    "403": (
        (
            "invalid_api_key",
            "access_denied",
            "missing_authentication_or_unknown_route",
            "invalid_signature",
            "expired_token",
        ),
        "unknown or disabled key, a malformed Authorization header, a bad SigV4 signature, or an unknown path",
    ),
    "413": (
        ("request_too_large",),
        f"the body (decompressed) with its message attributes is over {MAX_BODY_BYTES} bytes",
    ),
    "415": (("unsupported_media_type",), "a Content-Type the path does not read as JSON"),
    "429": (("throttled", "quota_exceeded"), "over the usage plan's rate, burst or quota: retry later"),
    "500": (("server_error",), "the event was not queued: retry"),
    "503": (("service_unavailable",), "the queue is unavailable, the event was not queued: retry"),
}
SECURITY_SCHEMES = {
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": API_KEY_HEADER,
        "description": "The API key (authMode=apiKey, the default): the stack output ApiKeyId, its value from "
        "`aws apigateway get-api-key --include-value`.",
    },
    "writeKey": {
        "type": "http",
        "scheme": "basic",
        "description": "The Segment HTTP Tracking API's auth: the API key as the user name, an empty password "
        "(`Authorization: Basic base64(key + ':')`), as the Segment and RudderStack libraries send their write key.",
    },
    "sigv4": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "AWS Signature Version 4 (execute-api), with `-c authMode=iam` instead of API keys: sign the "
        "request with credentials allowed execute-api:Invoke on the API.",
        "x-amazon-apigateway-authtype": "awsSigv4",
    },
}


def _schemas() -> dict[str, Any]:
    """The request models as OpenAPI components (JSON Schema 2020-12, which OpenAPI 3.1 uses as it is)."""
    components: dict[str, Any] = {}
    for model in (NativeEvent, SegmentEvent):
        schema = model.model_json_schema(mode="validation", ref_template=REF)
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema

    def batch(item: str, description: str) -> dict[str, Any]:
        return {
            "type": "object",
            "description": description,
            "required": ["batch"],
            "properties": {
                "batch": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_BATCH_EVENTS,
                    "items": {"$ref": REF.format(model=item)},
                }
            },
        }

    components["SegmentFilteredCall"] = {
        "type": "object",
        "description": f"A Segment {' / '.join(FILTERED_CALLS)} call: accepted, counted as filtered, not sent to "
        "Kochava (nothing else of it is checked).",
        "required": ["type"],
        "properties": {"type": {"enum": list(FILTERED_CALLS)}},
    }
    components["SegmentCall"] = {
        "anyOf": [{"$ref": REF.format(model="SegmentEvent")}, {"$ref": REF.format(model="SegmentFilteredCall")}]
    }
    # On a single-call path (/v1/track...) the path gives the type: the body needs none.
    untyped = copy.deepcopy(components["SegmentEvent"])
    untyped["required"] = [name for name in untyped["required"] if name != "type"]
    untyped["description"] = "A Segment call posted to its own path (/v1/track...): the path sets `type`."
    components["SegmentPathCall"] = untyped
    components["NativeBatch"] = batch("NativeEvent", "Up to 100 native events; each is judged on its own.")
    components["SegmentBatch"] = batch(
        "SegmentCall",
        "Up to 100 Segment calls, as the libraries send them; `sentAt`, `context` and `integrations` may stand next "
        "to `batch` (the batch-level `context` and `integrations` apply to every call).",
    )
    components["SegmentBatch"]["additionalProperties"] = True
    components["Accepted"] = {
        "type": "object",
        "required": ["message_id", "request_id"],
        "properties": {
            "message_id": {"type": "string", "description": "the SQS message id of the queued body"},
            "request_id": {"type": "string", "description": "API Gateway's request id (tools.trace finds it)"},
        },
    }
    components["SegmentSuccess"] = {
        "type": "object",
        "required": ["success", "message_id", "request_id"],
        "properties": {"success": {"const": True}, **components["Accepted"]["properties"]},
    }
    components["Error"] = {
        "type": "object",
        "required": ["code", "message", "request_id"],
        "properties": {
            "code": {"type": "string", "description": "machine-readable (what the Segment libraries log)"},
            "message": {"type": "string"},
            "error": {"type": "string", "description": "the same code (kept for older clients)"},
            "errors": {"type": "array", "items": {"type": "string"}, "description": "where the body is invalid"},
            "request_id": {"type": "string"},
        },
    }
    return components


def _request_body(spec: IngestPath) -> dict[str, Any]:
    if spec.route == "native":
        schema: dict[str, Any] = {
            "oneOf": [{"$ref": REF.format(model="NativeEvent")}, {"$ref": REF.format(model="NativeBatch")}]
        }
        description = "One native event or a batch. API Gateway validates every event (draft-4 model of these)."
    elif spec.call_type is not None:
        model = "SegmentPathCall" if spec.call_type in MAPPED_CALLS else "SegmentFilteredCall"
        schema = {"$ref": REF.format(model=model)}
        description = (
            f"One Segment {spec.call_type} call; the path sets its `type`. The gateway checks only that it is a "
            "JSON object: the enricher judges the call (a bad one is dead-lettered with the field, never a 4xx)."
        )
    else:
        batch = {"$ref": REF.format(model="SegmentBatch")}
        schema = (
            batch
            if spec.body_model == "segment_batch"
            else {"oneOf": [{"$ref": REF.format(model="SegmentCall")}, batch]}
        )
        description = (
            "Segment calls. The gateway checks only the envelope (an object; `batch`: 1 to 100 objects): the "
            "enricher judges each call on its own, so one bad call never fails the others. `page`, `group` and "
            "`alias` calls are accepted and filtered."
        )
    media_types = sorted({media.split(";")[0].strip() for media in body_media_types(spec)})
    charset = "; each also with `charset=utf-8`" if len(body_media_types(spec)) > len(media_types) else ""
    return {
        "required": True,
        "description": f"{description} At most {MAX_BODY_BYTES} bytes after decompression. Read as JSON under "
        f"{', '.join(media_types)}{charset}. `Content-Encoding: gzip` or `deflate` bodies are decompressed first.",
        "content": {media: {"schema": schema} for media in media_types},
    }


def _responses(spec: IngestPath) -> dict[str, Any]:
    success = ("200", "SegmentSuccess") if spec.segment_api else ("202", "Accepted")
    responses: dict[str, Any] = {
        success[0]: {
            "description": "Queued: the body is in the ingest queue (each event is then delivered, filtered or "
            "dead-lettered with a reason).",
            "content": {"application/json": {"schema": {"$ref": REF.format(model=success[1])}}},
        }
    }
    for status, (codes, meaning) in ERRORS.items():
        responses[status] = {
            "description": f"`code`: {', '.join(f'`{code}`' for code in codes)}: {meaning}.",
            "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
        }
    return responses


def _operation(spec: IngestPath) -> dict[str, Any]:
    key = "writeKey" if spec.segment_api else "apiKey"
    what = (
        f"Segment HTTP Tracking API: {spec.call_type} call"
        if spec.call_type
        else ("Segment HTTP Tracking API: batch" if spec.segment_api else f"{spec.route} events")
    )
    return {
        "operationId": "post" + "".join(part.capitalize() for part in spec.path.strip("/").split("/")),
        "summary": what,
        "tags": ["segment" if spec.route == "segment" else "native"],
        "security": [{key: []}, {"sigv4": []}],
        "parameters": [
            {
                "name": "Content-Encoding",
                "in": "header",
                "required": False,
                "schema": {"enum": ["gzip", "deflate", "identity"]},
            }
        ],
        "requestBody": _request_body(spec),
        "responses": _responses(spec),
    }


def build_document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Kochava event pipeline: ingest API",
            "version": __version__,
            "description": "POST app events; each accepted body is queued (202, or 200 on the Segment paths) and "
            "every event in it ends delivered to Kochava, filtered on purpose, or in a dead-letter queue with a "
            "reason. Generated from the code by `make schemas` (infra/openapi.py); see README.md.",
        },
        "servers": [
            {
                "url": "https://{apiId}.execute-api.{region}.amazonaws.com/{stage}",
                "description": "the stack output ApiUrl",
                "variables": {
                    "apiId": {"default": "abcdef1234"},
                    "region": {"default": "eu-west-1"},
                    "stage": {"default": "prod"},
                },
            }
        ],
        "paths": {spec.path: {"post": _operation(spec)} for spec in INGEST_PATHS},
        "components": {"schemas": _schemas(), "securitySchemes": SECURITY_SCHEMES},
    }


def render() -> str:
    """The document as written to ``docs/openapi.json`` (sorted keys, so a diff shows only real changes)."""
    return json.dumps(build_document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # pragma: no cover - exercised through `make schemas` and the drift test
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target}")
