"""Kochava HTTP adapter: POST one payload, retry what is worth retrying inside a deadline, classify the answer.

One :class:`RequestsKochavaClient` per container holds one ``requests.Session`` (keep-alive) whose connection
pool is sized to the deliverer's worker count, so the records of a batch are POSTed concurrently over warm
connections. Retries are urllib3's ``Retry`` (not a hand loop): 429 and 5xx answers and connection errors are
retried with exponential backoff and jitter (so is a keep-alive connection the server dropped), ``Retry-After``
is honoured, and :class:`DeadlineRetry` refuses any retry (or ``Retry-After`` pause) that would not finish before
the caller's deadline, i.e. inside the remaining Lambda time. A read timeout is *not* retried here: the request
may have reached Kochava, so it is reported transient and retried later by SQS (the deliverer's backoff).

Every request names its sender in ``User-Agent`` (never the HTTP library's default, which Kochava could read as the
device's agent): ``Unknown`` when the payload has no ``data.device_ua`` (Kochava's "S2S without Device UA": it then
builds the agent from ``device_ver``), else ``kochava-pipeline/<version>`` (:data:`PROJECT_USER_AGENT`).

Every answer becomes a :class:`KochavaResult`:

=================  ===========================================================  ==========================
``delivered``      2xx with Kochava's success body ``{"success": "1"}``         done
``transient``      429 / 5xx after the retries, timeout, connection error       retry later (SQS backoff)
``permanent``      any other status (4xx but 429, 3xx): Kochava refuses it      DLQ ``kochava_rejected``
``bad_response``   2xx whose body is not the success answer                    DLQ ``kochava_bad_response``
=================  ===========================================================  ==========================

Example:
    >>> classify_answer(200, b'{"success":"1"}').outcome, classify_answer(200, b'{"success":1}').outcome
    ('delivered', 'delivered')
    >>> classify_answer(400, b'{"error":"bad app id"}').outcome, classify_answer(503, b"").outcome
    ('permanent', 'transient')
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ReadTimeoutError, ResponseError
from urllib3.util.retry import Retry

from functions.ports import KochavaResult
from functions.version import __version__

if TYPE_CHECKING:
    from urllib3.connectionpool import ConnectionPool
    from urllib3.response import BaseHTTPResponse

    from functions.pipeline.envelope import Kind


# Kochava's answers worth retrying: throttling and server errors.
RETRY_STATUSES: Final = frozenset({429, *range(500, 600)})
# Bodies kept in a result (the DLQ attribute is cut again to 1 KiB by the SQS adapter).
MAX_KEPT_BODY_CHARS: Final = 4096
_SUCCESS_VALUES: Final = frozenset({"1", 1})  # 1 == True == 1.0: all accepted
# The User-Agent of a request whose payload carries the device's own (``data.device_ua``): this project, by name and
# version (functions/version.py), so Kochava never takes it for the device's.
PROJECT_USER_AGENT: Final = f"kochava-pipeline/{__version__}"
# Kochava's "S2S without Device UA": the header it asks for when no valid device_ua is sent.
NO_DEVICE_UA_USER_AGENT: Final = "Unknown"


@dataclass(frozen=True, slots=True)
class HttpPolicy:
    """Timeouts, retries and pool size. The defaults suit a 60 s Lambda; tests pass small values."""

    connect_timeout_s: float = 3.05
    read_timeout_s: float = 10.0
    max_retries: int = 3  # retries after the first attempt, for 429 / 5xx / connection errors
    backoff_factor_s: float = 0.5  # pause before retry k (k >= 2): factor * 2**(k-1) (urllib3: no pause for k=1)
    backoff_jitter_s: float = 0.5  # + uniform(0, jitter)
    backoff_max_s: float = 8.0
    retry_after_max_s: int = 30  # a longer Retry-After is not waited for here: SQS backoff takes over
    pool_size: int = 10  # connections kept per host: the deliverer's worker count

    @property
    def attempt_budget_s(self) -> float:
        """Worst-case seconds one attempt can take (connect + read timeout)."""
        return self.connect_timeout_s + self.read_timeout_s


# --- Retry bounded by a deadline ---------------------------------------------------------------------------------


class _CallBudget(threading.local):
    """Per-thread state of the request in flight: its deadline and how many retries it used."""

    deadline: float | None = None
    attempt_budget_s: float = 0.0
    retries: int = 0
    single_attempt: bool = False  # a breaker probe: no retry at all


_budget = _CallBudget()


class DeadlineRetry(Retry):
    """urllib3 ``Retry`` that refuses a retry whose pause plus one more attempt would end after the deadline.

    The deadline lives in a thread-local set by :class:`RequestsKochavaClient` around each request (the adapter
    shares one ``Retry`` template between threads). Refusing turns into urllib3's normal "retries exhausted":
    with ``raise_on_status=False`` the last 429 / 5xx answer is returned, a connection error is raised.
    """

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if isinstance(error, ReadTimeoutError):
            # Kochava may have the payload already: never re-POST at once; SQS retries it later.
            raise error.with_traceback(_stacktrace)
        if _budget.single_attempt:
            reason = error or ResponseError("a single attempt (breaker probe): no retry")
            raise MaxRetryError(_pool, url or "", reason) from error  # type: ignore[arg-type]
        new_retry = super().increment(method, url, response, error, _pool, _stacktrace)
        deadline = _budget.deadline
        if deadline is not None:
            pause = new_retry.planned_pause_s(response)
            if time.monotonic() + pause + _budget.attempt_budget_s > deadline:
                reason = error or ResponseError(f"no time left for a retry (needs {pause:.1f} s pause)")
                raise MaxRetryError(_pool, url or "", reason) from error  # type: ignore[arg-type]
        _budget.retries += 1
        return new_retry

    def planned_pause_s(self, response: BaseHTTPResponse | None) -> float:
        """The longest pause :meth:`sleep` may take before the next attempt (Retry-After, else backoff + jitter)."""
        if response is not None and self.respect_retry_after_header:
            retry_after = self.get_retry_after(response)
            if retry_after:
                return float(retry_after)
        consecutive = len(self.history)
        if consecutive <= 1:
            return 0.0
        return float(min(self.backoff_max, self.backoff_factor * 2 ** (consecutive - 1) + self.backoff_jitter))


def build_retry(policy: HttpPolicy) -> DeadlineRetry:
    """The retry template: 429 / 5xx / connect errors, POST allowed, no read retries, no redirects."""
    return DeadlineRetry(
        total=policy.max_retries,
        connect=policy.max_retries,
        read=policy.max_retries,  # dropped keep-alive connections; read *timeouts* are refused in increment()
        redirect=0,
        status=policy.max_retries,
        other=0,
        allowed_methods=frozenset({"POST"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=policy.backoff_factor_s,
        backoff_jitter=policy.backoff_jitter_s,
        backoff_max=policy.backoff_max_s,
        retry_after_max=policy.retry_after_max_s,
        respect_retry_after_header=True,
        raise_on_status=False,  # give the caller the last 429 / 5xx answer, status and body included
        raise_on_redirect=False,
    )


def build_session(policy: HttpPolicy) -> requests.Session:
    """A keep-alive session whose pool holds ``policy.pool_size`` connections per host (threads never wait
    for a connection; none is opened and thrown away)."""
    session = requests.Session()
    adapter = HTTPAdapter(
        pool_connections=2, pool_maxsize=max(1, policy.pool_size), max_retries=build_retry(policy), pool_block=False
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers.update(
        {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": PROJECT_USER_AGENT}
    )
    return session


def user_agent_for(payload: Mapping[str, Any]) -> str:
    """The ``User-Agent`` of the request that carries ``payload``.

    >>> user_agent_for({"data": {"device_ua": "Mozilla%2F5.0"}}) == PROJECT_USER_AGENT
    True
    >>> user_agent_for({"data": {"device_ver": "iPhone-iOS-17.1"}}), user_agent_for({"device_id": {}})
    ('Unknown', 'Unknown')
    """
    data = payload.get("data")
    device_ua = data.get("device_ua") if isinstance(data, Mapping) else None
    return PROJECT_USER_AGENT if isinstance(device_ua, str) and device_ua.strip() else NO_DEVICE_UA_USER_AGENT


# --- Classification ----------------------------------------------------------------------------------------------


def is_success_body(body: bytes) -> bool:
    """Kochava's success answer: a JSON object whose ``success`` is ``"1"`` (tolerant: ``1`` / ``true`` too)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(document, dict):
        return False
    value = document.get("success")
    if isinstance(value, str):
        value = value.strip()
    return value in _SUCCESS_VALUES


