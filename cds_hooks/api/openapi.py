"""The OpenAPI 3.1 description of this service's HTTP API, built from the service definitions so it cannot drift.

Served at GET /openapi.json without a client token: it names endpoints and wire formats that the public source
already shows, and holds no patient data and no setting but public_base_url. Discovery stays authenticated. The
card preview page, a loopback development tool and not part of the API, is left out.
"""
from __future__ import annotations

import functools
from importlib import metadata
from typing import Any

from flask import Blueprint, current_app, jsonify

from cds_hooks.api.cds_services import JSON_MEDIA_TYPES
from cds_hooks.protocol.request import HOOK_CONTEXT_FIELDS, ORDER_HOOKS
from cds_hooks.services import SERVICES, ServiceDefinition

blueprint = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.1.0"
SECURITY_SCHEME = "cdsClientJwt"
# Pattern for a string the service reads as present: anything but blanks.
NOT_BLANK = r"\S"


@blueprint.get("/openapi.json")
def openapi_json():
    return jsonify(openapi_document(current_app.extensions["cds_hooks.settings"].public_base_url))


# Built once per process: it depends only on the code and public_base_url (the package metadata lookup reads disk).
@functools.cache
def openapi_document(public_base_url: str = "") -> dict[str, Any]:
    """The whole document; `servers` names public_base_url when one is configured, else the document's own origin."""
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "CDS Hooks service for HER2-positive breast cancer",
            "version": metadata.version("cds-hooks-her2"),
            "description": (
                "A CDS Hooks 2.0 service (https://cds-hooks.hl7.org/2.0/). Discovery, service and feedback calls "
                "need a JWT signed by a trusted CDS client (CDS Hooks 2.0 §Security); /healthz and this document "
                "need none. Request schemas are what a client must send; the service also accepts what real "
                "clients send instead (a draftOrders Bundle without `type`, fhirAuthorization without `expires_in`, "
                "`scope` or `subject`). Checks no schema can state give 400 too: every selection must name a "
                "draftOrders entry, draft orders must be for context.patientId, and draft medication orders must "
                "be readable FHIR R4, STU3 or DSTU2."
            ),
        },
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "responses": _responses(),
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": (
                        "A CDS client JWT: ES384 or RS384 (or another configured asymmetric alg), `kid` and `typ` JWT; "
                        "`iss` a trusted issuer; `aud` the exact URL called; `exp`, `iat` and a never-reused `jti`."
                    ),
                }
            },
        },
        "security": [{SECURITY_SCHEME: []}],
    }
    if public_base_url:
        document["servers"] = [{"url": public_base_url.rstrip("/")}]
    return document


# --- paths ---------------------------------------------------------------------------------------------------------


def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/cds-services": {"get": _operation(
            "discovery", "The CDS services offered: one per hook, with the prefetch templates each needs.",
            ok=("the services", "Discovery"), errors=(),
        )},
    }
    for service in SERVICES:
        paths[f"/cds-services/{service.id}"] = {"post": _operation(
            _operation_id(service.id), f"{service.title} ({service.hook}). {service.description}",
            ok=("the cards for this call; `{\"cards\": []}` when there is nothing to say", "CdsServiceResponse"),
            errors=("InvalidRequest", "PrefetchUnavailable", "TooLarge", "UnsupportedMediaType"),
            body=_service_request(service),
        )}
        paths[f"/cds-services/{service.id}/feedback"] = {"post": _operation(
            _operation_id(service.id) + "Feedback",
            f"What the clinician did with the cards of {service.id}. Valid items are stored even when others "
            "in the same body are refused with 400.",
            ok=("every item was valid and is stored (a repeated item is stored once)", "FeedbackStored"),
            errors=("InvalidRequest", "TooLarge", "UnsupportedMediaType"),
            body={"$ref": "#/components/schemas/FeedbackRequest"},
        )}
    # Any other id: the route exists, and answers 404 before it reads the body.
    unknown_id = {
        "name": "service_id", "in": "path", "required": True,
        "description": "an id that discovery does not list",
        "schema": {"type": "string", "minLength": 1, "pattern": "^[^/]+$", "not": {"enum": [s.id for s in SERVICES]}},
    }
    for suffix, name in (("", "invokeUnknownService"), ("/feedback", "feedbackUnknownService")):
        operation = _operation(name, "A service id that discovery does not list.", ok=None, errors=("UnknownService",),
                               body={})
        operation["parameters"] = [unknown_id]
        paths[f"/cds-services/{{service_id}}{suffix}"] = {"post": operation}
    paths["/healthz"] = {"get": _operation(
        "health", "Liveness: the process answers.", ok=("alive", "Health"), errors=(), security=False,
    )}
    paths["/openapi.json"] = {"get": _operation(
        "openapi", "This document.", ok=("an OpenAPI 3.1 document", "OpenApiDocument"), errors=(), security=False,
    )}
    return paths


