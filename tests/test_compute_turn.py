"""The compute turn: one request computes at a time in a process, and nobody holds the turn while waiting on the
network, neither for a FHIR server in a prefetch fallback nor for a client still sending its body."""
from __future__ import annotations

import io
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests

from cds_hooks.compute_turn import COMPUTE_TURN, ComputeTurn, TurnPerRequest
from cds_hooks.settings import Settings

from .conftest import LiveServer
from .fhir_server import FhirTestServer
from .test_prefetch_fallback import CASE, timed_post as post

SLOW_SECONDS = 0.8
# A call that must not wait behind the slow one: far less than SLOW_SECONDS, with room for a loaded test machine.
QUICK_SECONDS = 0.4


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The slow call must wait SLOW_SECONDS and still be answered. The tests' usual 1 s budget left 0.2 s for its
    # eleven fetches to be answered and parsed beside the quick call, and a loaded machine once ran past it (412).
    return settings.replace(prefetch_budget_seconds=3.0)


def request_head(base_url: str, content_length: object) -> bytes:
    """The start of a service call sent by hand, up to the body."""
    return (f"POST /cds-services/{CASE.service_id} HTTP/1.1\r\nHost: {urlsplit(base_url).netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n").encode()


def test_a_call_waiting_on_a_slow_fhir_server_does_not_hold_up_the_others(live_server: LiveServer):
    with FhirTestServer(resources=CASE.store.resources, delay_seconds=SLOW_SECONDS) as fhir:
        slow: list[tuple[requests.Response, float]] = []
        waiting = threading.Thread(target=lambda: slow.append(post(live_server.base_url, CASE.request_for("none", fhir.base_url))))
        waiting.start()
        deadline = time.monotonic() + 5
        while not fhir.requests and time.monotonic() < deadline:  # the slow call is now waiting on the FHIR server
            time.sleep(0.01)
        quick, quick_seconds = post(live_server.base_url, CASE.request_for("full"))
        waiting.join(timeout=10)
    assert quick.status_code == 200 and slow[0][0].status_code == 200
    assert slow[0][1] >= SLOW_SECONDS
    assert quick_seconds < QUICK_SECONDS


def test_a_client_still_sending_its_body_does_not_hold_up_the_others(live_server: LiveServer):
    body = json.dumps(CASE.request_for("full")).encode()
    address = urlsplit(live_server.base_url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as uploading:
        uploading.sendall(request_head(live_server.base_url, len(body)) + body[: len(body) // 2])
        time.sleep(0.1)  # the server has started reading this body
        quick, quick_seconds = post(live_server.base_url, CASE.request_for("full"))
        uploading.sendall(body[len(body) // 2:])
        assert uploading.recv(64).startswith(b"HTTP/1.1 200")
    assert quick.status_code == 200
    assert quick_seconds < QUICK_SECONDS


def test_a_paused_turn_lets_another_thread_compute_and_is_taken_back():
    turn = ComputeTurn()
    events: list[str] = []
    other_may_start = threading.Event()

    def other() -> None:
        other_may_start.wait()
        with turn.turn():
            events.append("other computed")

    thread = threading.Thread(target=other)
    thread.start()
    with turn.turn():
        other_may_start.set()
        time.sleep(0.05)
        events.append("held")  # the other thread cannot have computed while this one holds the turn
        with turn.paused():
            thread.join(timeout=5)
        assert turn.held()
    assert events == ["held", "other computed"]


def test_the_answer_is_built_in_the_turn_sent_outside_it_and_closed_in_a_turn_again():
    seen: dict[str, bool] = {}

    class Answer:
        def __iter__(self):
            seen["sent in the turn"] = COMPUTE_TURN.held()
            return iter([b"{}"])

        def close(self) -> None:  # where the service frees the call's parsed body
            seen["closed in the turn"] = COMPUTE_TURN.held()

    def app(environ, start_response):
        seen["built in the turn"] = COMPUTE_TURN.held()
        start_response("200 OK", [("Content-Type", "application/json")])
        return Answer()

    body = b'{"hook": "patient-view"}'
    environ = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
    answer = TurnPerRequest(app, max_body_bytes=1024)(environ, lambda status, headers: None)
    assert b"".join(answer) == b"{}"
    answer.close()
    assert seen == {"built in the turn": True, "sent in the turn": False, "closed in the turn": True}
    assert not COMPUTE_TURN.held()


def test_pausing_without_the_turn_does_nothing():
    turn = ComputeTurn()
    with turn.paused():
        assert not turn.held()
    assert not turn.held()


@pytest.mark.parametrize("declared", ["abc", "-1"])
def test_an_unreadable_content_length_is_left_to_the_server_and_the_app(live_server: LiveServer, declared: str):
    address = urlsplit(live_server.base_url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(request_head(live_server.base_url, declared) + b"{}")
        status_line = connection.recv(64)
    assert status_line.split(b" ")[1].startswith(b"4")
