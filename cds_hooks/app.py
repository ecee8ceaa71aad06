"""The Flask application factory: routes, CORS, error handling and request logging; no clinical logic."""
from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, g, jsonify, request
from flask_cors import CORS

from cds_hooks.api.cds_services import blueprint as cds_services
from cds_hooks.api.errors import register_error_handlers
from cds_hooks.api.openapi import blueprint as openapi
from cds_hooks.api.preview import blueprint as preview
from cds_hooks.auth import require_client_tokens
from cds_hooks.compute_turn import TurnPerRequest
from cds_hooks.engine import Engine
from cds_hooks.feedback import FeedbackStore
from cds_hooks.scenarios import ScenarioCatalog
from cds_hooks.settings import Settings

log = logging.getLogger("cds_hooks.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> Flask:
    settings = settings or Settings.from_environment()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    app.extensions["cds_hooks.settings"] = settings
    app.extensions["cds_hooks.engine"] = engine or Engine(settings)
    app.extensions["cds_hooks.feedback"] = FeedbackStore(settings.database_path)

    # Browser clients (the CDS Hooks Sandbox) send Authorization and a JSON body from another origin.
    CORS(
        app,
        origins="*",
        methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
        expose_headers=["X-Request-Id"],
        send_wildcard=True,
        max_age=86400,
    )
    app.register_blueprint(cds_services)
    # Outside client authentication, like /healthz: it describes the API and holds no patient data.
    app.register_blueprint(openapi)
    # Off unless decided: `cds-hooks serve` turns it on for a loopback bind (Settings.for_host).
    if settings.preview_enabled:
        app.extensions["cds_hooks.scenarios"] = ScenarioCatalog.load()
        app.register_blueprint(preview)
    register_error_handlers(app)

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    @app.before_request
    def start_request() -> None:
        supplied = request.headers.get("X-Request-Id", "")
        g.request_id = supplied if _REQUEST_ID.match(supplied) else str(uuid.uuid4())
        g.started = time.perf_counter()

    # Registered after start_request so that a refusal is logged with its request id. Off only when the
    # settings say so explicitly; `cds-hooks serve` then keeps to loopback.
    if settings.auth_required:
        require_client_tokens(app, settings, cds_services.name)

    @app.after_request
    def finish_request(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        fields = {
            "request_id": g.get("request_id"),
            "method": request.method,
            "route": request.url_rule.rule if request.url_rule else None,
            "service_id": g.get("service_id"),
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 3),
        }
        # `client` is the verified token's issuer: who asked, for the audit trail of calls that carry patient data.
        for name in ("client", "card_ids", "timings_ms", "fetched_keys", "feedback"):
            if g.get(name) is not None:
                fields[name] = g.get(name)
        log.info("request", extra=fields)
        return response

    app.wsgi_app = TurnPerRequest(app.wsgi_app, settings.max_body_bytes)
    return app
