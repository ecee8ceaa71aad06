"""One request at a time computes in a worker process; the others wait for their turn, not for the GIL.

A gunicorn worker runs several threads so that it can wait on the network for several calls at once. Only one of
them computes at a time anyway (the GIL). Left to the GIL, the calls of a worker were interleaved: every 5 ms, and at
every socket read, log line or SQLite write of another thread. On a 2,000-resource record, with eight clients, a call
then cost ~13 ms of CPU against ~10.7 ms when each call ran in a turn, and the service answered ~18 % fewer calls
per second (same-run A/B with `hey`, issue 6).

A request takes the turn once its body is in memory, and keeps it until the app has built its answer; the answer is
sent outside the turn, and closed (where the app frees the call's memory) in a turn again. A request gives the turn
away while it waits on something slower than itself: the FHIR server in a prefetch fallback, or a client's JWK Set.
A body that is not in memory yet is never read in a turn, so a slow client cannot hold one.

The rule for code run in a turn: never wait for a thread that may itself be waiting for the turn. Wrap such a wait
in `COMPUTE_TURN.paused()`, as `auth.IssuerKeys.get` does around its lock. `cds-hooks run`, `cds-hooks test` and
tests that call the engine directly never hold the turn; `paused()` then does nothing.
"""
from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.wsgi import get_content_length


class ComputeTurn:
    """A lock that knows whether the current thread holds it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder = threading.local()

    def take(self) -> None:
        self._lock.acquire()
        self._holder.held = True

    def end(self) -> None:
        self._holder.held = False
        self._lock.release()

    def held(self) -> bool:
        return getattr(self._holder, "held", False)

    @contextmanager
    def turn(self) -> Iterator[None]:
        self.take()
        try:
            yield
        finally:
            self.end()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Let other requests compute while this one waits; take the turn back afterwards."""
        if not self.held():
            yield
            return
        self.end()
        try:
            yield
        finally:
            self.take()


# The GIL is one per process, and so is the turn.
COMPUTE_TURN = ComputeTurn()


class TurnPerRequest:
    """WSGI middleware: reads a request's body, then runs the app in the process's compute turn, and closes the
    sent answer in a turn too.

    The answer is built in one turn and sent outside it. The app frees a call's parsed body when the answer is closed
    (cds_services.invoke): on a 2,000-resource record that is ~50,000 objects and ~2-3 ms the EHR need not wait for.
    That freeing takes a turn of its own: done outside one, it interleaved with other calls' computing, and with
    eight clients it cost as much as having no turn (bench/, 165 against 216 calls per second).
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], max_body_bytes: int) -> None:
        self._app = app
        self._max_body_bytes = max_body_bytes

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not _read_body_first(environ, self._max_body_bytes):
            return self._app(environ, start_response)
        with COMPUTE_TURN.turn():
            return _ClosedInTurn(self._app(environ, start_response))


class _ClosedInTurn:
    """A WSGI answer whose close(), where the app's on-close work runs, happens in the compute turn."""

    def __init__(self, answer: Iterable[bytes]) -> None:
        self._answer = answer

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._answer)

    def close(self) -> None:
        close = getattr(self._answer, "close", None)
        if close is not None:
            with COMPUTE_TURN.turn():
                close()


def _read_body_first(environ: dict[str, Any], max_body_bytes: int) -> bool:
    """Put a body of declared length up to the cap into memory; False when the app is left to read it (chunked, over
    the cap, or unreadable: the app then meets the same error it would have met reading it)."""
    length = get_content_length(environ)  # as the app reads it (request.content_length)
    if length is None:
        # A body in chunks, which the app reads itself, or no body at all.
        return "HTTP_TRANSFER_ENCODING" not in environ
    if length > max_body_bytes:
        return False
    try:
        body = environ["wsgi.input"].read(length)
    except Exception as error:  # a client that went away or sent less: the app answers it as it always has
        environ["wsgi.input"] = _FailedRead(error)
        return False
    environ["wsgi.input"] = io.BytesIO(body)
    return True


class _FailedRead(io.RawIOBase):
    """The request's input stream after reading it failed: every read fails the same way."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self._error = error

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise self._error