def _operation(operation_id: str, description: str, *, ok: tuple[str, str] | None, errors: tuple[str, ...],
               body: dict[str, Any] | None = None, security: bool = True) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if ok is not None:
        responses["200"] = {"description": ok[0], "content": _json_content(_ref(ok[1]))}
    if security:
        responses["401"] = {"$ref": "#/components/responses/Unauthorized"}
    for error in errors:
        status = _ERROR_RESPONSES[error][0]
        responses[status] = {"$ref": f"#/components/responses/{error}"}
    operation: dict[str, Any] = {"operationId": operation_id, "description": description, "responses": responses}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {media: {"schema": body} for media in JSON_MEDIA_TYPES}}
    if not security:
        operation["security"] = []
    return operation


def _operation_id(service_id: str) -> str:
    """her2-order-sign -> invokeHer2OrderSign."""
    return "invoke" + "".join(part.capitalize() for part in service_id.split("-"))


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# --- error responses -----------------------------------------------------------------------------------------------

# Name -> (status, description); every error body is an ErrorBody.
_ERROR_RESPONSES: dict[str, tuple[str, str]] = {
    "Unauthorized": ("401", (
        "`unauthorized`: no valid client token. The same body whatever check failed; the reason is only logged."
    )),
    "InvalidRequest": ("400", (
        "`invalid-request`: the body is not JSON or not a valid request; `details` names every problem."
    )),
    "UnknownService": ("404", "`unknown-service`: discovery lists no service with this id."),
    "PrefetchUnavailable": ("412", (
        "`prefetch-unavailable`: a prefetch key was neither sent nor could be fetched from fhirServer; `details` "
        "gives each key and why."
    )),
    "TooLarge": ("413", (
        "`request-entity-too-large`: the body is larger than max_body_bytes; or `too-many-resources`: the call "
        "carries more FHIR resources than max_resources_per_request."
    )),
    "UnsupportedMediaType": ("415", "`unsupported-media-type`: the body is not sent as application/json."),
}


def _responses() -> dict[str, Any]:
    responses = {}
    for name, (_, description) in _ERROR_RESPONSES.items():
        responses[name] = {"description": description, "content": _json_content(_ref("ErrorBody"))}
    responses["Unauthorized"]["headers"] = {
        "WWW-Authenticate": {"description": "always `Bearer`", "schema": {"type": "string", "const": "Bearer"}}
    }
    return responses


# --- request schemas -----------------------------------------------------------------------------------------------


def _service_request(service: ServiceDefinition) -> dict[str, Any]:
    """The request body of one service: its hook, that hook's context, and its prefetch keys."""
    prefetch_keys = {
        key: {"description": f"the result of `{template}`, or null for no data",
              "oneOf": [_ref("FhirResource"), {"type": "null"}]}
        for key, template in service.prefetch.items()
    }
    return {
        "type": "object",
        "required": ["hook", "hookInstance", "context"],
        "properties": {
            "hook": {"const": service.hook},
            "hookInstance": {"type": "string", "pattern": NOT_BLANK, "description": "a UUID for this hook firing"},
            "fhirServer": _ref("FhirServer"),
            "fhirAuthorization": _ref("FhirAuthorization"),
            "context": _context(service.hook),
            "prefetch": {
                "type": "object",
                "description": (
                    "Each key the client could fetch. A key left out is fetched from fhirServer; when it cannot be, "
                    "the answer is 412. Keys not listed here are ignored."
                ),
                "properties": prefetch_keys,
                "additionalProperties": {"oneOf": [_ref("FhirResource"), {"type": "null"}]},
            },
        },
        "dependentRequired": {"fhirAuthorization": ["fhirServer"]},
    }


