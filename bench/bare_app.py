"""The baseline the benchmark compares with: a Flask handler that only parses the same JSON body and answers
`{"cards": []}`, served by the same gunicorn configuration as the service.

    gunicorn -k gthread -w 2 --threads 4 bench.bare_app:app
"""
from __future__ import annotations

from flask import Flask, jsonify

from cds_hooks.api.cds_services import json_body
from cds_hooks.cli import prepare_worker_heap

app = Flask(__name__)


@app.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@app.post("/cds-services/<service_id>")
def invoke(service_id: str):
    # The whole body, parsed as the service checks it (media type, strict JSON): what any Flask handler of it does.
    json_body()
    return jsonify({"cards": []})


# As `cds-hooks serve` does in each worker (gunicorn imports this module in the worker). Without the freeze, full
# collections walking Flask's own objects stalled one request in ~20 by ~40 ms, and the baseline's p95 and p99
# measured those stalls instead of parsing; the young-generation threshold speeds its parse as it does ours.
prepare_worker_heap()
