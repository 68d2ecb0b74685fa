"""A small scriptable HTTP server to stand in for a third-party API (Kochava, Apple) in tests and the local stack.

It is a real ``ThreadingHTTPServer`` bound to ``127.0.0.1`` on an ephemeral port, speaking HTTP/1.1 with
keep-alive, so clients exercise their real connection pools, timeouts and retries. Subclasses decide what to
answer (:meth:`StubServer.choose_reply`); this module records every request, counts TCP connections, and plays
a :class:`Reply` (status, body, headers, optional latency, optional hang).

It also records whether each answer reached the client (:attr:`RecordedRequest.answer_lost`): a client that gave up
on a request (its read timeout fired: urllib3 then closes the connection) never reads an answer written after that,
however the answer was meant. TCP tells: a client that closes with the answer unread in its socket sends a reset
(Linux), one that had closed before the answer arrived has the answer reset, and one that read it closes cleanly or
sends its next request. So an answer the stub wrote late (a starved machine) is told from one the client acted on.

Example:
    >>> class Hello(StubServer):
    ...     def choose_reply(self, request: RecordedRequest) -> Reply:
    ...         return Reply(200, b"hi")
    >>> with Hello() as server:
    ...     import urllib.request
    ...     urllib.request.urlopen(server.url + "/x", timeout=2).read()
    b'hi'
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Reply:
    """What the stub answers to one request.

    ``delay_s`` waits before answering (a slow server); ``hang`` never answers until the server stops or
    ``hang_s`` passes, then closes the connection without a response (a server that times the client out).
    """

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    delay_s: float = 0.0
    hang: bool = False
    hang_s: float = 30.0

    @classmethod
    def json(cls, status: int, document: Any, headers: Mapping[str, str] | None = None) -> Reply:
        """A JSON answer."""
        return cls(status=status, body=json.dumps(document).encode(), headers=dict(headers or {}))

    @classmethod
    def hanging(cls, hang_s: float = 30.0) -> Reply:
        """Read the request, then say nothing for ``hang_s`` seconds (the client's read timeout fires first)."""
        return cls(hang=True, hang_s=hang_s)


@dataclass
class RecordedRequest:
    """One request as the stub saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float  # epoch seconds
    connection_id: int  # which TCP connection carried it (1-based, in accept order)
    json: Any = None  # the parsed body when it was JSON, else None
    reply_status: int | None = None  # what the stub answered (None: it hung)
    reply_body: bytes = b""
    replied_at: float | None = None  # epoch seconds the answer was written (None: it hung)
    # The client had hung up before it read the answer (it had timed out), so the answer never reached it: set when
    # the connection shows it, i.e. at once for a client that closes on a timeout (see the module docstring).
    answer_lost: bool = False
    violations: list[str] = field(default_factory=list)  # payload-shape problems (subclass checks)

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (replacement characters for invalid bytes)."""
        return self.body.decode("utf-8", errors="replace")


# How long a connection that the client closed is watched for the reset that says our last answer arrived after
# the close (on loopback the reset comes back with the answer's own segment: this is a margin, spent once per close).
_RESET_WAIT_S = 0.05


def _peer_closed(connection: socket.socket) -> bool:
    """Has the client closed its end (an end of stream is waiting to be read)? Never blocks."""
    try:
        return connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:  # open, nothing to read
        return False
    except OSError:  # reset: gone
        return True


def _answer_was_reset(connection: socket.socket) -> bool:
    """After an end of stream: was an answer we wrote refused by the client's closed socket (``EPIPE`` pending)?"""
    time.sleep(_RESET_WAIT_S)
    try:
        return connection.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0
    except OSError:
        return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one TCP connection may carry many requests
    server: _StubHTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection_id = self.server.stub.note_connection()
        self._answered: RecordedRequest | None = None  # the last answer written on this connection, until it is read

    def handle_one_request(self) -> None:
        """Read the connection's next request; what comes first tells whether the client read the last answer:
        a request or a clean end (it did), a reset or an answer refused by its closed socket (it did not)."""
        answered, self._answered = self._answered, None
        try:
            super().handle_one_request()
        except ConnectionResetError:  # closed with our answer unread in its socket
            self.close_connection = True
            if answered is not None:
                answered.answer_lost = True
            return
        ended = not getattr(self, "raw_requestline", b"")  # BaseHTTPRequestHandler sets it (untyped in typeshed)
        if answered is not None and ended and _answer_was_reset(self.connection):
            answered.answer_lost = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={key.lower(): value for key, value in self.headers.items()},
            body=body,
            received_at=time.time(),
            connection_id=self.connection_id,
        )
        if body:
            try:
                request.json = json.loads(body)
            except ValueError:
                request.json = None
        stub = self.server.stub
        reply = stub.dispatch(request)
        if reply.hang:
            stub.wait_or_stop(reply.hang_s)
            self.close_connection = True
            return
        if reply.delay_s > 0:
            stub.wait_or_stop(reply.delay_s)
        request.reply_status = reply.status  # set before answering: a client that got the answer sees it
        request.reply_body = reply.body
        request.replied_at = time.time()
        request.answer_lost = _peer_closed(self.connection)  # it gave up before we answered
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:  # reset or broken pipe: the client is gone
            request.answer_lost = True
            self.close_connection = True
            return
        self._answered = request

    do_POST = _handle
    do_GET = _handle
    do_PUT = _handle


class _StubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, stub: StubServer, port: int) -> None:
        self.stub = stub
        super().__init__((HOST, port), _Handler)


class StubServer:
    """Base of the local stand-ins: start / stop in-process, record requests, count connections.

    Use as a context manager or call :meth:`start` / :meth:`stop`. ``port=0`` picks a free port; read
    :attr:`url` after starting.
    """

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _StubHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[RecordedRequest] = []
        self.connections_opened = 0

    # Lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _StubHTTPServer(self, self._port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hanging requests, stop serving and close the socket."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (only once started)."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://{HOST}:{self.port}"

    # Hooks and helpers ---------------------------------------------------------------------------------------

    def choose_reply(self, request: RecordedRequest) -> Reply:
        """What to answer; subclasses override. Called with the stub's lock held, in arrival order."""
        raise NotImplementedError

    def inspect(self, request: RecordedRequest) -> list[str]:
        """Problems with the request's shape (recorded, never answered with an error); subclasses override."""
        return []

    def dispatch(self, request: RecordedRequest) -> Reply:
        """Record the request, check it and pick the reply (serialised, so scripted sequences are deterministic)."""
        violations = self.inspect(request)
        with self._lock:
            request.violations.extend(violations)
            self.requests.append(request)
            return self.choose_reply(request)

    def note_connection(self) -> int:
        """Count a newly accepted TCP connection; returns its 1-based id."""
        with self._lock:
            self.connections_opened += 1
            return self.connections_opened

    def wait_or_stop(self, seconds: float) -> None:
        """Sleep ``seconds`` unless the server is stopping."""
        self._stopping.wait(seconds)

    def reset(self) -> None:
        """Forget recorded requests and the connection count (scripts and settings stay)."""
        with self._lock:
            self.requests.clear()
            self.connections_opened = 0
