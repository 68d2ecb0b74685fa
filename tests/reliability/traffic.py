"""The traffic and the faults of the fault-injection run, built deterministically from the ``events/`` samples.

1,000 distinct events (native and Segment), each a sample with fresh identity: its own uuid / messageId, device ids,
IP, AdServices token, a distinct timestamp and (identify) user id. 10 % are invalid: half fail the API's JSON schema
(sent alone, answered 400, never accepted; on the Segment route only the envelope can fail it), half pass it and
fail the model (accepted, then dead-lettered by the enricher with a reason; two of them carry a ~1 MiB property
whose Kochava payload cannot fit in an SQS message).
5 % are sent twice, same uuid and same body, in the same or another request.

Tracing a Kochava request back to its event: Kochava's payloads do not carry the event uuid, so every event gets a
distinct timestamp (Kochava's ``data.usertime``) and every identify a distinct user id (IdentityLink's
``data.user_id``); :func:`sink_key` reads them from what the sink received, :attr:`PlannedEvent.sink_key` is what
the event should produce.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from functions.names import API_MESSAGE_ATTRIBUTES, MAX_BODY_BYTES, sqs_message_bytes
from tools.local.kochava_sink import IDENTITYLINK_PATH
from tools.local.stub_http import RecordedRequest, Reply
from tools.samples import SAMPLES_DIR

SEED = 20261123
TOTAL_EVENTS = 1000
SCHEMA_INVALID = 50  # 5 %: answered 400 by the API
MODEL_INVALID = 50  # 5 %: accepted, dead-lettered by the enricher
OVERSIZED = 2  # of those, events with a ~1 MiB property: accepted, but their Kochava payload cannot fit in SQS
# Bytes left under 1 MiB for the message attributes the API adds: their names and types as API_MESSAGE_ATTRIBUTES
# lists them, each value at most 40 bytes (a request id is 36, epoch ms 13, the route and the key id fewer).
OVERSIZED_ROOM = sqs_message_bytes(0, [(name, data_type, "v" * 40) for name, data_type in API_MESSAGE_ATTRIBUTES])
DUPLICATED = 50  # 5 %: sent a second time
SINGLE_SHARE = 0.10  # share of the accepted-able sends posted alone rather than in a batch
MAX_BATCH = 100

# Kochava's misbehaviour, per request in arrival order (a seeded script on the local sink).
FAULT_SHARES = {500: 0.20, 429: 0.05, "timeout": 0.02, 400: 0.03}
SCRIPT_LENGTH = 12_000  # longer than the requests of the faulty phase (about 1,200): faults never run out
HANG_S = 2.0  # a "timeout" answer: the sink says nothing for this long (the deliverer gives up after 1 s)
# Kochava's 400 answer echoes the device, as real error bodies do: the deliverer must mask it before logging.
ECHOED_IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
ECHOED_IP = "203.0.113.17"
REJECTION_BODY = {"success": "0", "error": f"invalid device_ids.idfa {ECHOED_IDFA} from origination_ip {ECHOED_IP}"}

DELIVER = "deliver"
FILTER = "filter"
INGEST_DLQ = "ingest_dlq"
API_400 = "api_400"


@dataclass(frozen=True)
class Template:
    """A sample event to copy: which file (and which member of a batch), its route and what it becomes."""

    sample: str
    route: str
    kind: str | None  # install | event | identityLink; None: filtered
    weight: int
    member: int | None = None  # index in the sample's batch


TEMPLATES = (
    Template("ios_install.json", "native", "install", 8),
    Template("android_install.json", "native", "install", 6),
    Template("ios_install_att_denied_no_idfa.json", "native", "install", 3),
    Template("purchase_nested.json", "native", "event", 10),
    Template("monetization_web2.json", "native", "event", 5),
    Template("monetization_web3.json", "native", "event", 3),
    Template("screen.json", "native", "event", 12),
    Template("error_event.json", "native", "event", 5),
    Template("heartbeat.json", "native", None, 5),
    Template("identify.json", "native", "identityLink", 5),
    Template("segment_track.json", "segment", "event", 10),
    Template("segment_batch.json", "segment", "install", 4, member=0),
    Template("segment_batch.json", "segment", "event", 8, member=1),
    Template("segment_batch.json", "segment", "identityLink", 4, member=2),
    Template("segment_batch.json", "segment", "event", 6, member=3),
)


@dataclass(frozen=True)
class PlannedEvent:
    """One distinct event of the run and what must become of it."""

    uuid: str
    route: str
    body: dict[str, Any]
    expect: str  # DELIVER | FILTER | INGEST_DLQ | API_400
    kind: str | None = None  # for DELIVER
    sink_key: tuple[str, str] | None = None  # for DELIVER (and FILTER: what it would be)
    reason: str | None = None  # for INGEST_DLQ: the dead-letter reason
    field: str | None = None  # for INGEST_DLQ: the offending field; for API_400: the path the 400 must name
    idfa: str | None = None
    device_id: str | None = None
    ip: str | None = None
    token: str | None = None  # an AdServices token generated minutes ago (fresh)


@dataclass
class Request:
    """One HTTP request of the run: a single event or a batch."""

    route: str
    events: list[PlannedEvent]

    @property
    def body(self) -> dict[str, Any]:
        if len(self.events) == 1:
            return self.events[0].body
        return {"batch": [event.body for event in self.events]}

    def text(self) -> str:
        """The body as sent: compact JSON, as SDKs send it (an oversized event just fits)."""
        return json.dumps(self.body, separators=(",", ":"))


@dataclass
class Traffic:
    events: list[PlannedEvent]
    requests: list[Request]
    duplicated: set[str] = field(default_factory=set)

    def by_expectation(self, expect: str) -> list[PlannedEvent]:
        return [event for event in self.events if event.expect == expect]


def sink_key(request: RecordedRequest) -> tuple[str, str] | None:
    """``(kind, usertime)`` for an install / event, ``("identityLink", user_id)`` for IdentityLink, from a payload."""
    payload = request.json
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        return None
    if request.path.split("?", 1)[0] == IDENTITYLINK_PATH:
        return ("identityLink", str(payload["data"].get("user_id")))
    return (str(payload.get("action")), str(payload["data"].get("usertime")))


def fault_script(seed: int = SEED, length: int = SCRIPT_LENGTH) -> list[Reply | int]:
    """The sink's answers in arrival order: 20 % 500, 5 % 429, 2 % no answer (timeout), 3 % 400, the rest 200."""
    rng = random.Random(seed)
    rejection = Reply.json(400, REJECTION_BODY)
    hang = Reply.hanging(HANG_S)
    script: list[Reply | int] = []
    for _ in range(length):
        draw = rng.random()
        if draw < 0.20:
            script.append(500)
        elif draw < 0.25:
            script.append(429)
        elif draw < 0.27:
            script.append(hang)
        elif draw < 0.30:
            script.append(rejection)
        else:
            script.append(200)
    return script


