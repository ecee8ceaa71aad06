"""GET /openapi.json (cds_hooks/api/openapi.py) over real HTTP: a valid OpenAPI 3.1 document that describes every
route, that the service's answers conform to (schemathesis), and that needs no client token."""
from __future__ import annotations

import copy
import re
from typing import Any

import hypothesis
import jsonschema
import pytest
import requests
import schemathesis
from openapi_spec_validator import validate
from schemathesis import GenerationMode

from cds_hooks.cases import load_case
from cds_hooks.services import SERVICES
from cds_hooks.settings import Settings, TrustedIssuer

from .conftest import FIXTURES, LiveServer, SigningKey

# One case per hook, each answered with cards, so the 200 schemas are checked on real cards.
CASES = {
    "her2-order-select": "anthracycline-trastuzumab-draft-while-doxorubicin-active.json",
    "her2-order-sign": "anthracycline-trastuzumab-both-drafted-together.json",
    "her2-patient-view": "summary-her2pos-metastatic-on-trastuzumab.json",
}
NOT_DOCUMENTED_METHODS = {"HEAD", "OPTIONS"}  # answered by Flask and CORS for every route


def response_validator(document: dict[str, Any], schema_name: str) -> jsonschema.Validator:
    """A JSON Schema 2020-12 validator for one of the document's component schemas (OpenAPI 3.1 schemas are that)."""
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    return jsonschema.Draft202012Validator(root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def flask_path(rule: str) -> str:
    """/cds-services/<service_id> -> /cds-services/{service_id}."""
    return re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule)


