"""The baseline the benchmark compares with: a Flask handler that only parses the same JSON body and answers
`{"cards": []}`, served by the same gunicorn configuration as the service.

    gunicorn -k gthread -w 2 --threads 4 bench.bare_app:app
"""
from __future__ import annotations

import json

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@app.post("/cds-services/<service_id>")
def invoke(service_id: str):
    # The same parse as the service's json_body(): the raw body through json.loads.
    json.loads(request.get_data(cache=False))
    return jsonify({"cards": []})
