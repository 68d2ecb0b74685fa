"""Bad input against the local API: never a 5xx, every refusal a JSON error naming the problem, nothing half-written.

The API runs on its own in front of moto's ingest queue (no pollers), so the queue holds exactly what the API put
there: a refused request must leave it unchanged, a 202 must add exactly one message, the body exactly as sent.
Hypothesis builds the requests from a valid event: malformed JSON, wrong types, huge strings, nesting, any
unicode (lone surrogates escaped), bodies around 1 MiB, batches of 0 to 150 events, non-object bodies, any
content type, missing and extra headers. Bounded: a fixed number of examples, derandomized (same cases every run).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from functions.names import MAX_BODY_BYTES, MISSING_KEY_MESSAGE, ROUTE_PATHS
from functions.pipeline.events import Event, Rejection, parse_body
from tools.local import aws
from tools.local.api import ApiServer, IngestApi, load_validators

pytestmark = pytest.mark.timeout(120)

API_KEY = "reliability-key"
EVENT: dict[str, Any] = {
    "uuid": "fuzz-0001",
    "type": "track",
    "event": "level_up",
    "timestamp": 1795175990,
    "properties": {"level": 7, "items": [{"sku": "a"}]},
    "device": {"platform": "ios", "id": "3F2504E0-4F89-11D3-9A0C-0305E82C3301", "ip": "203.0.113.17"},
}
SEGMENT_EVENT: dict[str, Any] = {
    "type": "track",
    "event": "Level Up",
    "messageId": "fuzz-seg-0001",
    "timestamp": "2026-11-20T11:59:30.120Z",
    "properties": {"level": 8},
    "context": {"device": {"type": "android", "id": "9774d56d682e549c"}},
}
FIELDS = ("uuid", "type", "event", "timestamp", "properties", "device", "user_id", "app", "adservices", "consent")
DEVICE_FIELDS = ("platform", "id", "advertising_id", "ip", "limit_ad_tracking", "att")
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


@dataclass
class Api:
    """The local API alone, in front of moto's ingest queue."""

    url: str
    sqs: Any
    queue_url: str
    session: requests.Session

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
        return self.session.post(self.url + path, data=body, headers=headers, timeout=30)

    def take_all(self) -> list[str]:
        """Receive and delete every queued message; their bodies."""
        bodies: list[str] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return bodies
            for message in messages:
                bodies.append(message["Body"])
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    moto = aws.MotoServer(0)
    moto.start()
    server: ApiServer | None = None
    try:
        moto.reset()
        resources = aws.create_resources(moto.endpoint_url)
        sqs = aws.client("sqs", moto.endpoint_url)
        queue_url = resources.queues["ingest"].queue
        server = ApiServer(IngestApi(sqs, queue_url, API_KEY, load_validators()))
        server.start()
        with requests.Session() as session:
            yield Api(server.url, sqs, queue_url, session)
    finally:
        if server is not None:
            server.stop()
        moto.stop()


def headers(content_type: str | None = "application/json", api_key: str | None = API_KEY) -> dict[str, str]:
    out = {}
    if content_type is not None:
        out["content-type"] = content_type
    if api_key is not None:
        out["x-api-key"] = api_key
    return out


def check_answer(api: Api, path: str, body: bytes, sent_headers: dict[str, str]) -> requests.Response:
    """Post; assert no 5xx, a JSON error naming the problem for a refusal, and the queue changed as promised."""
    api.take_all()
    response = api.post(path, body, sent_headers)
    assert response.status_code < 500, f"{response.status_code} {response.text[:300]}"
    queued = api.take_all()
    if response.status_code == 202:
        assert queued == [body.decode("utf-8")], "a 202 must queue exactly one message, the body as sent"
        assert set(response.json()) == {"message_id", "request_id"}
        return response
    assert queued == [], f"refused with {response.status_code} but something was queued"
    assert response.headers.get("content-type", "").startswith("application/json")
    document = response.json()
    assert isinstance(document, dict)
    assert isinstance(document.get("message"), str)
    assert document["message"].strip()
    if response.status_code == 400:
        errors = document.get("errors")
        assert isinstance(errors, list)
        assert errors
        assert all(isinstance(error, str) and ": " in error for error in errors), errors  # "<where>: <problem>"
    return response


