"""The card preview page (`GET /`) and its JSON endpoints under `/preview/`, registered only when the
`preview_enabled` setting is on.

Outside CDS client authentication on purpose, and safe there: it evaluates only the synthetic fixture patients
shipped with the package. It never accepts patient data, prefetch or a fhirServer, so it can neither read nor
fetch anything that is not already public in the package.
"""
from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify

from cds_hooks.api.cds_services import json_body
from cds_hooks.engine import Engine
from cds_hooks.protocol.errors import InvalidRequest
from cds_hooks.scenarios import ScenarioCatalog

blueprint = Blueprint("preview", __name__, static_folder="preview_page", static_url_path="/preview/static")

# Card detail is rendered to HTML in the page: allow nothing but this origin's own scripts and styles.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _catalog() -> ScenarioCatalog:
    return current_app.extensions["cds_hooks.scenarios"]


@blueprint.get("/")
def page():
    response = blueprint.send_static_file("index.html")
    response.headers.update(PAGE_HEADERS)
    return response


@blueprint.get("/preview/scenarios")
def scenarios():
    return jsonify(_catalog().listing)


@blueprint.post("/preview/evaluate")
def evaluate():
    body = json_body()
    if not isinstance(body, dict):
        raise InvalidRequest("send {\"patient\": ..., \"hook\": ..., \"draftOrders\": [...], \"selections\": [...]}")
    service_id, request = _catalog().request_for(body.get("patient"), body.get("hook"), body.get("draftOrders", []),
                                                 body.get("selections"))
    g.service_id = service_id
    engine: Engine = current_app.extensions["cds_hooks.engine"]
    evaluation = engine.evaluate(service_id, request)
    g.card_ids = evaluation.card_ids
    return jsonify({"service": service_id, "response": evaluation.body})