def _samples() -> dict[str, Any]:
    names = {template.sample for template in TEMPLATES} | {"invalid_zero_idfa_only.json"}
    return {name: json.loads((SAMPLES_DIR / name).read_text(encoding="utf-8")) for name in names}


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Maker:
    """Fresh identities from one seeded generator."""

    def __init__(self, rng: random.Random, now: float) -> None:
        self.rng = rng
        self.base_ts = int(now) - 3600  # event i happens at base_ts - i: a distinct usertime per event
        self.now = now

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def ip(self) -> str:
        net = self.rng.choice(("192.0.2", "198.51.100", "203.0.113"))  # documentation ranges
        return f"{net}.{self.rng.randint(1, 254)}"

    def token(self) -> str:
        raw = bytes(self.rng.getrandbits(8) for _ in range(256))
        return base64.b64encode(raw).decode()

    def android_id(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"


def _native(body: dict[str, Any], index: int, make: _Maker) -> dict[str, Any]:
    ids: dict[str, Any] = {}
    body["uuid"] = f"rel-{index:04d}-{make.uuid()}"
    body["timestamp"] = make.base_ts - index
    if body.get("type") == "identify" or "user_id" in body:
        body["user_id"] = f"user-rel-{index:04d}"
    device = body["device"]
    ios = device["platform"].lower() == "ios"
    device["id"] = make.uuid().upper() if ios else make.android_id()
    ids["device_id"] = device["id"]
    advertising_id = device.get("advertising_id")
    if advertising_id and set(advertising_id) - {"0", "-"}:
        device["advertising_id"] = make.uuid().upper()
        ids["idfa"] = device["advertising_id"]
    if "ip" in device:
        device["ip"] = ids["ip"] = make.ip()
    if "adservices" in body:
        ids["token"] = make.token()
        body["adservices"] = {"token": ids["token"], "generated_at": _iso(make.now - 60 - make.rng.randint(0, 600))}
    return ids


def _segment(body: dict[str, Any], index: int, make: _Maker) -> dict[str, Any]:
    ids: dict[str, Any] = {}
    body["messageId"] = f"rel-{index:04d}-{make.uuid()}"
    body["timestamp"] = _iso(make.base_ts - index)
    if "userId" in body:
        body["userId"] = f"user-rel-{index:04d}"
    context = body["context"]
    device = context["device"]
    ios = device["type"].lower() == "ios"
    device["id"] = make.uuid().upper() if ios else make.android_id()
    ids["device_id"] = device["id"]
    if device.get("advertisingId"):
        device["advertisingId"] = make.uuid().upper()
        ids["idfa"] = device["advertisingId"]
    if "ip" in context:
        context["ip"] = ids["ip"] = make.ip()
    return ids


def _template_body(samples: dict[str, Any], template: Template) -> dict[str, Any]:
    sample = samples[template.sample]
    body = sample["batch"][template.member] if template.member is not None else sample
    return copy.deepcopy(body)


def _valid(samples: dict[str, Any], template: Template, index: int, make: _Maker) -> PlannedEvent:
    body = _template_body(samples, template)
    ids = (_native if template.route == "native" else _segment)(body, index, make)
    uuid_ = body["uuid"] if template.route == "native" else body["messageId"]
    if template.kind is None:  # filtered: the key it would have, to check it never reaches Kochava
        return PlannedEvent(uuid_, template.route, body, FILTER, sink_key=("event", str(make.base_ts - index)), **ids)
    if template.kind == "identityLink":
        key = ("identityLink", body["user_id"] if template.route == "native" else body["userId"])
    else:
        key = (template.kind, str(make.base_ts - index))
    return PlannedEvent(uuid_, template.route, body, DELIVER, kind=template.kind, sink_key=key, **ids)


def _native_track(samples: dict[str, Any], index: int, make: _Maker) -> tuple[dict[str, Any], dict[str, Any]]:
    body = _template_body(samples, Template("purchase_nested.json", "native", "event", 0))
    return body, _native(body, index, make)


def _segment_track(samples: dict[str, Any], index: int, make: _Maker) -> tuple[dict[str, Any], dict[str, Any]]:
    body = _template_body(samples, Template("segment_track.json", "segment", "event", 0))
    return body, _segment(body, index, make)


def _schema_invalid(samples: dict[str, Any], index: int, make: _Maker) -> PlannedEvent:
    """An event the API's JSON schema refuses; ``field`` is the path its 400 must name."""
    variant = index % 6
    if variant < 4:
        body, ids = _native_track(samples, index, make)
        if variant == 0:
            body["device"]["platform"], path = "windows", "device.platform"
        elif variant == 1:
            body["type"], path = "purchase", "type"
        elif variant == 2:
            body["timestamp"], path = True, "timestamp"
        else:
            body["properties"], path = ["not", "an", "object"], "properties"
        return PlannedEvent(body["uuid"], "native", body, API_400, field=path, **ids)
    # The Segment routes' schema checks only the envelope (each call is judged by the enricher): a `batch` that is
    # not an array of 1 to 100 objects.
    body, ids = _segment_track(samples, index, make)
    body["batch"], path = ({"calls": 1} if variant == 4 else []), "batch"
    return PlannedEvent(body["messageId"], "segment", body, API_400, field=path, **ids)


def _model_invalid(samples: dict[str, Any], index: int, make: _Maker) -> PlannedEvent:
    """An event the schema lets through and the enricher dead-letters: ``reason`` and ``field`` are expected."""
    variant = index % 6
    if variant == 0:
        body, ids = _native_track(samples, index, make)
        body["timestamp"], reason, path = "yesterday", "invalid_event", "timestamp"
    elif variant == 1:
        body, ids = _native_track(samples, index, make)
        del body["event"]
        reason, path = "invalid_event", "event"
    elif variant == 2:
        body = copy.deepcopy(samples["invalid_zero_idfa_only.json"])
        body["uuid"], body["timestamp"], ids = f"rel-{index:04d}-{make.uuid()}", make.base_ts - index, {}
        reason, path = "no_device_identifier", "device.id"
    elif variant == 3:
        body, ids = _native_track(samples, index, make)
        body["type"] = "identify"
        body.pop("user_id", None)
        reason, path = "invalid_event", "user_id"
    elif variant == 4:
        body, ids = _segment_track(samples, index, make)
        del body["event"]
        reason, path = "invalid_event", "event"
    else:
        body, ids = _segment_track(samples, index, make)
        body["timestamp"], reason, path = "soon", "invalid_event", "timestamp"
    route = "native" if "uuid" in body else "segment"
    uuid_ = body["uuid"] if route == "native" else body["messageId"]
    return PlannedEvent(uuid_, route, body, INGEST_DLQ, reason=reason, field=path, **ids)


def _oversized(index: int, make: _Maker) -> PlannedEvent:
    """An event the API just accepts (compact JSON, 1 MiB with its attributes) whose Kochava payload, in its
    delivery envelope, is over SQS's 1 MiB: the enricher must dead-letter it at once (``payload_too_large``)."""
    idfa, ip = make.uuid().upper(), make.ip()
    body: dict[str, Any] = {
        "uuid": f"rel-{index:04d}-{make.uuid()}",
        "type": "track",
        "event": "Upload",
        "timestamp": make.base_ts - index,
        "device": {"platform": "ios", "id": make.uuid().upper(), "advertising_id": idfa, "ip": ip},
        "properties": {"blob": ""},
    }
    body["properties"]["blob"] = "x" * (MAX_BODY_BYTES - OVERSIZED_ROOM - len(json.dumps(body, separators=(",", ":"))))
    return PlannedEvent(
        body["uuid"], "native", body, INGEST_DLQ, reason="payload_too_large", field="properties.blob", idfa=idfa, ip=ip
    )


def _chunks(sends: list[PlannedEvent], rng: random.Random) -> Iterator[list[PlannedEvent]]:
    """``SINGLE_SHARE`` of the sends alone, the rest in batches of 20 to 100."""
    singles = round(len(sends) * SINGLE_SHARE)
    yield from ([event] for event in sends[:singles])
    i = singles
    while i < len(sends):
        size = rng.randint(20, MAX_BATCH)
        yield sends[i : i + size]
        i += size


def build_traffic(seed: int = SEED, now: float | None = None) -> Traffic:
    """The run's events and the requests that carry them, in posting order (deterministic for a seed and clock)."""
    rng = random.Random(seed)
    make = _Maker(rng, time.time() if now is None else now)
    samples = _samples()
    kinds = ["schema"] * SCHEMA_INVALID + ["model"] * MODEL_INVALID
    kinds += ["valid"] * (TOTAL_EVENTS - len(kinds))
    rng.shuffle(kinds)
    weights = [template.weight for template in TEMPLATES]
    events: list[PlannedEvent] = []
    oversized = OVERSIZED
    for index, kind in enumerate(kinds):
        if kind == "schema":
            events.append(_schema_invalid(samples, index, make))
        elif kind == "model" and oversized:
            oversized -= 1
            events.append(_oversized(index, make))
        elif kind == "model":
            events.append(_model_invalid(samples, index, make))
        else:
            events.append(_valid(samples, rng.choices(TEMPLATES, weights)[0], index, make))
    acceptable = [event for event in events if event.expect != API_400]
    twice = rng.sample(acceptable, DUPLICATED)
    requests = [Request(event.route, [event]) for event in events if event.expect == API_400]
    requests += [Request(event.route, [event]) for event in acceptable + twice if event.reason == "payload_too_large"]
    for route in ("native", "segment"):
        sends = [e for e in acceptable + twice if e.route == route and e.reason != "payload_too_large"]
        rng.shuffle(sends)
        requests.extend(Request(route, chunk) for chunk in _chunks(sends, rng))
    rng.shuffle(requests)
    return Traffic(events, requests, {event.uuid for event in twice})
