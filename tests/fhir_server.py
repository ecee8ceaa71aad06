"""A real FHIR R4 endpoint on a free loopback port, serving fixture resources with paging and settable faults.

    with FhirTestServer(resources=[...], page_size=50) as server:
        server.base_url   # http://127.0.0.1:PORT/fhir
        server.requests   # what it was asked, for assertions

Search and read semantics come from cds_hooks.memory_fhir; this module adds HTTP, paging and faults.
Fault attributes may be changed while the server runs; they apply to every request after the change.
"""
from __future__ import annotations

import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Mapping
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

from requests.structures import CaseInsensitiveDict

from cds_hooks.memory_fhir import InMemoryFhirStore, UnsupportedQuery, searchset

FHIR_JSON = "application/fhir+json; charset=utf-8"
BASE_PATH = "/fhir"
# Idle keep-alive connections are dropped after this, so no handler thread outlives a test run for long.
IDLE_CONNECTION_SECONDS = 5.0


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    # Path and query string as sent, e.g. "/fhir/Observation?patient=p1&_page=2".
    path: str
    headers: CaseInsensitiveDict = field(repr=False)
    body: bytes = field(default=b"", repr=False)
    # The client's port: requests that share it came over one kept-alive connection.
    client_port: int = 0

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query)


def unused_port() -> int:
    """A loopback port where nothing listens (for "FHIR server down")."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def unreachable_base_url() -> str:
    return f"http://127.0.0.1:{unused_port()}{BASE_PATH}"


def operation_outcome(code: str, diagnostics: str) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}]}


class FhirTestServer:
    """Read (`GET /fhir/Type/id`), search (`GET /fhir/Type?...`, `POST /fhir/Type/_search`) and `GET /fhir/metadata`.

    Faults (constructor arguments, also attributes):
      delay_seconds          wait this long before answering (a slow server)
      status                 answer every call with this status and an OperationOutcome body
      non_json               answer 200 with an HTML page
      huge_bytes             answer 200 with a JSON body of this many bytes, streamed without Content-Length
      drip_seconds           send the body one byte at a time, waiting this long between bytes
      looping_next           every searchset's `next` link is the URL just asked for
      link_base              paging links name this base instead of the server's own (a proxy that rewrites badly)
      redirect_to            answer every call 307 to the same path under this base
      required_token         answer 401 unless `Authorization: Bearer <required_token>` is sent
      close_unanswered       "reused": read a kept-alive connection's second request and close it unanswered, as a
                             server does whose idle timeout fires just as the client reuses the connection;
                             "every": close every connection unanswered
      replace_in_body        (old, new): every resource answered with the bytes `old` replaced by `new`, to send what
                             json.dumps does not write (an integer of 5,000 digits, bytes that are not UTF-8)
    TLS: `tls` (a server-side ssl.SSLContext) serves https instead of http.
    """

    def __init__(
        self,
        resources: Iterable[Mapping[str, Any]] = (),
        *,
        page_size: int = 50,
        delay_seconds: float = 0.0,
        status: int | None = None,
        non_json: bool = False,
        huge_bytes: int | None = None,
        drip_seconds: float = 0.0,
        looping_next: bool = False,
        link_base: str | None = None,
        redirect_to: str | None = None,
        required_token: str | None = None,
        close_unanswered: Literal["reused", "every"] | None = None,
        replace_in_body: tuple[bytes, bytes] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.store = InMemoryFhirStore(resources)
        self.page_size = page_size
        self.delay_seconds = delay_seconds
        self.status = status
        self.non_json = non_json
        self.huge_bytes = huge_bytes
        self.drip_seconds = drip_seconds
        self.looping_next = looping_next
        self.link_base = link_base
        self.redirect_to = redirect_to
        self.required_token = required_token
        self.close_unanswered = close_unanswered
        self.replace_in_body = replace_in_body
        self.tls = tls
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        # Set on stop, so delayed and dripping handlers end at once instead of holding the port.
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_bundle(cls, bundle: Mapping[str, Any] | str | Path, **options: Any) -> "FhirTestServer":
        """A server over the entries of a FHIR Bundle, given as a dict or as the path of a Bundle JSON file."""
        if not isinstance(bundle, Mapping):
            bundle = json.loads(Path(bundle).read_text("utf-8"))
        return cls(InMemoryFhirStore.from_bundle(bundle).resources, **options)

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the FHIR test server is not running")
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self._server.server_port}{BASE_PATH}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def start(self) -> "FhirTestServer":
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        # A short poll interval makes stop() quick: shutdown() waits for the serving loop's next poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fhir-test-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> "FhirTestServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def pause(self, seconds: float) -> bool:
        """Wait `seconds`; False when the server is stopping meanwhile."""
        return not self._stopping.wait(seconds)

    def answer(self, method: str, path: str, parameters: list[tuple[str, str]]) -> tuple[int, dict[str, Any] | None]:
        """Status and resource for a fault-free request (None: no resource, e.g. 405 without a body)."""
        segments = path[len(BASE_PATH):].strip("/").split("/") if path.startswith(BASE_PATH) else []
        if segments == ["metadata"] and method == "GET":
            return 200, capability_statement()
        if method == "POST" and len(segments) == 2 and segments[1] == "_search":
            return self._search(segments[0], parameters, path)
        if method != "GET":
            return 405, operation_outcome("not-supported", f"{method} is not supported here")
        if len(segments) == 2 and segments[0]:
            resource = self.store.read(segments[0], segments[1])
            if resource is None:
                return 404, operation_outcome("not-found", f"{segments[0]}/{segments[1]} is not known")
            return 200, resource
        if len(segments) == 1 and segments[0]:
            return self._search(segments[0], parameters, path)
        return 404, operation_outcome("not-found", "unknown path")

    def _search(self, resource_type: str, parameters: list[tuple[str, str]], path: str) -> tuple[int, dict[str, Any]]:
        grouped: dict[str, list[str]] = {}
        for name, value in parameters:
            grouped.setdefault(name, []).append(value)
        try:
            matches, included = self.store.search(resource_type, grouped)
            page_size = int(grouped.get("_count", [self.page_size])[-1])
            page = int(grouped.get("_page", ["1"])[-1])
        except UnsupportedQuery as error:
            return 400, operation_outcome("not-supported", str(error))
        except ValueError:
            return 400, operation_outcome("invalid", "_count and _page must be integers")
        if page_size < 0 or page < 1:
            return 400, operation_outcome("invalid", "_count must be >= 0 and _page >= 1")
        start = (page - 1) * page_size
        on_page = matches[start:start + page_size]
        # Included resources travel with the first page; prefetch consumers flatten all pages anyway.
        links = self._links(resource_type, parameters, page, more=start + page_size < len(matches))
        bundle = searchset(on_page, included if page == 1 else [], links)
        bundle["total"] = len(matches)
        return 200, bundle

    def _links(self, resource_type: str, parameters: list[tuple[str, str]], page: int, more: bool) -> list[dict[str, str]]:
        # Links are GET searches even for a POSTed search, as HAPI does.
        def page_url(number: int) -> str:
            kept = [(name, value) for name, value in parameters if name != "_page"]
            return f"{self.link_base or self.base_url}/{resource_type}?{urlencode(kept + [('_page', str(number))])}"

        links = [{"relation": "self", "url": page_url(page)}]
        if self.looping_next:
            links.append({"relation": "next", "url": page_url(page)})
        elif more:
            links.append({"relation": "next", "url": page_url(page + 1)})
        return links


def capability_statement() -> dict[str, Any]:
    # Enough for clients (the CDS Hooks Sandbox among them) that check /metadata before they query.
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2024-01-01",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{"mode": "server"}],
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops connections when a dozen prefetch keys connect at once,
    # and the client's SYN retry then costs a whole second.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], fhir: FhirTestServer) -> None:
        self.fhir = fhir
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake handler threads blocked on keep-alive sockets so they end with the server."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_CONNECTION_SECONDS
    # Headers and body go out as separate writes; without TCP_NODELAY, Nagle plus delayed ACK adds ~40 ms per call.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.requests_on_connection = 0

    def do_GET(self) -> None:
        self._handle(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(self.rfile.read(length))

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: tests assert on `requests`, not on stderr.
        pass

    def _handle(self, body: bytes) -> None:
        fhir = self.server.fhir
        fhir.record(
            RecordedRequest(self.command, self.path, CaseInsensitiveDict(self.headers.items()), body, self.client_address[1])
        )
        self.requests_on_connection += 1
        if fhir.close_unanswered == "every" or (fhir.close_unanswered == "reused" and self.requests_on_connection > 1):
            self.close_connection = True
            return
        if fhir.delay_seconds and not fhir.pause(fhir.delay_seconds):
            self.close_connection = True
            return
        if fhir.redirect_to is not None:
            self._send_redirect(fhir.redirect_to + self.path.removeprefix(BASE_PATH))
        elif fhir.required_token is not None and self.headers.get("Authorization") != f"Bearer {fhir.required_token}":
            self._send_resource(401, operation_outcome("login", "a valid Bearer token is required"))
        elif fhir.status is not None:
            self._send_resource(fhir.status, operation_outcome("exception", f"fault injected: status {fhir.status}"))
        elif fhir.non_json:
            self._send(200, "text/html; charset=utf-8", b"<!doctype html><html><body><h1>Sign in</h1></body></html>")
        elif fhir.huge_bytes is not None:
            self._send_unsized(200, FHIR_JSON, padded_bundle(fhir.huge_bytes))
        else:
            parts = urlsplit(self.path)
            parameters = parse_qsl(parts.query, keep_blank_values=True)
            if self.command == "POST" and "form-urlencoded" in self.headers.get("Content-Type", ""):
                parameters += parse_qsl(body.decode("utf-8"), keep_blank_values=True)
            status, resource = fhir.answer(self.command, parts.path, parameters)
            self._send_resource(status, resource)

    def _send_redirect(self, location: str) -> None:
        self.send_response(307)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_resource(self, status: int, resource: dict[str, Any] | None) -> None:
        body = json.dumps(resource).encode("utf-8") if resource is not None else b""
        if self.server.fhir.replace_in_body is not None:
            body = body.replace(*self.server.fhir.replace_in_body)
        self._send(status, FHIR_JSON, body)

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        fhir = self.server.fhir
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not fhir.drip_seconds:
                self.wfile.write(body)
                return
            for index in range(len(body)):
                self.wfile.write(body[index:index + 1])
                self.wfile.flush()
                if not fhir.pause(fhir.drip_seconds):
                    break
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send_unsized(self, status: int, content_type: str, pieces: Iterator[bytes]) -> None:
        """A body without Content-Length, ended by closing the connection, so only streaming can bound it."""
        self.close_connection = True
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Connection", "close")
            self.end_headers()
            for piece in pieces:
                self.wfile.write(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass


def padded_bundle(size: int, piece_bytes: int = 64 * 1024) -> Iterator[bytes]:
    """An empty searchset Bundle padded with a text field to exactly `size` bytes (at least its skeleton)."""
    head = b'{"resourceType":"Bundle","type":"searchset","total":0,"padding":"'
    tail = b'"}'
    padding = max(0, size - len(head) - len(tail))
    yield head
    while padding > 0:
        step = min(piece_bytes, padding)
        yield b"x" * step
        padding -= step
    yield tail
