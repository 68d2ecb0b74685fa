"""The whole pipeline on one machine: :class:`LocalStack` composes moto, the local API, the pollers and the stubs.

    >>> with LocalStack(LocalConfig()) as stack:                      # doctest: +SKIP
    ...     stack.post("native", {"uuid": "...", ...})               # over real HTTP, with the API key
    ...     stack.wait_drained()
    ...     print(stack.report().text())

Usable from tests and benchmarks (ephemeral ports by default, ``stack.sink`` can be told to fail or be slow) and
from ``python -m tools.local``. The Lambda handlers run in this process, so their environment variables are set
in ``os.environ`` (restored by :meth:`LocalStack.stop`) and the handler modules are (re)loaded at start, the way a
cold start reads its configuration. One stack per process at a time: moto keeps its state per process.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import requests
from aws_lambda_powertools import Metrics

from functions import names as r
from functions.deliverer.core import RETRY_VISIBILITY_BASE_S
from functions.pipeline import envelope
from functions.pipeline.breaker import BreakerPolicy, BreakerState
from functions.pipeline.settings import Settings, SettingsError
from functions.pipeline.sources import unresolved_bindings
from infra.resources import ResourceNames
from tools.local import aws
from tools.local.api import LOCAL_DEFAULT_KEY_ID, Accepted, ApiServer, IngestApi, load_validators
from tools.local.apple_stub import AppleStub, attribution_payload
from tools.local.kochava_sink import KochavaSink
from tools.local.pollers import BatchResult, Handler, QueuePoller
from tools.local.report import (
    FILTERED,
    AcceptedEvent,
    ApiAnswer,
    Delivered,
    DlqMessage,
    Report,
    account,
)
from tools.local.stub_http import RecordedRequest, Reply
from tools.samples import DEMO_APP_ID_ANDROID, DEMO_APP_ID_IOS, SAMPLES_DIR, route_for, sample_paths

log = logging.getLogger("tools.local")

EVENTS_DIR = SAMPLES_DIR
DEFAULT_API_KEY = "local-dev-key"
IDENTITYLINK_PATH = "/v1/cpi/identityLink.php"
_lock = threading.Lock()
_running: list[LocalStack] = []
APP_ID_VARIABLES = (r.ENV_KOCHAVA_APP_ID_IOS, r.ENV_KOCHAVA_APP_ID_ANDROID, r.ENV_KOCHAVA_APP_IDS_BY_BUNDLE)


@dataclass
class LocalConfig:
    api_port: int = 0  # 0: an ephemeral port
    aws_port: int = 0
    api_key: str = DEFAULT_API_KEY
    kochava_url: str | None = None  # None: the local Kochava sink
    identitylink_url: str | None = None  # None: same origin as kochava_url, Kochava's IdentityLink path
    adservices_url: str | None = None  # None: the local Apple stub
    concurrency: dict[str, int] = field(default_factory=dict)  # queue key -> poller threads (default 1)
    enforce_timeouts: bool = False  # fail a batch whose handler overran the Lambda timeout (see pollers)
    log_level: str = "WARNING"  # the Lambdas' POWERTOOLS_LOG_LEVEL
    time_scale: float = aws.TIME_SCALE  # local time runs this much faster (visibility, backoff, breaker)
    env: dict[str, str] = field(default_factory=dict)  # extra Lambda environment (wins over everything)
    # Keys bound to the apps they may send to, as the `sourceApps` context key of the stack: key name -> bundle ids
    # or Kochava app GUIDs. Locally a bound key's value is its name and its id `local-<name>` (see api_keys).
    source_apps: dict[str, list[str]] = field(default_factory=dict)
    sink_log: Path | None = None  # the local Kochava sink also writes each request it got here (JSON lines)
    # Once a key is bound, may the others (the default key) send nothing (True, as the stack's requireBoundKeys)?
    require_bound_keys: bool = True

    def app_ids_environment(self) -> dict[str, str]:
        """The Kochava app GUIDs the handlers get: this shell's KOCHAVA_APP_ID* variables, else the demo GUIDs."""
        env = {
            r.ENV_KOCHAVA_APP_ID_IOS: os.environ.get(r.ENV_KOCHAVA_APP_ID_IOS) or DEMO_APP_ID_IOS,
            r.ENV_KOCHAVA_APP_ID_ANDROID: os.environ.get(r.ENV_KOCHAVA_APP_ID_ANDROID) or DEMO_APP_ID_ANDROID,
        }
        if os.environ.get(r.ENV_KOCHAVA_APP_IDS_BY_BUNDLE):
            env[r.ENV_KOCHAVA_APP_IDS_BY_BUNDLE] = os.environ[r.ENV_KOCHAVA_APP_IDS_BY_BUNDLE]
        env.update({k: v for k, v in self.env.items() if k in APP_ID_VARIABLES})
        return env

    def binding_problems(self, label: str = "--source-apps") -> list[str]:
        """One message per bound app that resolves to no Kochava app GUID (as the stack's synth refuses it)."""
        try:
            settings = Settings.from_env(self.app_ids_environment())
        except SettingsError as exc:
            return [str(exc)]
        return unresolved_bindings(
            self.source_apps,
            app_ids_by_bundle=settings.kochava_app_ids_by_bundle,
            platform_app_ids=[g for g in (settings.kochava_app_id_ios, settings.kochava_app_id_android) if g],
            label=label,
            bundles_label=r.ENV_KOCHAVA_APP_IDS_BY_BUNDLE,
        )

    def api_keys(self) -> dict[str, str]:
        """Every key the local API takes -> its id (the ``api_key_id`` message attribute, SOURCE_APPS' keys)."""
        return {self.api_key: LOCAL_DEFAULT_KEY_ID, **{name: local_key_id(name) for name in self.source_apps}}

    def source_apps_env(self) -> str | None:
        """The enricher's SOURCE_APPS (key id -> apps), as the stack builds it; None when no key is bound."""
        if not self.source_apps:
            return None
        return json.dumps({local_key_id(name): apps for name, apps in self.source_apps.items()}, sort_keys=True)