# --- Strategies -------------------------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
any_text = st.text(st.characters(exclude_categories=()), max_size=40)  # any code point, lone surrogates included


def dumps(document: Any) -> bytes:
    """JSON as a client would send it (non-ASCII and lone surrogates escaped)."""
    return json.dumps(document).encode()


@st.composite
def wrong_types(draw: st.DrawFn) -> bytes:
    event = json.loads(json.dumps(EVENT))
    if draw(st.booleans()):
        event[draw(st.sampled_from(FIELDS))] = draw(json_values)
    else:
        event["device"][draw(st.sampled_from(DEVICE_FIELDS))] = draw(json_values)
    return dumps(event)


@st.composite
def malformed_json(draw: st.DrawFn) -> bytes:
    text = dumps(EVENT)
    choice = draw(st.integers(0, 2))
    if choice == 0:  # cut short
        return text[: draw(st.integers(0, len(text) - 1))]
    if choice == 1:  # a byte replaced
        at = draw(st.integers(0, len(text) - 1))
        return text[:at] + draw(st.binary(min_size=1, max_size=3)) + text[at + 1 :]
    return draw(st.binary(max_size=200))


@st.composite
def huge_strings(draw: st.DrawFn) -> bytes:
    size = draw(st.sampled_from([10_000, 200_000, 600_000, MAX_BODY_BYTES + 1]))
    char = draw(st.sampled_from(["x", "é", "\u2603", "\U0001f600", "\\", '"']))
    event = json.loads(json.dumps(EVENT))
    where = draw(st.sampled_from(["event", "properties", "uuid", "device.id", "key"]))
    value = char * size
    if where == "properties":
        event["properties"]["blob"] = value
    elif where == "device.id":
        event["device"]["id"] = value
    elif where == "key":
        event["properties"] = {value: 1}
    else:
        event[where] = value
    return dumps(event)


@st.composite
def nested(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(1, 400))  # deeper than the interpreter's recursion limit: test_deep_nesting_...
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    inner = opener * depth + "1" + closer * depth
    if draw(st.booleans()):
        return inner.encode()
    return (dumps(EVENT)[:-1].decode() + f', "properties": {{"deep": {inner}}}}}').encode()


@st.composite
def unicode_events(draw: st.DrawFn) -> bytes:
    event = json.loads(json.dumps(EVENT))
    event[draw(st.sampled_from(["event", "uuid", "user_id"]))] = draw(any_text)
    event["properties"] = draw(st.dictionaries(any_text, any_text, max_size=3))
    return json.dumps(event, ensure_ascii=draw(st.booleans())).encode("utf-8", errors="surrogatepass")


@st.composite
def batches(draw: st.DrawFn) -> bytes:
    size = draw(st.sampled_from([0, 1, 2, 99, 100, 101, 150]))
    events: list[Any] = [{**EVENT, "uuid": f"fuzz-{i}"} for i in range(size)]
    corrupt: bool = draw(st.booleans())
    if events and corrupt:
        events[draw(st.integers(0, size - 1))] = draw(json_values)
    return dumps({"batch": events})


non_objects = json_values.filter(lambda value: not isinstance(value, dict)).map(dumps)
BODY_KINDS: dict[str, st.SearchStrategy[bytes]] = {
    "wrong types": wrong_types(),
    "malformed JSON": malformed_json(),
    "huge strings": huge_strings(),
    "nesting": nested(),
    "unicode": unicode_events(),
    "batch sizes": batches(),
    "not an object": non_objects,
}
bodies: st.SearchStrategy[tuple[str, bytes]] = st.one_of(
    *(st.tuples(st.just(kind), strategy) for kind, strategy in BODY_KINDS.items())
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
        None,
    ]
)


