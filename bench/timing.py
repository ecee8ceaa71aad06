"""The service's own work on one request body, timed in this process without HTTP: the whole body's parse (the bare
handler's work), the service's read of it (protocol.body), then `Engine.evaluate` of that with its step timings.
Used by the benchmark's host-speed line and by the profile."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from cds_hooks import json_text
from cds_hooks.engine import Engine
from cds_hooks.protocol.body import read_hook_call


@dataclass(frozen=True)
class Timings:
    parse_ms: list[float]
    read_ms: list[float]
    evaluate_ms: list[float]
    steps_ms: dict[str, list[float]]  # engine step -> ms of each call


def parse_and_evaluate(engine: Engine, service_id: str, body: bytes, samples: int) -> Timings:
    """`samples` calls, one after another."""
    timings = Timings([], [], [], {})
    for _ in range(samples):
        parsed, parse_ms = _timed_parse(body)
        del parsed
        started = time.perf_counter()
        request = read_hook_call(body)
        read = time.perf_counter()
        evaluation = engine.evaluate(service_id, request)
        timings.evaluate_ms.append((time.perf_counter() - read) * 1000)
        timings.read_ms.append((read - started) * 1000)
        timings.parse_ms.append(parse_ms)
        for step, milliseconds in evaluation.timings_ms.items():
            timings.steps_ms.setdefault(step, []).append(milliseconds)
        # Freed here, not when the next parse rebinds the name, so the parse time does not include freeing this one.
        del request
    return timings


def parse_after_idle(body: bytes, samples: int, idle_seconds: float) -> list[float]:
    """ms of `samples` parses, each after the CPU idled `idle_seconds`, as a server's does between requests."""
    parse_ms = []
    for _ in range(samples):
        time.sleep(idle_seconds)
        request, milliseconds = _timed_parse(body)
        parse_ms.append(milliseconds)
        del request
    return parse_ms


def _timed_parse(body: bytes) -> tuple[Any, float]:
    started = time.perf_counter()
    request = json_text.strict_loads(body)
    return request, (time.perf_counter() - started) * 1000