def _parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None  # an HTTP date: urllib3 honoured it; the SQS backoff covers the rest


def classify_answer(
    status: int, body: bytes, *, attempts: int = 1, retry_after_s: float | None = None, elapsed_s: float = 0.0
) -> KochavaResult:
    """Turn Kochava's (last) answer into a :class:`KochavaResult`."""
    text = body[:MAX_KEPT_BODY_CHARS].decode("utf-8", errors="replace")
    common: dict[str, Any] = {
        "http_status": status,
        "response_body": text,
        "attempts": attempts,
        "retry_after_s": retry_after_s,
        "elapsed_s": elapsed_s,
    }
    if 200 <= status < 300:
        if is_success_body(body):
            return KochavaResult("delivered", **common)
        return KochavaResult("bad_response", error=f"HTTP {status} without the success answer", **common)
    if status in RETRY_STATUSES:
        return KochavaResult("transient", error=f"HTTP {status} after {attempts} attempt(s)", **common)
    return KochavaResult("permanent", error=f"HTTP {status}: Kochava refused the payload", **common)


# --- The real client ---------------------------------------------------------------------------------------------


class RequestsKochavaClient:
    """POSTs payloads with one shared ``requests.Session`` (thread-safe for this use: one request per call)."""

    def __init__(
        self,
        track_url: str,
        identitylink_url: str,
        policy: HttpPolicy | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.policy = policy or HttpPolicy()
        self._urls: dict[str, str] = {"install": track_url, "event": track_url, "identityLink": identitylink_url}
        self._session = session or build_session(self.policy)

    def url_for(self, kind: Kind) -> str:
        """``KOCHAVA_URL`` for install / event, ``KOCHAVA_IDENTITYLINK_URL`` for identityLink."""
        return self._urls[kind]

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()

    def send(self, kind: Kind, payload: Mapping[str, Any], *, deadline: float, retry: bool = True) -> KochavaResult:
        """POST the payload as JSON; never raises for HTTP or network trouble (see :class:`KochavaResult`).
        ``retry=False``: exactly one attempt (a breaker probe)."""
        started = time.monotonic()
        left = deadline - started
        if left < self.policy.connect_timeout_s + 0.5:
            return KochavaResult(
                "transient", error=f"no time left to send ({left:.1f} s before the deadline)", attempts=0
            )
        # The read timeout never runs past the deadline.
        timeout = (
            self.policy.connect_timeout_s,
            max(0.5, min(self.policy.read_timeout_s, left - self.policy.connect_timeout_s)),
        )
        _budget.deadline, _budget.attempt_budget_s, _budget.retries = deadline, sum(timeout), 0
        _budget.single_attempt = not retry
        try:
            response = self._session.post(
                self.url_for(kind),
                data=orjson.dumps(payload),
                headers={"User-Agent": user_agent_for(payload)},
                timeout=timeout,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            return self._failed(f"timeout: {type(exc).__name__}", started)
        except requests.RequestException as exc:
            return self._failed(f"{type(exc).__name__}: {_short(exc)}", started)
        finally:
            _budget.deadline, _budget.single_attempt = None, False
        return classify_answer(
            response.status_code,
            response.content,
            attempts=1 + _budget.retries,
            retry_after_s=_parse_retry_after(response.headers.get("Retry-After")),
            elapsed_s=time.monotonic() - started,
        )

    def _failed(self, error: str, started: float) -> KochavaResult:
        return KochavaResult(
            "transient", error=error, attempts=1 + _budget.retries, elapsed_s=time.monotonic() - started
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."
