"""The local API's Segment HTTP Tracking API surface, over real HTTP: paths, HTTP Basic auth, gzip, 200 answers.

The API logic in front of a recording SQS (no moto): what was queued, with which attributes, and what the caller
was answered. The real libraries against the whole stack are in test_segment_libraries.py.
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from functions.names import (
    INGEST_PATHS,
    MAX_BODY_BYTES,
    MISSING_KEY_MESSAGE,
    SEGMENT_BODY_MEDIA_TYPES,
    SEGMENT_CALL_TYPES,
)
from tools.local.api import ApiServer, IngestApi, load_validators

KEY, BOUND_KEY = "write-key-1", "ios-backend"
KEYS = {KEY: "id-default", BOUND_KEY: "id-ios"}
CALL = {
    "type": "track",
    "event": "Order Completed",
    "messageId": "m-1",
    "timestamp": "2026-11-20T12:00:00Z",
    "properties": {"revenue": 9.5},
    "context": {"device": {"type": "ios", "id": "3F2504E0-4F89-11D3-9A0C-0305E82C3301"}},
}


VALIDATORS = load_validators()


class RecordingSqs:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {"MessageId": f"sqs-{len(self.calls)}"}

    def bodies(self) -> list[Any]:
        return [json.loads(call["MessageBody"]) for call in self.calls]


class Api:
    def __init__(self, url: str, sqs: RecordingSqs) -> None:
        self.url, self.sqs = url, sqs

    def post(self, path: str, body: bytes | str | Any, headers: dict[str, str] | None = None) -> requests.Response:
        data = body if isinstance(body, bytes | str) else json.dumps(body)
        sent = {"content-type": "application/json", **(headers or {})}
        return requests.post(self.url + path, data=data, headers=sent, timeout=30)


def basic(key: str, password: str = "") -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{key}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def server() -> Iterator[Api]:
    sqs = RecordingSqs()
    server = ApiServer(IngestApi(sqs, "http://q", KEYS, load_validators()))
    server.start()
    try:
        yield Api(server.url, sqs)
    finally:
        server.stop()


@pytest.fixture
def api(server: Api) -> Api:
    server.sqs.calls.clear()
    return server


def test_batch_with_the_write_key_as_basic_user_answers_200_success(api: Api) -> None:
    response = api.post("/v1/batch", {"batch": [CALL], "sentAt": "2026-11-20T12:00:01Z", "writeKey": KEY}, basic(KEY))
    assert response.status_code == 200
    assert response.json()["success"] is True
    (call,) = api.sqs.calls
    attributes = {name: value["StringValue"] for name, value in call["MessageAttributes"].items()}
    assert attributes["route"] == "segment"
    assert attributes["api_key_id"] == "id-default"
    assert attributes["request_id"] == response.json()["request_id"]


def test_the_password_is_ignored_and_each_key_sends_its_own_id(api: Api) -> None:
    assert api.post("/v1/batch", {"batch": [CALL]}, basic(BOUND_KEY, "anything")).status_code == 200
    assert api.sqs.calls[0]["MessageAttributes"]["api_key_id"]["StringValue"] == "id-ios"


def test_the_native_path_is_unchanged(api: Api) -> None:
    event = {"uuid": "u", "type": "track", "event": "x", "timestamp": 1, "device": {"platform": "ios", "id": "V"}}
    response = api.post("/v1/events", event, {"x-api-key": KEY})
    assert response.status_code == 202
    assert set(response.json()) == {"message_id", "request_id"}
    assert api.post("/v1/segment", CALL, {"x-api-key": KEY}).status_code == 202


@pytest.mark.parametrize(
    ("path", "headers", "status", "code"),
    [
        ("/v1/batch", {}, 401, "unauthorized"),
        ("/v1/batch", {"x-api-key": KEY}, 401, "unauthorized"),  # the Segment paths take the key as Basic auth only
        ("/v1/batch", {"authorization": "Bearer " + KEY}, 403, "access_denied"),
        ("/v1/batch", {"authorization": "Basic %%%"}, 403, "access_denied"),
        ("/v1/batch", basic("not-a-key"), 403, "invalid_api_key"),
        ("/v1/track", basic(""), 403, "access_denied"),
        ("/v1/events", basic(KEY), 401, "unauthorized"),  # the native path takes x-api-key
    ],
)
def test_a_missing_malformed_or_wrong_key_is_refused_with_code_and_message(
    api: Api, path: str, headers: dict[str, str], status: int, code: str
) -> None:
    response = api.post(path, {"batch": [CALL]} if path == "/v1/batch" else CALL, headers)
    assert response.status_code == status
    assert response.json()["code"] == code
    assert response.json()["message"]
    assert api.sqs.calls == []


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/track"])
def test_a_write_key_in_the_body_alone_is_401_saying_to_send_it_as_the_basic_user_name(api: Api, path: str) -> None:
    """Segment's HTTP API takes ``writeKey`` in the body; a REQUEST authorizer never sees the body, so the answer says
    how to send the key instead (the deployed UNAUTHORIZED gateway response has the same status and message)."""
    body = {"batch": [CALL], "writeKey": KEY} if path == "/v1/batch" else {**CALL, "writeKey": KEY}
    response = api.post(path, body)
    assert response.status_code == 401
    assert response.json() == {"code": "unauthorized", "message": MISSING_KEY_MESSAGE}
    assert "HTTP Basic user name" in response.json()["message"]
    assert api.sqs.calls == []


@pytest.mark.parametrize("content_type", [None, *SEGMENT_BODY_MEDIA_TYPES])
@pytest.mark.parametrize("encoding", ["", "gzip", "deflate"])
def test_a_segment_path_reads_json_under_every_listed_content_type(
    api: Api, content_type: str | None, encoding: str
) -> None:
    """rudder-sdk-node gzips and sets no Content-Type, so axios sends application/x-www-form-urlencoded."""
    body = json.dumps({"batch": [CALL]}).encode()
    encoded = {"": bytes, "gzip": gzip.compress, "deflate": zlib.compress}[encoding](body)
    headers = {**basic(KEY), **({"content-encoding": encoding} if encoding else {})}
    response = requests.post(
        api.url + "/v1/batch",
        data=encoded,
        headers={**headers, **({"content-type": content_type} if content_type else {})},
        timeout=30,
    )
    if content_type is None:
        assert "content-type" not in {name.lower() for name in response.request.headers}
    assert response.status_code == 200, response.text
    assert api.sqs.bodies() == [{"batch": [CALL]}]


@pytest.mark.parametrize("content_type", ["application/xml", "multipart/form-data", "text/plain; charset=latin-1"])
def test_a_content_type_without_a_template_is_415(api: Api, content_type: str) -> None:
    response = api.post("/v1/batch", {"batch": [CALL]}, {**basic(KEY), "content-type": content_type})
    assert (response.status_code, response.json()["code"]) == (415, "unsupported_media_type")
    assert api.sqs.calls == []


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", None])
def test_a_body_that_is_not_json_after_decoding_is_400_with_a_json_error(api: Api, content_type: str | None) -> None:
    headers = {**basic(KEY), "content-encoding": "gzip", **({"content-type": content_type} if content_type else {})}
    response = requests.post(api.url + "/v1/batch", data=gzip.compress(b"batch=1&x=2"), headers=headers, timeout=30)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_body"
    assert api.sqs.calls == []


def test_the_native_path_still_takes_json_only(api: Api) -> None:
    event = {"uuid": "u", "type": "track", "event": "x", "timestamp": 1, "device": {"platform": "ios", "id": "V"}}
    headers = {"x-api-key": KEY, "content-type": "text/plain"}
    assert api.post("/v1/events", event, headers).status_code == 415
    headers["content-type"] = "application/json; charset=utf-8"
    assert api.post("/v1/events", event, headers).status_code == 202


def test_only_the_envelope_is_checked_so_one_bad_call_never_costs_the_batch(api: Api) -> None:
    batch = [CALL, {"type": "page", "name": "Pricing"}, {"nonsense": True}, {**CALL, "context": "not an object"}]
    assert api.post("/v1/batch", {"batch": batch}, basic(KEY)).status_code == 200
    assert api.sqs.bodies() == [{"batch": batch}]


@pytest.mark.parametrize(
    "body",
    [{"batch": []}, {"batch": [CALL] * 101}, {"batch": ["call"]}, {"sentAt": "x"}, [CALL], b'{"batch": ['],
)
def test_a_bad_envelope_is_400_with_what_is_wrong(api: Api, body: Any) -> None:
    response = api.post("/v1/batch", body, basic(KEY))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_body"
    assert response.json()["errors"]
    assert api.sqs.calls == []


@pytest.mark.parametrize("call_type", SEGMENT_CALL_TYPES)
def test_a_single_call_gets_the_type_of_its_path(api: Api, call_type: str) -> None:
    call = {key: value for key, value in CALL.items() if key != "type"}
    response = api.post(f"/v1/{call_type}", call, basic(KEY))
    assert response.status_code == 200 and response.json()["success"] is True
    assert api.sqs.bodies() == [{**call, "type": call_type}]


def test_the_path_wins_over_a_type_in_the_body(api: Api) -> None:
    assert api.post("/v1/screen", {**CALL, "type": "identify"}, basic(KEY)).status_code == 200
    assert api.sqs.bodies()[0]["type"] == "screen"
    assert api.post("/v1/page", b" {\n} ", basic(KEY)).status_code == 200
    assert api.sqs.bodies()[1] == {"type": "page"}


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some clients send it
        ("gzip", lambda data: gzip.compress(data[:20]) + gzip.compress(data[20:])),  # two gzip members
    ],
)
def test_a_compressed_body_is_decompressed_before_anything_else(api: Api, encoding: str, encode: Any) -> None:
    body = json.dumps({"batch": [CALL]}).encode()
    response = api.post("/v1/batch", encode(body), {**basic(KEY), "content-encoding": encoding})
    assert response.status_code == 200, response.text
    assert api.sqs.bodies() == [{"batch": [CALL]}]


def test_the_native_path_takes_gzip_too(api: Api) -> None:
    body = gzip.compress(json.dumps(CALL).encode())
    assert api.post("/v1/segment", body, {"x-api-key": KEY, "content-encoding": "gzip"}).status_code == 202


@pytest.mark.parametrize(
    ("encoding", "body"),
    [("br", b"{}"), ("gzip", b'{"batch": []}'), ("gzip", gzip.compress(b'{"batch": [{}]}', mtime=0)[:-6])],
    ids=["br", "gzip-not-compressed", "gzip-cut-short"],  # stable ids: xdist workers must collect the same tests
)
def test_an_unknown_coding_or_a_body_not_encoded_with_it_is_415(api: Api, encoding: str, body: bytes) -> None:
    response = api.post("/v1/batch", body, {**basic(KEY), "content-encoding": encoding})
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    assert api.sqs.calls == []


def test_the_1_mib_limit_applies_to_the_decompressed_body(api: Api) -> None:
    padding = " " * (1024 * 1024)  # compresses to about a kilobyte
    body = gzip.compress(('{"batch": [' + json.dumps(CALL) + "]" + padding + "}").encode())
    assert len(body) < 10_000
    response = api.post("/v1/batch", body, {**basic(KEY), "content-encoding": "gzip"})
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


def test_a_gzip_bomb_gets_413_and_the_api_keeps_serving(api: Api) -> None:
    inflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"\0" * (1024 * 1024)
    bomb = b"".join(inflater.compress(chunk) for _ in range(256)) + inflater.flush()  # 256 MiB of zeros
    assert len(bomb) < MAX_BODY_BYTES // 2, "small enough that only the bounded decompression can refuse it"
    response = api.post("/v1/batch", bomb, {**basic(KEY), "content-encoding": "gzip"})
    assert response.status_code == 413
    assert api.post("/v1/batch", {"batch": [CALL]}, basic(KEY)).status_code == 200


def test_every_path_of_the_table_is_served(api: Api) -> None:
    for spec in INGEST_PATHS:
        headers = basic(KEY) if spec.segment_api else {"x-api-key": KEY}
        body: Any = {"batch": [CALL]} if spec.body_model == "segment_batch" else CALL
        if spec.body_model == "native":
            body = {
                "uuid": "u",
                "type": "track",
                "event": "x",
                "timestamp": 1,
                "device": {"platform": "ios", "id": "V"},
            }
        response = api.post(spec.path, body, headers)
        assert response.status_code == (200 if spec.segment_api else 202), (spec.path, response.text)


_header_names = st.sampled_from(["content-type", "content-encoding", "x-forwarded-for", "user-agent", "x-write-key"])


@settings(max_examples=150, deadline=None)
@given(
    path=st.sampled_from([spec.path for spec in INGEST_PATHS]),
    headers=st.dictionaries(_header_names, st.text(max_size=30)),
    write_key=st.sampled_from([KEY, BOUND_KEY, "", "nope"]),
    extra=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)
def test_without_a_key_header_nothing_is_ever_queued_whatever_the_body_says(
    path: str, headers: dict[str, str], write_key: str, extra: dict[str, str]
) -> None:
    """Invariant: a caller that sends no key header (x-api-key / Authorization) cannot put anything on the queue, even
    with a valid write key in the body; the answer is 401 with how to send the key."""
    sqs = RecordingSqs()
    api = IngestApi(sqs, "http://q", KEYS, VALIDATORS)
    body = json.dumps({"batch": [CALL], **extra, "writeKey": write_key}).encode()
    answer = api.handle("POST", path, CaseInsensitiveDict(headers), body, len(body))
    assert (answer.status, answer.document["message"]) == (401, MISSING_KEY_MESSAGE)
    assert sqs.calls == []
