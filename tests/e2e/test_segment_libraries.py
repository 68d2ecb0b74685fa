"""The real, unmodified Segment and RudderStack server libraries against the local stack: one host name changed.

Each library (``segment-analytics-python``, ``rudder-sdk-python`` with its default gzip, ``@segment/analytics-node``
and ``@rudderstack/rudder-sdk-node`` through Node, the latter with its defaults: gzip, no Content-Type, no
``timestamp`` but ``originalTimestamp`` and ``sentAt``) sends track (``Order Completed`` with revenue), screen,
identify, page and group with the local API's key as its write key. What Kochava received is checked in the local
sink: a Purchase with ``sum`` and the IDFA (``context.device.advertisingId``), a Screen View and an IdentityLink;
page and group are deliberately filtered. No library reports an error. With a wrong write key each library reports
a 403.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient

from tests.e2e.shared import BOUND_APP, BOUND_KEY, Run
from tools.local.report import DELIVERED, FILTERED

NODE_CLIENT = Path(__file__).with_name("segment_node_client.cjs")
RUDDER_NODE_CLIENT = Path(__file__).with_name("rudder_node_client.cjs")
REPO_ROOT = Path(__file__).resolve().parents[2]
IDFV = "3F2504E0-4F89-11D3-9A0C-0305E82C3301"
# One IDFA per library, so each one's payloads can be told apart in the sink.
IDFAS = {
    "segment-python": "6D92078A-8246-4BA4-AE5B-76104861E7D1",
    "rudder-python": "6D92078A-8246-4BA4-AE5B-76104861E7D2",
    "segment-node": "6D92078A-8246-4BA4-AE5B-76104861E7D3",
    "rudder-node": "6D92078A-8246-4BA4-AE5B-76104861E7D4",
}
CALLS = ("track", "screen", "identify", "page", "group")


def context(idfa: str) -> dict[str, Any]:
    return {
        "device": {"type": "ios", "id": IDFV, "advertisingId": idfa, "adTrackingEnabled": True, "model": "iPhone15,2"},
        "os": {"name": "iOS", "version": "17.1"},
        "app": {"version": "3.3.0", "build": "330", "namespace": "com.example.shop"},
        "ip": "203.0.113.17",
    }


def calls(library: str) -> list[dict[str, Any]]:
    """What each library sends: the keyword arguments of the Python libraries' methods (+ ``method``)."""
    user = f"user-{library}"
    sent = [
        {
            "method": "track",
            "user_id": user,
            "event": "Order Completed",
            "properties": {"revenue": 42.5, "currency": "EUR", "order_id": f"order-{library}"},
        },
        {"method": "screen", "user_id": user, "name": "Checkout", "properties": {"step": 2}},
        {"method": "identify", "user_id": user, "traits": {"plan": "premium"}},
        {"method": "page", "user_id": user, "name": "Pricing"},
        {"method": "group", "user_id": user, "group_id": "team-1", "traits": {"seats": 5}},
    ]
    return [{**call, "context": context(IDFAS[library]), "message_id": f"{library}-{call['method']}"} for call in sent]


def node_calls(library: str) -> list[dict[str, Any]]:
    """The same calls as @segment/analytics-node takes them (camelCase)."""
    names = {"user_id": "userId", "group_id": "groupId", "message_id": "messageId"}
    return [{names.get(key, key): value for key, value in call.items()} for call in calls(library)]


def send_python(client_class: Callable[..., Any], host: str, write_key: str, library: str, **options: Any) -> list[str]:
    """Send the calls with a Python library (its own queue and upload thread), flush; the errors it reported."""
    errors: list[str] = []
    client = client_class(
        write_key=write_key,
        host=host,
        on_error=lambda error, _batch: errors.append(str(error)),
        max_retries=1,
        upload_interval=0.1,
        **options,
    )
    for call in calls(library):
        kwargs = dict(call)
        getattr(client, kwargs.pop("method"))(**kwargs)
    client.flush()
    client.join()
    return errors


