"""The local stubs tell an answer the client read from one it never read (``RecordedRequest.answer_lost``).

The fault run (``test_fault_injection.py``) allows Kochava a second success for a payload only after answers that
never reached the deliverer: the delivery guarantee is exactly once "unless Kochava's answer is lost". On a starved
machine the sink can write a success after the deliverer's read timeout fired; the deliverer then retries, and the
sink must be able to say which answers those were, from the connection alone (see ``tools/local/stub_http.py``).
"""

from __future__ import annotations

import socket
import time

import pytest
import requests

from tools.local.stub_http import RecordedRequest, Reply, StubServer

REQUEST = b"POST /track/json HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}"


class Stub(StubServer):
    """Answers 200, after ``delay_s`` when told."""

    delay_s = 0.0

    def choose_reply(self, request: RecordedRequest) -> Reply:
        return Reply(200, b'{"success":"1"}', delay_s=self.delay_s)


def settled(stub: Stub, count: int, *, lost: bool, within_s: float = 5.0) -> list[RecordedRequest]:
    """The stub's first ``count`` requests once all were answered and the last shows ``answer_lost == lost``."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        answered = [r for r in stub.requests if r.replied_at is not None]
        if len(answered) >= count and answered[count - 1].answer_lost == lost:
            return answered[:count]
        time.sleep(0.01)
    pytest.fail(f"not settled: {[(r.reply_status, r.replied_at, r.answer_lost) for r in stub.requests]}")


def test_answers_the_client_read_are_not_lost_on_keep_alive_nor_on_a_clean_close() -> None:
    with Stub() as stub, requests.Session() as session:
        statuses = [session.post(stub.url + "/track/json", json={}, timeout=5).status_code for _ in range(2)]
        session.close()
        time.sleep(0.2)  # the stub has seen the clean close by now
        answers = settled(stub, 2, lost=False)
    assert statuses == [200, 200]
    assert stub.connections_opened == 1
    assert [answer.answer_lost for answer in answers] == [False, False]
    assert all(a.replied_at is not None and a.replied_at >= a.received_at for a in answers)


def test_an_answer_written_after_the_client_timed_out_and_hung_up_is_lost() -> None:
    with Stub() as stub:
        stub.delay_s = 0.5
        with pytest.raises(requests.ReadTimeout):
            requests.post(stub.url + "/track/json", json={}, timeout=(2, 0.1))
        [answer] = settled(stub, 1, lost=True)
    assert answer.reply_status == 200
    assert answer.replied_at is not None and answer.replied_at - answer.received_at >= 0.4


def test_an_answer_that_arrived_but_was_never_read_before_the_client_closed_is_lost() -> None:
    """A starved client: the answer came in time, but the client's timeout fired before it read it, and it closed."""
    with Stub() as stub:
        client = socket.create_connection(("127.0.0.1", stub.port), timeout=2)
        try:
            client.sendall(REQUEST)
            deadline = time.monotonic() + 5
            while not (stub.requests and stub.requests[0].replied_at) and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.05)  # the answer is in the client's socket, unread
        finally:
            client.close()
        [answer] = settled(stub, 1, lost=True)
    assert answer.reply_status == 200


def test_a_client_that_read_the_answer_then_closed_did_not_lose_it() -> None:
    with Stub() as stub:
        client = socket.create_connection(("127.0.0.1", stub.port), timeout=2)
        try:
            client.sendall(REQUEST)
            received = b""
            while not received.endswith(b'{"success":"1"}'):
                received += client.recv(4096)
        finally:
            client.close()
        time.sleep(0.2)
        [answer] = settled(stub, 1, lost=False)
    assert received.startswith(b"HTTP/1.1 200") and answer.reply_status == 200