def local_key_id(name: str) -> str:
    """The local id of the bound key ``name`` (on AWS, API Gateway assigns ids)."""
    return f"local-{name}"


def identitylink_url_for(kochava_url: str) -> str:
    """Kochava's IdentityLink endpoint on the same origin as ``kochava_url`` (the real one for the real host)."""
    parts = urlsplit(kochava_url)
    return urlunsplit((parts.scheme, parts.netloc, IDENTITYLINK_PATH, "", ""))


def scaled_deliverer_environment(time_scale: float) -> dict[str, str]:
    """The deliverer's durations divided by ``time_scale``: SQS backoff, breaker probe interval and hold, and the
    delivery queue's retention (when a held record gives up).

    >>> scaled_deliverer_environment(60)[r.ENV_BREAKER_HOLD_S]
    '10.0'
    """
    policy = BreakerPolicy()
    return {
        r.ENV_DELIVERER_RETRY_BASE_S: str(RETRY_VISIBILITY_BASE_S / time_scale),
        r.ENV_BREAKER_PROBE_INTERVAL_S: str(policy.probe_interval_s / time_scale),
        r.ENV_BREAKER_HOLD_S: str(policy.hold_s / time_scale),
        r.ENV_BREAKER_WINDOW_S: str(policy.window_s / time_scale),
        r.ENV_DELIVERY_RETENTION_S: str(policy.retention_s / time_scale),
    }


def event_keys(body: bytes, route: str, request_id: str, received_at_ms: int | None = None) -> list[AcceptedEvent]:
    """The events of an accepted body, with what the pure mapping predicts (only "filtered" is used); a Segment
    call without messageId is keyed by the id the enricher derives for it (request id + position)."""
    from functions.pipeline.events import FilteredCall, Rejection, parse_body
    from functions.pipeline.kochava import to_kochava
    from functions.pipeline.segment import Received
    from functions.pipeline.settings import Settings

    settings = Settings.from_env(os.environ)
    out = []
    received = Received(request_id, received_at_ms)
    parsed = parse_body(body, route="segment" if route == r.ROUTE_SEGMENT else "native", received=received)
    for index, item in enumerate(parsed):
        if isinstance(item, Rejection):
            uuid, predicted, name = item.uuid, "rejected", item.event_name
        elif isinstance(item, FilteredCall):  # Segment page / group / alias: shown in the report by call type
            uuid, predicted, name = item.uuid, "filtered", item.call_type
        else:
            outcome = to_kochava(item, settings, now=time.time())
            uuid, predicted, name = item.uuid, outcome.status, outcome.event_name
        key = uuid or f"{request_id}#{index}"
        out.append(AcceptedEvent(key, uuid, route, request_id, predicted, name))
    return out