@st.composite
def header_sets(draw: st.DrawFn) -> dict[str, str]:
    api_key = draw(st.sampled_from([API_KEY] * 7 + ["", "wrong", None]))  # mostly right: reach the checks after it
    sent = headers(draw(content_types), api_key)
    extra = draw(
        st.dictionaries(
            st.from_regex(r"x-[a-z]{1,10}", fullmatch=True),
            st.from_regex(r"([!-~][ -~]{0,38}[!-~])?", fullmatch=True),
            max_size=3,
        )
    )
    extra.pop("x-api-key", None)
    return {**extra, **sent}


# --- Properties -------------------------------------------------------------------------------------------------


@pytest.mark.slow
@SETTINGS
@given(body=bodies, sent_headers=header_sets(), path=st.sampled_from(sorted(ROUTE_PATHS.values())))
def test_any_bad_request_gets_a_4xx_json_error_or_is_queued_exactly_once(
    api: Api, body: tuple[str, bytes], sent_headers: dict[str, str], path: str
) -> None:
    """Given a request built from a valid event by breaking its JSON, types, sizes, nesting, unicode, batch size,
    content type or headers
    When it is posted to the local API
    Then the answer is never a 5xx; a refusal is a JSON error naming the problem and queues nothing; a 202 queues
    exactly one message, the body as sent."""
    kind, data = body
    response = check_answer(api, path, data, sent_headers)
    event(f"{kind}: {response.status_code}")  # --hypothesis-show-statistics shows what was covered


# --- Cases at the edges -----------------------------------------------------------------------------------------


def padded_event(size: int) -> bytes:
    """A valid event whose JSON text is exactly ``size`` bytes."""
    empty = dumps({**EVENT, "properties": {"pad": ""}})
    return dumps({**EVENT, "properties": {"pad": "x" * (size - len(empty))}})


def test_a_body_of_1_mib_plus_one_byte_is_refused_with_413(api: Api) -> None:
    """Given a valid event padded to 1 MiB + 1 byte
    When it is posted
    Then the API answers 413 with a JSON error and queues nothing."""
    body = padded_event(MAX_BODY_BYTES + 1)
    assert check_answer(api, "/v1/events", body, headers()).status_code == 413


def test_a_body_that_fits_one_sqs_message_with_its_attributes_is_accepted(api: Api) -> None:
    """Given a valid event of 1 MiB minus 1 KiB (room for the message attributes the API adds)
    When it is posted
    Then it is accepted and queued once."""
    assert check_answer(api, "/v1/events", padded_event(MAX_BODY_BYTES - 1024), headers()).status_code == 202


def test_a_body_of_exactly_1_mib_is_refused_because_its_attributes_no_longer_fit(api: Api) -> None:
    """Given a valid event of exactly 1 MiB (SQS counts the attributes request_id, received_at_ms, route too)
    When it is posted
    Then the API answers 413, as the deployed API does when SQS refuses the message: a 202 would promise a
    message SQS cannot hold."""
    assert check_answer(api, "/v1/events", padded_event(MAX_BODY_BYTES), headers()).status_code == 413


def test_an_empty_batch_is_refused_naming_the_batch(api: Api) -> None:
    """Given `{"batch": []}`
    When it is posted
    Then the API answers 400 and the error names `batch`."""
    response = check_answer(api, "/v1/events", b'{"batch": []}', headers())
    assert response.status_code == 400
    assert response.json()["errors"][0].startswith("batch")