def _context(hook: str) -> dict[str, Any]:
    """The hook's context as request validation reads it (protocol.request.HOOK_CONTEXT_FIELDS)."""
    fields = HOOK_CONTEXT_FIELDS[hook]
    properties: dict[str, Any] = {}
    for name in fields:
        if name == "draftOrders":
            properties[name] = _ref("DraftOrders")
        elif name == "selections":
            properties[name] = {"type": "array", "items": {"type": "string"},
                                "description": "`Type/id` of the draftOrders entries the clinician selected"}
        else:
            properties[name] = {"type": "string", "pattern": NOT_BLANK}
    context: dict[str, Any] = {
        "type": "object",
        "required": [name for name, required in fields.items() if required],
        "properties": properties,
    }
    if hook in ORDER_HOOKS:
        context["description"] = "draftOrders entries that name a subject must name context.patientId"
    return context


# --- component schemas ---------------------------------------------------------------------------------------------


def _schemas() -> dict[str, Any]:
    string = {"type": "string", "minLength": 1}
    uri = {"type": "string", "format": "uri"}
    extension = {"type": "object", "description": "CDS Hooks extension (reverse-domain keys)"}
    return {
        # -- requests
        "FhirResource": {
            "type": "object",
            "required": ["resourceType"],
            "properties": {"resourceType": {"type": "string"}},
            "description": "Any FHIR resource as JSON; a Bundle's `next` link is followed on fhirServer.",
        },
        "FhirServer": {
            "type": "string", "format": "uri", "pattern": "^https?://",
            "description": "Base URL of the EHR's FHIR server; data is fetched only from servers this deployment allows.",
        },
        "FhirAuthorization": {
            "type": "object",
            "required": ["access_token", "token_type"],
            "properties": {
                "access_token": {"type": "string", "pattern": NOT_BLANK},
                "token_type": {"type": "string", "pattern": "^[Bb][Ee][Aa][Rr][Ee][Rr]$"},
                "expires_in": {"type": "integer"},
                "scope": {"type": "string"},
                "subject": {"type": "string"},
                "patient": {"type": "string"},
            },
        },
        "DraftOrders": {
            "type": "object",
            "required": ["resourceType"],
            "properties": {
                "resourceType": {"const": "Bundle"},
                "type": {"type": "string"},
                "entry": {
                    "type": "array",
                    "items": {"type": "object", "required": ["resource"], "properties": {"resource": _ref("FhirResource")}},
                },
            },
            "description": "A Bundle of unsigned orders (MedicationRequest; DSTU2 MedicationOrder).",
        },
        "FeedbackRequest": {
            "type": "object",
            "required": ["feedback"],
            "properties": {"feedback": {"type": "array", "items": _ref("Feedback")}},
        },
        "Feedback": {
            "type": "object",
            "required": ["card", "outcome", "outcomeTimestamp"],
            "properties": {
                "card": {**string, "description": "the uuid of the card"},
                "outcome": {"enum": ["accepted", "overridden"]},
                "outcomeTimestamp": {"type": "string", "format": "date-time"},
                "acceptedSuggestions": {
                    "type": "array",
                    "items": {"type": "object", "required": ["id"], "properties": {"id": string}},
                },
                "overrideReason": {
                    "type": "object",
                    "properties": {
                        # The Sandbox sends a reason without display, so display is optional here.
                        "reason": {"type": "object", "required": ["system", "code"],
                                   "properties": {"system": {"type": "string"}, "code": {"type": "string"},
                                                  "display": {"type": "string"}}},
                        "userComment": {"type": "string"},
                    },
                },
            },
            "if": {"properties": {"outcome": {"const": "accepted"}}},
            "then": {"required": ["acceptedSuggestions"],
                     "properties": {"acceptedSuggestions": {"minItems": 1}, "overrideReason": False}},
        },
        # -- responses: CDS Hooks allows no null and no empty string, array or object, except `{"cards": []}`.
        "CdsServiceResponse": {
            "type": "object",
            "required": ["cards"],
            "properties": {
                "cards": {"type": "array", "items": _ref("Card")},
                "systemActions": {"type": "array", "minItems": 1, "items": _ref("Action")},
            },
            "additionalProperties": False,
        },
        "Card": {
            "type": "object",
            "required": ["uuid", "summary", "indicator", "source"],
            "properties": {
                "uuid": {**string, "description": "echoed in feedback"},
                "summary": {**string, "maxLength": 139},
                "detail": {**string, "description": "GitHub-flavoured Markdown"},
                "indicator": {"enum": ["info", "warning", "critical"]},
                "source": _ref("Source"),
                "suggestions": {"type": "array", "minItems": 1, "items": _ref("Suggestion")},
                "selectionBehavior": {"enum": ["at-most-one", "any"]},
                "overrideReasons": {"type": "array", "minItems": 1, "items": _ref("OverrideReason")},
                "links": {"type": "array", "minItems": 1, "items": _ref("Link")},
                "extension": extension,
            },
            "dependentRequired": {"suggestions": ["selectionBehavior"]},
            "additionalProperties": False,
        },
        "Source": {
            "type": "object",
            "required": ["label"],
            "properties": {"label": string, "url": uri, "icon": uri, "topic": _ref("Coding"), "extension": extension},
            "additionalProperties": False,
        },
        "Coding": {
            "type": "object",
            "required": ["system", "code"],
            "properties": {"system": string, "code": string, "display": string},
            "additionalProperties": False,
        },
        "OverrideReason": {"allOf": [_ref("Coding"), {"required": ["display"]}]},
        "Suggestion": {
            "type": "object",
            "required": ["label"],
            "properties": {
                "label": string,
                "uuid": string,
                "isRecommended": {"type": "boolean"},
                "actions": {"type": "array", "minItems": 1, "items": _ref("Action")},
                "extension": extension,
            },
            "additionalProperties": False,
        },
        "Action": {
            "type": "object",
            "required": ["type", "description"],
            "properties": {
                "type": {"enum": ["create", "update", "delete"]},
                "description": string,
                "resource": _ref("FhirResource"),
                "resourceId": {**string, "description": "a relative reference, `Type/id`"},
                "extension": extension,
            },
            "allOf": [
                {"if": {"properties": {"type": {"enum": ["create", "update"]}}}, "then": {"required": ["resource"]}},
                {"if": {"properties": {"type": {"const": "delete"}}}, "then": {"required": ["resourceId"]}},
            ],
            "additionalProperties": False,
        },
        "Link": {
            "type": "object",
            "required": ["label", "url", "type"],
            "properties": {
                "label": string,
                "url": uri,
                "type": {"enum": ["absolute", "smart"]},
                "appContext": string,
                "autolaunchable": {"type": "boolean"},
                "extension": extension,
            },
            "additionalProperties": False,
        },
        "Discovery": {
            "type": "object",
            "required": ["services"],
            "properties": {"services": {"type": "array", "minItems": 1, "items": _ref("CdsService")}},
            "additionalProperties": False,
        },
        "CdsService": {
            "type": "object",
            "required": ["id", "hook", "description"],
            "properties": {
                "id": string,
                "hook": string,
                "title": string,
                "description": string,
                "usageRequirements": string,
                "prefetch": {"type": "object", "minProperties": 1, "additionalProperties": string},
            },
            "additionalProperties": False,
        },
        "FeedbackStored": {
            "type": "object",
            "required": ["stored"],
            "properties": {"stored": {"type": "integer", "minimum": 0, "description": "how many items were valid"}},
            "additionalProperties": False,
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"const": "ok"}},
            "additionalProperties": False,
        },
        "OpenApiDocument": {"type": "object", "required": ["openapi", "info", "paths"]},
        "ErrorBody": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {
                "error": {"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$"},
                "message": string,
                "details": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"oneOf": [
                        {"type": "string"},
                        {"type": "object", "required": ["key", "reason"],
                         "properties": {"key": {"type": "string"}, "reason": {"type": "string"}}},
                    ]},
                },
            },
            "additionalProperties": False,
        },
    }
