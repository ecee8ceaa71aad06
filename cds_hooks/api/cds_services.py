"""HTTP endpoints of CDS Hooks 2.0: discovery, service invocation and feedback. Thin: parsing and status only."""
from __future__ import annotations

import logging
import sqlite3
from typing import Any, Callable

from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from cds_hooks import json_text
from cds_hooks.engine import Engine, Evaluation
from cds_hooks.feedback import FeedbackStore, parse_feedback
from cds_hooks.protocol.body import read_hook_call
from cds_hooks.protocol.errors import InvalidRequest, UnsupportedMediaType

log = logging.getLogger(__name__)
blueprint = Blueprint("cds_services", __name__)
JSON_MEDIA_TYPES = ("application/json", "application/fhir+json")


def _engine() -> Engine:
    return current_app.extensions["cds_hooks.engine"]


def _feedback_store() -> FeedbackStore:
    return current_app.extensions["cds_hooks.feedback"]


@blueprint.get("/cds-services")
def discovery():
    return jsonify(_engine().discovery())


@blueprint.post("/cds-services/<service_id>")
def invoke(service_id: str):
    engine = _engine()
    engine.service(service_id)  # an unknown id is a 404 before the body is even read
    g.service_id = service_id
    body = _json(read_hook_call)
    evaluation = engine.evaluate(service_id, body)
    _record_issued(evaluation)
    g.card_ids = evaluation.card_ids
    g.timings_ms = evaluation.timings_ms
    g.fetched_keys = evaluation.fetched_keys
    response = jsonify(evaluation.body)
    # The EHR waits for the cards, not for our memory: the body and what the call built from it (tens of thousands of
    # objects on a 2,000-resource record) are freed when the server closes the sent response, in a compute turn of
    # its own (compute_turn.py).
    held = [body, evaluation]
    response.call_on_close(held.clear)
    return response


@blueprint.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str):
    _engine().service(service_id)
    g.service_id = service_id
    items, problems = parse_feedback(json_body())
    # Good items are kept even when others in the same batch are rejected.
    stored = _feedback_store().store(service_id, items) if items else 0
    g.feedback = {"received": len(items), "new": stored, "rejected": len(problems)}
    if problems:
        raise InvalidRequest("some feedback items are not valid; the valid ones were stored", details=problems)
    return jsonify({"stored": len(items)})


def _record_issued(evaluation: Evaluation) -> None:
    try:
        _feedback_store().record_issued(evaluation.service_id, evaluation.issued)
    except sqlite3.Error:
        # The cards matter more than the statistics about them: answer anyway.
        log.exception("issued cards not recorded", extra={"service_id": evaluation.service_id})


def json_body() -> Any:
    """The request body as JSON: 415 for another media type, 400 for malformed JSON."""
    return _json(json_text.strict_loads)


def _json(read: Callable[[bytes], Any]) -> Any:
    """The request body as `read` reads it (a json_text.NotJson is a 400), after the media type and size checks."""
    media_type = (request.mimetype or "").lower()
    if media_type not in JSON_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"send the body as application/json (got {media_type or 'no Content-Type'})"
        )
    raw = _body_bytes()
    if not raw:
        raise InvalidRequest("the request body is empty; a JSON object is required")
    try:
        return read(raw)
    except json_text.NotJson as error:
        raise InvalidRequest(f"the request body is {error}") from None


def _body_bytes() -> bytes:
    """The request body; 413 when it is larger than MAX_CONTENT_LENGTH.

    A declared length is checked against the cap, then read from the WSGI input in one call. werkzeug's read to the
    end (get_data) asks gunicorn for 64 KiB at a time, and gunicorn copies all it has already received on each turn;
    and with a cap set, `request.stream` is a LimitedStream whose read copies the body twice more through fresh
    buffers. Either cost about 1 ms of a 0.6 MB body. werkzeug cuts a chunked body off at the cap without a word,
    and the cut JSON would be a misleading 400: a chunked body that reaches the cap is refused here.
    """
    length = request.content_length
    if length is not None:
        if request.max_content_length is not None and length > request.max_content_length:
            raise RequestEntityTooLarge()
        return request.input_stream.read(length)
    raw = request.get_data(cache=False)
    if request.max_content_length is not None and len(raw) >= request.max_content_length:
        raise RequestEntityTooLarge()
    return raw