def test_a_batch_of_101_events_is_refused_saying_the_limit(api: Api) -> None:
    """Given a batch of 101 valid events
    When it is posted
    Then the API answers 400 and the error says the batch is too long (the limit is 100), so the sender knows
    what to change."""
    body = dumps({"batch": [{**EVENT, "uuid": f"fuzz-{i}"} for i in range(101)]})
    response = check_answer(api, "/v1/events", body, headers())
    assert response.status_code == 400
    assert any(e.startswith("batch") and ("too long" in e or "100" in e) for e in response.json()["errors"])


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 10_000 + b"]" * 10_000, id="10000-arrays"),
        pytest.param(b'{"a":' * 10_000 + b"1" + b"}" * 10_000, id="10000-objects"),
        pytest.param(
            dumps(EVENT)[:-1] + b', "properties": ' + b'{"a":' * 10_000 + b"1" + b"}" * 10_001, id="in-properties"
        ),
    ],
)
def test_deep_nesting_is_refused_with_a_json_error(api: Api, body: bytes) -> None:
    """Given a body nested 10,000 levels deep (alone, or inside an event's properties)
    When it is posted
    Then the API answers a 4xx JSON error (API Gateway answers 400) instead of dropping the connection."""
    assert check_answer(api, "/v1/events", body, headers()).status_code in (400, 413)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_declared_json_is_refused_with_415(api: Api, content_type: str) -> None:
    """Given a valid event sent with a content type other than application/json
    When it is posted
    Then the API answers 415 and queues nothing, as the deployed API Gateway does."""
    assert check_answer(api, "/v1/events", dumps(EVENT), headers(content_type)).status_code == 415


@pytest.mark.parametrize(
    ("api_key", "route", "code"),
    [
        (None, "/v1/events", "unauthorized"),
        ("", "/v1/segment", "unauthorized"),
        ("wrong", "/v1/events", "invalid_api_key"),
    ],
)
def test_a_missing_or_wrong_api_key_is_refused_with_401_or_403(
    api: Api, api_key: str | None, route: str, code: str
) -> None:
    """Given a valid event without the x-api-key header, with an empty one or a wrong one
    When it is posted
    Then the API answers 401 saying how to send the key (no key) or 403 Forbidden (an unknown key), queues nothing."""
    response = check_answer(
        api, route, dumps(EVENT if route == "/v1/events" else SEGMENT_EVENT), headers(api_key=api_key)
    )
    status, message = (403, "Forbidden") if code == "invalid_api_key" else (401, MISSING_KEY_MESSAGE)
    assert (response.status_code, response.json()["code"], response.json()["message"]) == (status, code, message)


def test_an_escaped_lone_surrogate_is_accepted_and_queued_as_sent(api: Api) -> None:
    """Given a valid event whose name is an escaped lone surrogate (valid JSON text, not valid UTF-16)
    When it is posted
    Then the API accepts it and queues the body unchanged (the enricher decides what to do with it)."""
    body = b'{"uuid": "fuzz-surrogate", "type": "track", "event": "\\ud800", "timestamp": 1795175990, ' + (
        b'"device": {"platform": "android", "id": "9774d56d682e549c"}}'
    )
    assert check_answer(api, "/v1/events", body, headers()).status_code == 202


def test_an_event_with_a_lone_surrogate_does_not_sink_the_valid_events_of_its_batch() -> None:
    """Given a batch the API accepted (202): one event whose name is an escaped lone surrogate, one valid event
    When the enricher parses it
    Then each event is judged on its own (README): the valid one is an event to deliver, only the other rejected."""
    bad = {**EVENT, "uuid": "fuzz-bad", "event": "\ud800"}
    good = {**EVENT, "uuid": "fuzz-good"}
    items = list(parse_body(dumps({"batch": [bad, good]}), route="native"))
    assert [type(item) for item in items] == [Rejection, Event]


@pytest.mark.parametrize("credentials", ["Basic \u00e9\u00e9\u00e9", "Basic d2st\u00ff==", "basic " + "\u00e4" * 40])
def test_non_ascii_basic_credentials_get_a_403_not_a_dropped_connection(api: Api, credentials: str) -> None:
    """Issue 22: the authorizer raised on non-ASCII Basic credentials, so the local API gave no HTTP answer at all
    (and the deployed authorizer a 500). Now it is the authorizer's Deny: a 403 with a JSON error, nothing queued."""
    sent = {"content-type": "application/json", "authorization": credentials}
    response = check_answer(api, "/v1/batch", dumps({"batch": [SEGMENT_EVENT]}), sent)
    assert response.status_code == 403
