"""The FHIR endpoint the fallback runs fetch from: every search the service's prefetch templates make for the
benchmark records, answered after FHIR_DELAY_SECONDS with bytes prepared at start-up, in its own gunicorn process.

    BENCH_FHIR_ANSWERS=answers.json gunicorn -k gthread --threads 16 bench.fhir_endpoint:app

The delay stands for a real FHIR server's latency. Preparing the answers keeps the endpoint's own CPU out of the
measurement: searching 2,000 resources and serialising the result for eleven concurrent queries in one Python
process queues them on its interpreter lock, and that queue would be charged to the service as fetch time.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import parse_qsl

from cds_hooks.memory_fhir import InMemoryFhirStore

FHIR_DELAY_SECONDS = 0.020
BASE_PATH = "/fhir"
ANSWERS_VARIABLE = "BENCH_FHIR_ANSWERS"
_FHIR_JSON = [("Content-Type", "application/fhir+json; charset=utf-8")]


def answer_key(path: str, query: str) -> str:
    """One key however a client orders or encodes the query parameters: "Observation?code=...&patient=..."."""
    return path.strip("/") + "?" + "&".join(f"{name}={value}" for name, value in sorted(parse_qsl(query)))


def prepare_answers(resources: Iterable[Mapping[str, Any]], relative_urls: Iterable[str], path: Path) -> None:
    """Write the searchset of each query (all matches on one page) to `path`, for the endpoint to serve."""
    store = InMemoryFhirStore(resources)
    answers = {}
    for relative_url in relative_urls:
        resource_path, _, query = relative_url.partition("?")
        answers[answer_key(resource_path, query)] = store.query(relative_url)
    path.write_text(json.dumps(answers), "utf-8")


def _load_answers() -> dict[str, bytes]:
    answers = json.loads(Path(os.environ[ANSWERS_VARIABLE]).read_text("utf-8"))
    return {key: json.dumps(bundle, separators=(",", ":")).encode("utf-8") for key, bundle in answers.items()}


_ANSWERS = _load_answers() if ANSWERS_VARIABLE in os.environ else {}


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/healthz":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    time.sleep(FHIR_DELAY_SECONDS)
    body = _ANSWERS.get(answer_key(path.removeprefix(BASE_PATH), environ.get("QUERY_STRING", "")))
    if body is None:
        outcome = {"resourceType": "OperationOutcome",
                   "issue": [{"severity": "error", "code": "not-supported", "diagnostics": "not a prepared benchmark query"}]}
        start_response("404 Not Found", _FHIR_JSON)
        return [json.dumps(outcome).encode("utf-8")]
    start_response("200 OK", [*_FHIR_JSON, ("Content-Length", str(len(body)))])
    return [body]