def send_node(host: str, write_key: str, library: str) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "Node.js is needed (make test installs the Node libraries with npm ci)"
    package, client = (
        ("@rudderstack/rudder-sdk-node", RUDDER_NODE_CLIENT)
        if library == "rudder-node"
        else (
            "@segment/analytics-node",
            NODE_CLIENT,
        )
    )
    assert (REPO_ROOT / "node_modules" / package).is_dir(), "run `npm ci` (make install)"
    done = subprocess.run(
        [node, str(client), host, write_key, json.dumps(node_calls(library))],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def send(library: str, host: str, write_key: str) -> list[str]:
    """Send the calls with ``library``; every error it reported."""
    if library == "segment-python":
        return send_python(SegmentClient, host, write_key, library)
    if library == "rudder-python":
        return send_python(RudderClient, host, write_key, library, gzip=True)  # its default, said out loud
    result = send_node(host, write_key, library)
    return [f"{error['code']}: {error['reason']}" for error in result["errors"]]


@pytest.fixture(scope="module")
def sent(run: Run) -> dict[str, list[str]]:
    """Every library sends its calls with the right write key; the pipeline is drained. Library -> its errors."""
    errors = {library: send(library, run.stack.api_url, run.stack.config.api_key) for library in IDFAS}
    assert run.stack.wait_drained(timeout_s=60), run.stack.queue_depths()
    return errors


def payloads_for(run: Run, idfa: str) -> list[dict[str, Any]]:
    out = []
    for request in run.sink.delivered:
        body = request.json if isinstance(request.json, dict) else {}
        ids = body.get("data", {}).get("device_ids") or body.get("device_id") or {}
        if ids.get("idfa") == idfa:
            out.append(body)
    return out


@pytest.mark.parametrize("library", sorted(IDFAS))
def test_the_library_reports_no_error(sent: dict[str, list[str]], library: str) -> None:
    assert sent[library] == []


@pytest.mark.parametrize("library", ["rudder-python", "rudder-node"])
def test_rudderstack_sent_gzip_and_the_api_decompressed_it(run: Run, sent: Any, library: str) -> None:
    rudder = [a for a in run.stack.requests if f'"{library}-track"'.encode() in a.body]
    assert rudder, "the RudderStack library's batch was not accepted"
    assert all(a.content_encoding == "gzip" for a in rudder)
    assert all(a.route == "segment" and a.api_key_id == "local-default" for a in rudder)


def test_rudder_sdk_node_sends_no_json_content_type_and_no_timestamp_and_is_read_anyway(run: Run, sent: Any) -> None:
    """Its defaults: gzip, no Content-Type (axios then says form-urlencoded), originalTimestamp and sentAt only. The
    calls are delivered with Segment's skew-corrected time (received - (sentAt - originalTimestamp))."""
    (request,) = [a for a in run.stack.requests if b'"rudder-node-track"' in a.body]
    assert request.content_type.split(";")[0] == "application/x-www-form-urlencoded", request.content_type
    calls = json.loads(request.body)["batch"]
    assert all("timestamp" not in call and "originalTimestamp" in call and "sentAt" in call for call in calls)
    purchase = next(p for p in payloads_for(run, IDFAS["rudder-node"]) if p["data"].get("event_name") == "Purchase")
    received_s = request.received_at_ms / 1000
    assert received_s - 60 < purchase["data"]["usertime"] <= received_s + 1


@pytest.mark.parametrize("library", sorted(IDFAS))
def test_kochava_receives_a_purchase_a_screen_view_and_an_identitylink(run: Run, sent: Any, library: str) -> None:
    idfa = IDFAS[library]
    received = payloads_for(run, idfa)
    events = {p["data"]["event_name"]: p for p in received if p.get("action") == "event"}
    purchase = events["Purchase"]
    assert purchase["data"]["event_data"]["sum"] == 42.5
    assert purchase["data"]["event_data"]["currency"] == "EUR"
    assert purchase["data"]["device_ids"] == {"idfa": idfa, "idfv": IDFV}
    assert events["Screen View"]["data"]["event_data"]["screen_name"] == "Checkout"
    (link,) = [p for p in received if "action" not in p]
    assert link["data"]["user_id"] == f"user-{library}"
    assert len(received) == 3, "page and group are not sent to Kochava"


@pytest.mark.parametrize("library", sorted(IDFAS))
def test_every_call_is_accounted_for_page_and_group_are_filtered(run: Run, sent: Any, library: str) -> None:
    fates = run.stack.report().fates
    for call in CALLS:
        expected = FILTERED if call in ("page", "group") else DELIVERED
        assert fates.get(f"{library}-{call}") == expected, (call, fates.get(f"{library}-{call}"))


@pytest.mark.parametrize("library", sorted(IDFAS))
def test_a_wrong_write_key_is_reported_by_the_library_as_403(run: Run, sent: Any, library: str) -> None:
    errors = send(library, run.stack.api_url, "not-a-key")
    assert errors, f"{library} reported no error for a wrong write key"
    assert all("403" in error for error in errors), errors


def test_a_write_key_bound_to_an_app_sends_only_to_that_app(run: Run, sent: Any) -> None:
    """sourceApps locally (--source-apps): the library's calls for another app are dead-lettered app_not_allowed."""
    ctx_other = context(IDFAS["segment-python"])  # context.app.namespace com.example.shop: not the key's app
    ctx_bound = {**ctx_other, "app": {**ctx_other["app"], "namespace": BOUND_APP}}
    errors: list[str] = []
    client = SegmentClient(
        write_key=BOUND_KEY, host=run.stack.api_url, on_error=lambda e, _b: errors.append(str(e)), max_retries=1
    )
    for message_id, ctx in (("bound-other-app", ctx_other), ("bound-own-app", ctx_bound)):
        client.track(user_id="u-bound", event="Level Up", context=ctx, message_id=message_id)
    client.flush()
    client.join()
    assert errors == [], "the API accepts the batch: the binding is judged per call by the enricher"
    assert run.stack.wait_drained(timeout_s=60), run.stack.queue_depths()
    report = run.stack.report()
    assert report.fates["bound-own-app"] == DELIVERED
    assert report.fates["bound-other-app"] == "dlq:ingest:app_not_allowed"
    (dead,) = [m for m in report.dlq["ingest"] if m.uuid == "bound-other-app"]
    assert dead.attributes["api_key_id"] == "local-" + BOUND_KEY
    assert dead.attributes["field"] == "context.app.namespace"
