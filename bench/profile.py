"""Where a request's time goes: each hook on the large HER2-positive record, through the real Flask app.

    .venv/bin/python -m bench.profile bench/profile-after.txt

Per hook: the median of the engine's own step timings, then a pyinstrument call tree of many requests
(the Flask layer, JSON parsing, the engine and serialisation), trimmed to frames that matter.
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from pyinstrument import Profiler

from bench.generate import HOOKS, hook_request, patient_bundle
from bench.timing import parse_and_evaluate
from cds_hooks.app import create_app
from cds_hooks.cli import prepare_worker_heap
from cds_hooks.services import service_for_hook
from cds_hooks.settings import Settings

WARM_UP = 20
PROFILED = 200


def profile_hooks(patient: str = "her2pos") -> str:
    today = date.today()
    bundle = patient_bundle(patient, today)
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(Settings(database_path=Path(folder) / "profile.sqlite3", auth_required=False))
        prepare_worker_heap()  # as `cds-hooks serve` does in each worker
        client = app.test_client()
        sections = []
        for hook in HOOKS:
            service_id = service_for_hook(hook).id
            body = json.dumps(hook_request(bundle, hook, today, None)).encode("utf-8")
            sections.append(_profile_hook(app, client, service_id, body))
        app.extensions["cds_hooks.engine"].close()
    return "\n".join(sections)


def _profile_hook(app, client, service_id: str, body: bytes) -> str:
    def call() -> None:
        response = client.post(f"/cds-services/{service_id}", data=body, content_type="application/json")
        assert response.status_code == 200, response.get_data(as_text=True)[:300]

    for _ in range(WARM_UP):
        call()
    timings = parse_and_evaluate(app.extensions["cds_hooks.engine"], service_id, body, samples=50)
    wall = []
    profiler = Profiler(interval=0.0002)
    profiler.start()
    for _ in range(PROFILED):
        started = time.perf_counter()
        call()
        wall.append((time.perf_counter() - started) * 1000)
    profiler.stop()
    medians = ", ".join(f"{step} {statistics.median(values):.2f}" for step, values in timings.steps_ms.items())
    return (
        f"=== {service_id}: {len(body) / 1e6:.2f} MB request, {PROFILED} requests through the Flask test client ===\n"
        f"median per request: {statistics.median(wall):.2f} ms through Flask (under the profiler); "
        f"parsing the whole body (json_text.strict_loads, the bare handler's work) {statistics.median(timings.parse_ms):.2f} ms, "
        f"reading it as the service does (protocol.body.read_hook_call) {statistics.median(timings.read_ms):.2f} ms\n"
        f"engine steps, median ms: {medians}\n\n"
        + profiler.output_text(unicode=True, color=False, processor_options={"filter_threshold": 0.01})
    )


if __name__ == "__main__":
    text = profile_hooks()
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text, "utf-8")
    print(text)