def event_count(body: bytes) -> int:
    """How many events a body holds, cheaply (a batch's length, else one), for counters."""
    try:
        document = json.loads(body)
    except ValueError:
        return 1
    batch = document.get("batch") if isinstance(document, dict) else None
    return len(batch) if isinstance(batch, list) else 1


class LocalStack:
    """See the module docstring. ``start()`` / ``stop()`` or a ``with`` block."""

    def __init__(self, config: LocalConfig | None = None) -> None:
        self.config = config or LocalConfig()
        self.moto = aws.MotoServer(self.config.aws_port)
        self.sink: KochavaSink | None = None  # the local Kochava sink, unless config.kochava_url
        self.apple: AppleStub | None = None  # the local Apple stub, unless config.adservices_url
        self.resources: aws.Resources | None = None
        self.api_server: ApiServer | None = None
        self.pollers: dict[str, QueuePoller] = {}
        self.answers: list[ApiAnswer] = []
        self.requests: list[Accepted] = []  # what the API answered 202 for, in order
        self.kochava_url = self.identitylink_url = self.adservices_url = ""  # where the Lambdas send, once started
        self.delivered: dict[str, Delivered] = {}
        self._saved_env: dict[str, str | None] = {}
        self._loaded: list[str] = []
        self._ledger_lock = threading.Lock()
        self._session = requests.Session()

    # Lifecycle ----------------------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        return self.moto.endpoint_url

    @property
    def api_url(self) -> str:
        assert self.api_server is not None, "start() first"
        return self.api_server.url

    @property
    def names(self) -> ResourceNames:
        return ResourceNames(aws.STAGE)

    def start(self) -> Self:
        problems = self.config.binding_problems("LocalConfig.source_apps")
        if problems:  # as the stack's synth: a binding must name apps the pipeline sends to
            raise ValueError("; ".join(problems))
        with _lock:
            if _running:
                raise RuntimeError("a LocalStack is already running in this process (moto state is per process)")
            _running.append(self)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.moto.start()
        self.moto.reset()
        self.resources = aws.create_resources(self.endpoint_url, time_scale=self.config.time_scale)
        self._start_stubs()
        self._set_environment()
        sqs = aws.client("sqs", self.endpoint_url)
        ingest = self.resources.queues[r.INGEST_QUEUE.key]
        api = IngestApi(sqs, ingest.queue, self.config.api_keys(), load_validators(), on_accepted=self._on_accepted)
        self.api_server = ApiServer(api, self.config.api_port)
        functions = {
            r.INGEST_QUEUE.key: (r.FUNCTION_ENRICHER, r.HANDLER_ENRICHER),
            r.DELIVERY_QUEUE.key: (r.FUNCTION_DELIVERER, r.HANDLER_DELIVERER),
        }
        for spec in r.QUEUES:
            function, dotted = functions[spec.key]
            # The per-function part of the environment is read at import (cold start), like Powertools does.
            self._set_env(r.ENV_POWERTOOLS_SERVICE_NAME, function)
            handler = metrics_discarded(load_handler(dotted))
            self._loaded.append(dotted)
            urls = self.resources.queues[spec.key]
            self.pollers[spec.key] = QueuePoller(
                spec,
                sqs,
                urls.queue,
                urls.queue_arn,
                self.names.function(function),
                handler,
                region=aws.REGION,
                visibility_timeout_s=aws.local_visibility_timeout_s(spec, self.config.time_scale),
                on_batch=self._on_batch,
                concurrency=self.config.concurrency.get(spec.key, 1),
                enforce_timeout=self.config.enforce_timeouts,
            )
        for poller in self.pollers.values():
            poller.start()
        self.api_server.start()

    def _start_stubs(self) -> None:
        if self.config.kochava_url is None:
            self.sink = (RecordingSink(self.config.sink_log) if self.config.sink_log else KochavaSink()).start()
            self.kochava_url, self.identitylink_url = self.sink.track_url, self.sink.identitylink_url
        else:
            self.kochava_url = self.config.kochava_url
            self.identitylink_url = identitylink_url_for(self.config.kochava_url)
        self.identitylink_url = self.config.identitylink_url or self.identitylink_url
        if self.config.adservices_url is None:
            # Every token gets a (non developer-mode) attribution at once, so installs are not held back.
            self.apple = AppleStub(default=attribution_payload()).start()
            self.adservices_url = self.apple.api_url
        else:
            self.adservices_url = self.config.adservices_url

    def stop(self) -> None:
        for poller in self.pollers.values():
            poller.stop()
        if self.api_server is not None:
            self.api_server.stop()
            self.api_server = None
        for stub in (self.sink, self.apple):
            if stub is not None:
                stub.stop()
        if self.moto.endpoint_url:
            self.moto.stop()
        self._restore_environment()
        for dotted in self._loaded:  # leave the handler modules as a fresh import would (no client on our endpoint)
            try:
                load_handler(dotted)
            except Exception as exc:
                log.warning("could not re-import %s: %s", dotted, exc)
        self._loaded.clear()
        self._session.close()
        with _lock:
            if self in _running:
                _running.remove(self)

    # The Lambdas' environment -------------------------------------------------------------------------------

    def lambda_environment(self) -> dict[str, str]:
        """What the deployed functions get from the CDK stack, pointed at the local endpoints."""
        assert self.resources is not None
        queues, tables = self.resources.queues, self.resources.tables
        env = {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": aws.ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": aws.SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": aws.REGION,
            "AWS_REGION": aws.REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            r.ENV_INGEST_QUEUE_URL: queues[r.INGEST_QUEUE.key].queue,
            r.ENV_INGEST_DLQ_URL: queues[r.INGEST_QUEUE.key].dlq,
            r.ENV_DELIVERY_QUEUE_URL: queues[r.DELIVERY_QUEUE.key].queue,
            r.ENV_DELIVERY_DLQ_URL: queues[r.DELIVERY_QUEUE.key].dlq,
            r.ENV_PROFILE_TABLE: tables[r.PROFILE_TABLE.key],
            r.ENV_IDEMPOTENCY_TABLE: tables[r.IDEMPOTENCY_TABLE.key],
            r.ENV_MAX_RECEIVE_COUNT: str(r.DELIVERY_QUEUE.max_receive_count),
            r.ENV_DELIVERY_STATE_TABLE: tables[r.DELIVERY_STATE_TABLE.key],
            # The deliverer's retry backoff (30 s doubling), scaled like the queues' visibility timeouts: 1 s, 1 s,
            # 2 s, 4 s instead of minutes before a local run drains. The Kochava breaker's durations likewise.
            **scaled_deliverer_environment(self.config.time_scale),
            r.ENV_KOCHAVA_URL: self.kochava_url,
            r.ENV_KOCHAVA_IDENTITYLINK_URL: self.identitylink_url,
            r.ENV_ADSERVICES_URL: self.adservices_url,
            **self.config.app_ids_environment(),
            r.ENV_POWERTOOLS_METRICS_NAMESPACE: self.names.metrics_namespace,
            r.ENV_POWERTOOLS_LOG_LEVEL: self.config.log_level,
            "POWERTOOLS_METRICS_DISABLED": "true",  # no EMF blobs on stdout locally
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
        }
        source_apps = self.config.source_apps_env()
        if source_apps is not None:
            env[r.ENV_SOURCE_APPS] = source_apps
            env[r.ENV_REQUIRE_BOUND_KEYS] = "true" if self.config.require_bound_keys else "false"
        env.update(self.config.env)
        return env

    def _set_environment(self) -> None:
        for name, value in self.lambda_environment().items():
            self._set_env(name, value)

    def _set_env(self, name: str, value: str) -> None:
        if name not in self._saved_env:
            self._saved_env[name] = os.environ.get(name)
        os.environ[name] = self.config.env.get(name, value)

    def _restore_environment(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    # Posting ------------------------------------------------------------------------------------------------

    def post(
        self,
        route: str,
        body: Any,
        *,
        api_key: str | None = None,
        name: str = "",
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """POST a body (bytes/str as is, anything else as JSON) over HTTP, with the API key as the path takes it.

        ``route`` is a route (``native``, ``segment``: its own path) or a path (``/v1/batch``...); the Segment
        HTTP API paths get the key as HTTP Basic auth, the others as ``x-api-key``.
        """
        spec = r.INGEST_PATHS_BY_PATH.get(route) or r.INGEST_PATHS_BY_PATH[r.ROUTE_PATHS[route]]
        path, route = spec.path, spec.route
        data = body if isinstance(body, bytes | str) else json.dumps(body)
        key = self.config.api_key if api_key is None else api_key
        sent_headers = {"content-type": "application/json"}
        if spec.segment_api:
            sent_headers["authorization"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
        else:
            sent_headers["x-api-key"] = key
        sent_headers.update(headers or {})
        response = self._session.post(self.api_url + path, data=data, headers=sent_headers, timeout=30)
        try:
            document = response.json()
        except ValueError:
            document = {"message": response.text[:200]}
        with self._ledger_lock:
            self.answers.append(ApiAnswer(name or path, route, response.status_code, document))
        return response

    def post_samples(self, paths: list[Path] | None = None) -> list[tuple[Path, requests.Response]]:
        """POST every sample of ``events/`` (``segment_*`` to the Segment route, the rest to native)."""
        return [
            (path, self.post(route_for(path), path.read_bytes(), name=path.name))
            for path in (sample_paths() if paths is None else paths)
        ]

    # Observing ----------------------------------------------------------------------------------------------

    def _on_accepted(self, accepted: Accepted) -> None:
        with self._ledger_lock:
            self.requests.append(accepted)

    @property
    def accepted(self) -> list[AcceptedEvent]:
        """Every event of every accepted body (parsed when asked, not on the API's hot path)."""
        with self._ledger_lock:
            requests_ = list(self.requests)
        return [event for a in requests_ for event in event_keys(a.body, a.route, a.request_id, a.received_at_ms)]

    def _on_batch(self, result: BatchResult) -> None:
        if result.queue_key != r.DELIVERY_QUEUE.key:
            return
        for record in result.succeeded:
            try:
                env = envelope.parse(record["body"])
            except envelope.EnvelopeError:
                continue
            with self._ledger_lock:
                self.delivered[env.uuid] = Delivered(env.uuid, env.kind, env.event_name, env.payload)

    def queue_depths(self) -> dict[str, int]:
        """Visible + in flight + delayed messages per (non-DLQ) queue."""
        assert self.resources is not None
        sqs = aws.client("sqs", self.endpoint_url)
        depths = {}
        for key, urls in self.resources.queues.items():
            attributes = sqs.get_queue_attributes(
                QueueUrl=urls.queue,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            depths[key] = sum(int(value) for value in attributes.values())
        return depths

    def breaker_state(self) -> BreakerState:
        """The Kochava breaker as the deliverers share it (its DynamoDB item, read consistently)."""
        from functions.adapters.breaker_dynamodb import DynamoDbBreakerStore

        assert self.resources is not None
        table = self.resources.tables[r.DELIVERY_STATE_TABLE.key]
        return DynamoDbBreakerStore(aws.client("dynamodb", self.endpoint_url), table).read(consistent=True)

    def drained(self) -> bool:
        return not any(p.busy for p in self.pollers.values()) and not any(self.queue_depths().values())

    def wait_drained(self, timeout_s: float = 120.0, settle_s: float = 0.3) -> bool:
        """Wait until both queues are empty and no handler is running (seen twice, ``settle_s`` apart)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.drained():
                time.sleep(settle_s)
                if self.drained():
                    return True
            else:
                time.sleep(0.25)
        return False

    def summary(self) -> str:
        """One line of counters (cheap: no DLQ reads), for watching a running stack: per queue what is queued
        (visible or delayed) and in flight (being handled, backed off, or held by the Kochava breaker), and what is
        parked in each DLQ. A DLQ's count is visible + in flight, so a tool looking at a DLQ (which hides its
        messages while it reads them) does not change it."""
        assert self.resources is not None
        sqs = aws.client("sqs", self.endpoint_url)
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        queues, parked = [], []
        for spec in r.QUEUES:
            urls = self.resources.queues[spec.key]
            visible, hidden, delayed = (
                int(sqs.get_queue_attributes(QueueUrl=urls.queue, AttributeNames=names)["Attributes"][n]) for n in names
            )
            queues.append(f"{spec.key} {visible + delayed} queued / {hidden} in flight")
            dlq = sqs.get_queue_attributes(QueueUrl=urls.dlq, AttributeNames=names)["Attributes"]
            parked.append(f"{spec.key} DLQ {sum(int(v) for v in dlq.values())}")
        with self._ledger_lock:
            accepted = sum(event_count(a.body) for a in self.requests)
            delivered = len(self.delivered)
        sink = f", sink {len(self.sink.requests)} requests" if self.sink is not None else ""
        return (
            f"accepted {accepted}, handed to Kochava {delivered}; {', '.join(queues)}; parked: {', '.join(parked)}"
            f"{sink}"
        )

    def dlq_messages(self) -> dict[str, list[DlqMessage]]:
        """Every message in each DLQ, read without consuming them (made visible again right away)."""
        assert self.resources is not None
        sqs = aws.client("sqs", self.endpoint_url)
        out: dict[str, list[DlqMessage]] = {}
        for spec in r.QUEUES:
            url = self.resources.queues[spec.key].dlq
            seen: dict[str, DlqMessage] = {}
            handles: list[str] = []
            while True:
                batch = sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30, MessageAttributeNames=["All"]
                ).get("Messages", [])
                if not batch:
                    break
                for m in batch:
                    handles.append(m["ReceiptHandle"])
                    attributes = {
                        name: value.get("StringValue", "") for name, value in m.get("MessageAttributes", {}).items()
                    }
                    seen[m["MessageId"]] = DlqMessage(
                        spec.key, self.names.dlq(spec), m["MessageId"], m["Body"], attributes
                    )
            for start in range(0, len(handles), 10):
                entries = [
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                    for i, h in enumerate(handles[start : start + 10])
                ]
                sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
            out[spec.key] = list(seen.values())
        return out

    def report(self) -> Report:
        dlq = self.dlq_messages()
        accepted = self.accepted
        with self._ledger_lock:
            delivered = dict(self.delivered)
            answers = list(self.answers)
        report = Report(
            answers=answers,
            accepted=accepted,
            fates=account(accepted, dlq, delivered),
            dlq=dlq,
            dlq_names={spec.key: self.names.dlq(spec) for spec in r.QUEUES},
            delivered=delivered,
        )
        samples: dict[str, Any] = {}
        if self.sink is not None:
            successes = self.sink.delivered
            report.sink_requests = len(self.sink.requests)
            report.sink_successes = len(successes)
            report.sink_violations = list(self.sink.violations)
            for request in successes:
                action = "identityLink" if request.path.startswith(IDENTITYLINK_PATH) else None
                if action is None and isinstance(request.json, dict):
                    action = str(request.json.get("action"))
                samples.setdefault(action or "?", request.json)
        else:
            for item in delivered.values():
                samples.setdefault(item.kind, item.payload)
        report.sample_payloads = samples
        return report


class RecordingSink(KochavaSink):
    """The local Kochava sink that also appends each request it received to a JSON-lines file, so a user serving
    ``make local`` can check a payload without writing a sink: ``{"received_at", "path", "status", "body",
    "violations"}`` per line (``tail -f`` it; it holds the payloads as sent, device ids included: local data)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.record_path = path
        path.write_text("", encoding="utf-8")
        self._record_lock = threading.Lock()

    def dispatch(self, request: RecordedRequest) -> Reply:
        reply = super().dispatch(request)
        line = {
            "received_at": request.received_at,
            "path": request.path,
            "status": reply.status,
            "body": request.json if request.json is not None else request.text,
            "violations": request.violations,
        }
        with self._record_lock, self.record_path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
        return reply


def metrics_discarded(handler: Handler) -> Handler:
    """``handler``, dropping the metrics it added once it returns.

    The stack sets ``POWERTOOLS_METRICS_DISABLED`` (no EMF blobs on stdout locally), and Powertools then skips each
    flush *without clearing* what was added: its process-wide metric set would grow with every invocation of a
    serving stack, and the first flush after the stack stops (another test's handler, in a test run) would print
    every count of the local run as its own.
    """

    def invoke(event: dict[str, Any], context: Any) -> Any:
        try:
            return handler(event, context)
        finally:
            Metrics().clear_metrics()

    return invoke


def load_handler(dotted: str) -> Handler:
    """Import (or re-import: a cold start reads the fresh environment) ``module.attribute``."""
    module_name, _, attribute = dotted.rpartition(".")
    module = sys.modules.get(module_name)
    module = importlib.reload(module) if module is not None else importlib.import_module(module_name)
    handler: Handler = getattr(module, attribute)
    return handler


__all__ = ["FILTERED", "LocalConfig", "LocalStack"]
