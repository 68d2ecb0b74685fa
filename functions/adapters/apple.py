"""Apple AdServices attribution API client: exchange an AdServices token for its attribution record.

``POST {ADSERVICES_URL}`` (default ``https://api-adservices.apple.com/api/v1/``), ``Content-Type: text/plain``, body
= the raw token, no authentication. Apple's answers, as this client reports them (:class:`AdServicesResult`):

=====================  ================  =========================================================================
Apple                  ``status``        what the caller (the enricher) does
=====================  ================  =========================================================================
200 + JSON object      ``resolved``      attach ``attribution`` (unless :attr:`~AdServicesResult.developer_mode`)
400                    ``invalid``       give up on the token, keep the event
404                    ``not_ready``     try again in 5 s, at most 3 tries in all, while the token is fresh
5xx, timeout, network  ``unavailable``   try again later while the token is fresh
anything else          ``unavailable``   (an unexpected answer is treated as Apple being unwell)
=====================  ================  =========================================================================

There is deliberately **no retry loop** here: Apple asks for retries 5 s apart, which must not hold up a Lambda
batch, so the caller schedules them (a delayed re-queue). Apple may hold a 404 open for about a second, so the
read timeout is well above 1 s. The token is never logged or put in an error message.

Example:
    >>> AdServicesResult(status="resolved", http_status=200, attribution={"attribution": False}).developer_mode
    False
"""

from __future__ import annotations

import time
from typing import Final

import orjson
import requests
from requests.adapters import HTTPAdapter

from functions.pipeline.settings import DEFAULT_ADSERVICES_URL
from functions.ports import AdServicesResult

DEFAULT_CONNECT_TIMEOUT_S: Final = 2.0
DEFAULT_READ_TIMEOUT_S: Final = 5.0


class RequestsAdServicesClient:
    """The real client: one keep-alive ``requests.Session``, connect / read timeouts, no retries."""

    def __init__(
        self,
        url: str = DEFAULT_ADSERVICES_URL,
        *,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        pool_size: int = 10,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url
        self._timeout = (connect_timeout_s, read_timeout_s)
        if session is None:
            session = requests.Session()
            # max_retries=0: one attempt per call, the caller owns the 5 s retry schedule.
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(1, pool_size), max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self._session = session

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()

    def resolve(self, token: str) -> AdServicesResult:
        """POST the raw token as text/plain and classify Apple's answer."""
        started = time.monotonic()
        try:
            response = self._session.post(
                self.url,
                data=token.encode(),
                headers={"Content-Type": "text/plain", "Accept": "application/json"},
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            return AdServicesResult("unavailable", error=f"timeout: {type(exc).__name__}", elapsed_s=_since(started))
        except requests.RequestException as exc:
            return AdServicesResult("unavailable", error=f"network: {type(exc).__name__}", elapsed_s=_since(started))
        return classify_apple_answer(response.status_code, response.content, elapsed_s=_since(started))


def classify_apple_answer(status: int, body: bytes, *, elapsed_s: float = 0.0) -> AdServicesResult:
    """Apple's HTTP answer -> :class:`AdServicesResult` (see the module table).

    >>> classify_apple_answer(404, b"").status, classify_apple_answer(400, b"").status
    ('not_ready', 'invalid')
    >>> classify_apple_answer(200, b'{"attribution": false}').attribution
    {'attribution': False}
    """
    if status == 200:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return AdServicesResult(
                "unavailable", status, error="HTTP 200 with a body that is not JSON", elapsed_s=elapsed_s
            )
        if not isinstance(document, dict):
            return AdServicesResult("unavailable", status, error="HTTP 200 without a JSON object", elapsed_s=elapsed_s)
        return AdServicesResult("resolved", status, attribution=document, elapsed_s=elapsed_s)
    if status == 400:
        return AdServicesResult("invalid", status, error="Apple: invalid token", elapsed_s=elapsed_s)
    if status == 404:
        return AdServicesResult("not_ready", status, error="Apple: attribution not ready yet", elapsed_s=elapsed_s)
    return AdServicesResult("unavailable", status, error=f"Apple: HTTP {status}", elapsed_s=elapsed_s)


def _since(started: float) -> float:
    return time.monotonic() - started