def test_document_is_valid_openapi_3_1(document: dict[str, Any]):
    validate(document)
    assert document["openapi"].startswith("3.1.")
    scheme = document["components"]["securitySchemes"]["cdsClientJwt"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")


def test_every_route_is_described_and_nothing_else(live_server: LiveServer, document: dict[str, Any]):
    routes = [rule for rule in live_server.app.url_map.iter_rules() if rule.endpoint != "static"]
    for rule in routes:
        operations = document["paths"].get(flask_path(rule.rule))
        assert operations is not None, f"{rule.rule} is not in /openapi.json"
        for method in rule.methods - NOT_DOCUMENTED_METHODS:
            assert method.lower() in operations, f"{method} {rule.rule} is not in /openapi.json"
    adapter = live_server.app.url_map.bind("localhost")
    for path, operations in document["paths"].items():
        for method in operations:
            # Raises NotFound or MethodNotAllowed for an operation that no route serves.
            adapter.match(path.replace("{service_id}", "no-such-service"), method=method.upper())


def test_each_service_has_its_own_paths_with_its_hook_and_prefetch_keys(document: dict[str, Any]):
    for service in SERVICES:
        invoke = document["paths"][f"/cds-services/{service.id}"]["post"]
        assert f"/cds-services/{service.id}/feedback" in document["paths"]
        body = invoke["requestBody"]["content"]["application/json"]["schema"]
        assert body["properties"]["hook"] == {"const": service.hook}
        assert set(body["properties"]["prefetch"]["properties"]) == set(service.prefetch)
        assert {"200", "400", "401", "412", "413", "415"} <= set(invoke["responses"])
    unknown = document["paths"]["/cds-services/{service_id}"]["post"]
    assert set(unknown["responses"]) == {"401", "404"}


def test_only_health_and_the_document_itself_are_open(document: dict[str, Any]):
    assert document["security"] == [{"cdsClientJwt": []}]
    open_operations = {
        (method, path) for path, operations in document["paths"].items()
        for method, operation in operations.items() if operation.get("security") == []
    }
    assert open_operations == {("get", "/healthz"), ("get", "/openapi.json")}


def test_the_document_needs_no_token_when_authentication_is_on(settings: Settings, ec_key: SigningKey, serve_app):
    secured = settings.replace(
        auth_required=True, trusted_issuers=(TrustedIssuer(iss="https://ehr.example.org", keys=(ec_key.public_jwk(),)),),
        public_base_url="https://cds.example.org/her2",
    )
    base_url = serve_app(secured)
    assert requests.get(base_url + "/cds-services", timeout=10).status_code == 401
    response = requests.get(base_url + "/openapi.json", timeout=10)
    assert response.status_code == 200
    assert response.json()["servers"] == [{"url": "https://cds.example.org/her2"}]


@pytest.mark.parametrize("service_id", sorted(CASES))
def test_real_cards_conform_to_the_documented_response(live_server: LiveServer, document: dict[str, Any], service_id: str):
    request = load_case(FIXTURES / "cases" / CASES[service_id]).request_for("full")
    response = live_server.post(f"/cds-services/{service_id}", request)
    assert response.status_code == 200
    body = response.json()
    assert body["cards"], "the case must give cards for this test to check them"
    response_validator(document, "CdsServiceResponse").validate(body)
    request_schema = document["paths"][f"/cds-services/{service_id}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**request_schema, "components": document["components"]}).validate(request)


@pytest.mark.parametrize("service_id", sorted(CASES))
def test_every_documented_required_field_is_required(live_server: LiveServer, document: dict[str, Any], service_id: str):
    """The document says a field is required exactly when leaving it out is a 400."""
    request = load_case(FIXTURES / "cases" / CASES[service_id]).request_for("full")
    schema = document["paths"][f"/cds-services/{service_id}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    places = [((), name) for name in schema["required"]]
    places += [(("context",), name) for name in schema["properties"]["context"]["required"]]
    for parents, name in places:
        without = copy.deepcopy(request)
        container = without
        for parent in parents:
            container = container[parent]
        del container[name]
        response = live_server.post(f"/cds-services/{service_id}", without)
        assert response.status_code == 400, f"{'.'.join((*parents, name))} is documented as required"
    optional = set(schema["properties"]["context"]["properties"]) - set(schema["properties"]["context"]["required"])
    for name in optional & set(request["context"]):
        without = copy.deepcopy(request)
        del without["context"][name]
        assert live_server.post(f"/cds-services/{service_id}", without).status_code == 200, f"context.{name} is optional"


def test_documented_errors_conform_to_the_error_body(live_server: LiveServer, document: dict[str, Any]):
    validator = response_validator(document, "ErrorBody")
    service = "/cds-services/her2-order-sign"
    trastuzumab = {"resourceType": "MedicationRequest", "id": "t", "status": "draft", "intent": "order", "subject": {"reference": "Patient/1"},
                   "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "224905"}]}}
    no_prefetch = {"hook": "order-sign", "hookInstance": "x",
                   "context": {"userId": "Practitioner/1", "patientId": "1",
                               "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": trastuzumab}]}}}
    answers = {
        (service, 400): live_server.post(service, {"hook": "order-sign"}),
        ("/cds-services/{service_id}", 404): live_server.post("/cds-services/no-such-service", {}),
        (service, 412): live_server.post(service, no_prefetch),
        (service, 413): live_server.session.post(live_server.base_url + service, data=b"[" * (6 * 1024 * 1024),
                                                 headers={"Content-Type": "application/json"}, timeout=10),
        (service, 415): live_server.session.post(live_server.base_url + service, data=b"{}",
                                                 headers={"Content-Type": "text/plain"}, timeout=10),
    }
    for (path, status), response in answers.items():
        assert response.status_code == status
        validator.validate(response.json())
        assert str(status) in document["paths"][path]["post"]["responses"]


# --- schemathesis: requests generated from the served document, against the live server -----------------------------

# Only the response checks: status documented, JSON, body as documented, and never a 5xx. (Whether a generated
# "valid" request is accepted is not checked: no schema can say that selections must name draft orders.)
SCHEMATHESIS_CONFIG = {
    "checks": {
        "enabled": False,
        "not_a_server_error": {"enabled": True},
        "status_code_conformance": {"enabled": True},
        "content_type_conformance": {"enabled": True},
        "response_schema_conformance": {"enabled": True},
    },
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Generated requests name arbitrary fhirServers: allowing none keeps every call on this machine, and fast.
    return settings.replace(development_mode=False)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda mode: mode.value)
def test_generated_requests_get_documented_answers_and_never_a_5xx(live_server: LiveServer, mode: GenerationMode):
    # schemathesis' own pytest fixture loader does not run on pytest 9, so its strategy drives a Hypothesis test here.
    schema = schemathesis.openapi.from_url(live_server.base_url + "/openapi.json",
                                           config=schemathesis.Config.from_dict(SCHEMATHESIS_CONFIG))
    if mode is GenerationMode.NEGATIVE:
        # An id outside the unknown-id schema is a real service's id, whose answers are documented at its own path.
        schema = schema.exclude(path_regex=r"\{service_id\}")

    @hypothesis.settings(suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(case=schema.as_strategy(generation_mode=mode))
    def answers_as_documented(case: schemathesis.Case) -> None:
        case.call_and_validate(session=live_server.session)

    answers_as_documented()
