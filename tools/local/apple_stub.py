"""A local stand-in for Apple's AdServices attribution API (``POST /api/v1/``, body = the raw token as text/plain).

Answers per token from a script, so a test can play "404, 404, then 200" for one token and "400" for another:

    >>> import requests
    >>> with AppleStub() as apple:
    ...     apple.script("tok-1", [404, attribution_payload(campaign_id=42)])
    ...     first = requests.post(apple.api_url, data="tok-1", timeout=2).status_code
    ...     second = requests.post(apple.api_url, data="tok-1", timeout=2).json()["campaignId"]
    >>> first, second
    (404, 42)

Replies: an ``int`` status (404 / 400 / 500 with an empty body), a :class:`Reply` (e.g. ``Reply.hanging()`` for a
timeout), or a ``dict`` (a 200 with that JSON payload; :data:`DEVELOPER_MODE_PAYLOAD` is Apple's test answer).
The last reply of a token's script repeats. Tokens without a script get ``default`` (404 unless told otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

from tools.local.stub_http import RecordedRequest, Reply, StubServer

API_PATH = "/api/v1/"

# Apple's fixed answer for a device in developer mode (public documentation); never real attribution.
DEVELOPER_MODE_PAYLOAD: dict[str, Any] = {
    "attribution": True,
    "orgId": 1234567890,
    "campaignId": 1234567890,
    "conversionType": "Download",
    "clickDate": "2020-04-08T17:17Z",
    "claimType": "Click",
    "adGroupId": 1234567890,
    "countryOrRegion": "US",
    "keywordId": 123222,
    "adId": 542317136,
}

AppleReplySpec = Reply | int | dict[str, Any]


def attribution_payload(campaign_id: int = 542370539, *, attributed: bool = True) -> dict[str, Any]:
    """A plausible real 200 payload (``attributed=False`` gives Apple's organic answer)."""
    if not attributed:
        return {"attribution": False}
    return {
        "attribution": True,
        "orgId": 40669820,
        "campaignId": campaign_id,
        "conversionType": "Download",
        "claimType": "Click",
        "adGroupId": 542317095,
        "countryOrRegion": "US",
        "keywordId": 87675432,
        "adId": 542317136,
        "clickDate": "2024-10-08T17:17Z",
        "supplyPlacement": "APPSTORE_SEARCH_RESULTS",
    }


def as_apple_reply(spec: AppleReplySpec) -> Reply:
    """int -> that status with an empty body; dict -> 200 with that JSON; Reply as is."""
    if isinstance(spec, Reply):
        return spec
    if isinstance(spec, dict):
        return Reply.json(200, spec)
    return Reply(status=spec, body=b"", content_type="text/plain")


class AppleStub(StubServer):
    """The AdServices stand-in; see the module docstring."""

    def __init__(self, port: int = 0, *, default: AppleReplySpec = 404) -> None:
        super().__init__(port)
        self.default = as_apple_reply(default)
        self._scripts: dict[str, deque[Reply]] = {}
        self._settings_lock = threading.Lock()

    @property
    def api_url(self) -> str:
        """The ``ADSERVICES_URL`` to configure."""
        return self.url + API_PATH

    def script(self, token: str, replies: Iterable[AppleReplySpec]) -> None:
        """Answer requests carrying ``token`` with ``replies`` in order; the last one repeats."""
        queue = deque(as_apple_reply(reply) for reply in replies)
        if not queue:
            raise ValueError("a script needs at least one reply")
        with self._settings_lock:
            self._scripts[token] = queue

    def choose_reply(self, request: RecordedRequest) -> Reply:
        """The token's next scripted reply, else the default."""
        if request.path.split("?", 1)[0].rstrip("/") != API_PATH.rstrip("/"):
            return Reply(status=404, body=b"no route", content_type="text/plain")
        with self._settings_lock:
            queue = self._scripts.get(request.text.strip())
            if not queue:
                return self.default
            return queue[0] if len(queue) == 1 else queue.popleft()

    def inspect(self, request: RecordedRequest) -> list[str]:
        """Apple wants POST, text/plain, a non-empty raw token."""
        problems = []
        if request.method != "POST":
            problems.append(f"method {request.method}, expected POST")
        if not request.headers.get("content-type", "").startswith("text/plain"):
            problems.append(f"content-type {request.headers.get('content-type')!r}, expected text/plain")
        if not request.body.strip():
            problems.append("empty token")
        return problems

    def calls_for(self, token: str) -> int:
        """How many requests carried ``token``."""
        return sum(1 for r in self.requests if r.text.strip() == token)


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted; every token answers ``--default`` (a status) or a real-looking attribution."""
    parser = argparse.ArgumentParser(description="Local Apple AdServices stand-in")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--default", type=int, default=200, help="status for every token (200: attribution)")
    args = parser.parse_args(argv)
    default: AppleReplySpec = attribution_payload() if args.default == 200 else args.default
    with AppleStub(args.port, default=default) as stub:
        print(f"Apple AdServices stub on {stub.api_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
